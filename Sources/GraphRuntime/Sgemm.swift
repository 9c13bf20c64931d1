import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import FastKernelsAVX512

/// OpenBLAS sgemm on both cores, split by the executor: OpenBLAS itself runs single-threaded.
/// Its own worker threads busy-wait for about 2^28 cycles after every call (THREAD_TIMEOUT), which
/// took a core away from the executor's next kernel (Dispatch) and made step times erratic (W1 at
/// 128: 24 to 48 ms from call to call).
enum Sgemm {
    private static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// C[m x n] = alpha * op(A) op(B) + beta * C, row-major; op(A) is m x k (A stored k x m when
    /// `transA`), op(B) is k x n (stored n x k when `transB`). Large products are split in two
    /// along m (or n when that is the longer side), one half per core.
    static func run(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                    _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                    beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        _ = singleThreaded
        nonisolated(unsafe) let (a, b, c) = (a, b, c)
        @Sendable func call(_ m0: Int, _ m1: Int, _ n0: Int, _ n1: Int) {
            if m1 <= m0 || n1 <= n0 { return }
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m1 - m0), Int32(n1 - n0), Int32(k), alpha,
                        transA ? a + m0 : a + m0 * lda, Int32(lda),
                        transB ? b + n0 * ldb : b + n0, Int32(ldb),
                        beta, c + m0 * ldc + n0, Int32(ldc))
        }
        let splitM = m >= n
        if m * n * k < 1 << 18 || (splitM ? m : n) < 16 {
            call(0, m, 0, n)
            return
        }
        // Halves on a 16-row (or column) boundary, so both keep whole register blocks.
        let half = ((splitM ? m : n) / 2 + 15) / 16 * 16
        Parallel.forEach(2) { part in
            if splitM {
                part == 0 ? call(0, half, 0, n) : call(half, m, 0, n)
            } else {
                part == 0 ? call(0, m, 0, half) : call(0, m, half, n)
            }
        }
    }
}

extension Sgemm {
    /// C = op(A) op(B) on the skinny kernels of `isa` (`SkinnyGemm`: one side at most 8 long).
    static func skinny(_ isa: VectorISA, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int,
                       _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        switch isa {
        case .avx2:
            FastKernels.SkinnyGemm.run(transA: transA, transB: transB, m: m, n: n, k: k, a, lda: lda, b, ldb: ldb, c, ldc: ldc)
        case .avx512:
            FastKernelsAVX512.SkinnyGemm.run(transA: transA, transB: transB, m: m, n: n, k: k, a, lda: lda, b, ldb: ldb, c, ldc: ldc)
        }
    }
}
