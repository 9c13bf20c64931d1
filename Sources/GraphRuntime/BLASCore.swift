import CBLAS
import Foundation

/// Which kernels OpenBLAS runs, for benchmark reports. OpenBLAS picks them when it is loaded,
/// from the CPU or from OPENBLAS_CORETYPE (this project's machines set Haswell: AVX2; SkylakeX ran
/// sgemm 1.8x faster on their AVX-512 cores, 435 against 239 GFLOP/s at 1024^3 on 2 cores).
public enum BLASCore {
    /// The kernel set OpenBLAS chose ("Haswell", "SkylakeX", ...).
    public static var name: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
}
