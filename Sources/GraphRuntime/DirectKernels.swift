import Foundation
import FastKernels
import FastKernelsAVX512

/// The vector instruction set of the direct and Winograd convolution kernels. Both builds run the
/// same sources; AVX-512 doubles the register tile's width (6 pixels x 32 channels) and, on cores
/// with full-width 512-bit FMA units, the arithmetic peak.
public enum VectorISA: String, CaseIterable, Sendable {
    case avx2
    case avx512

    /// Whether this machine can run it (Linux: the flags the kernel reports in /proc/cpuinfo,
    /// which it shows only when it also saves the registers).
    public var isAvailable: Bool {
        switch self {
        case .avx2: return true
        case .avx512: return Self.cpuFlags.isSuperset(of: ["avx512f", "avx512dq", "avx512bw", "avx512vl"])
        }
    }

    /// The widest set this machine has.
    public static var widest: VectorISA { VectorISA.avx512.isAvailable ? .avx512 : .avx2 }

    /// The sets this machine can run (tests run the kernels under each).
    public static var available: [VectorISA] { allCases.filter(\.isAvailable) }

    static let cpuFlags: Set<String> = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").map(String.init))
    }()
}

/// The direct / Winograd convolution kernels an executable calls: which instruction-set build, and
/// whether 3x3 stride-1 convolutions go through Winograd. `nil` where the algorithm is `gemm`.
struct DirectKernels {
    let isa: VectorISA
    let winograd: Bool

    init(isa: VectorISA, winograd: Bool) {
        self.isa = isa
        self.winograd = winograd
    }

    /// Whether these kernels take a convolution: Winograd's at any width, the direct kernel only
    /// where the outputs are wide enough for its 6-pixel tiles (`wide`).
    func takes(_ g: DirectConvGeometry, wide: Bool) -> Bool { wide || useWinograd(g) }

    func useWinograd(_ g: DirectConvGeometry) -> Bool {
        winograd && FastKernels.DirectConv.winogradApplies(g)
    }

    /// y = conv(x, k) (+ bias, ReLU).
    func forward(_ x: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: DirectConvGeometry,
                 bias: UnsafePointer<Float>? = nil, relu: Bool = false, workspace: Workspace) {
        switch (isa, useWinograd(g)) {
        case (.avx2, true): FastKernels.DirectConv.winograd(x, k, y, g, bias: bias, relu: relu, workspace: workspace)
        case (.avx2, false): FastKernels.DirectConv.forward(x, k, y, g, bias: bias, relu: relu, workspace: workspace)
        case (.avx512, true): FastKernelsAVX512.DirectConv.winograd(x, k, y, g, bias: bias, relu: relu, workspace: workspace)
        case (.avx512, false): FastKernelsAVX512.DirectConv.forward(x, k, y, g, bias: bias, relu: relu, workspace: workspace)
        }
    }

    /// y = conv(concat(parts, channels), k) (+ bias, ReLU) on the direct kernel (never Winograd):
    /// each part is (pointer, channels).
    func forward(parts: [(UnsafePointer<Float>, Int)], _ k: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: DirectConvGeometry,
                 bias: UnsafePointer<Float>? = nil, relu: Bool = false, workspace: Workspace) {
        switch isa {
        case .avx2:
            FastKernels.DirectConv.forward(parts: parts.map { .init($0.0, channels: $0.1) }, k, y, g, bias: bias, relu: relu, workspace: workspace)
        case .avx512:
            FastKernelsAVX512.DirectConv.forward(parts: parts.map { .init($0.0, channels: $0.1) }, k, y, g, bias: bias, relu: relu,
                                                 workspace: workspace)
        }
    }

    /// dk = the weight gradient of conv(x, k) given dy.
    func filterGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dk: UnsafeMutablePointer<Float>, _ g: DirectConvGeometry,
                        workspace: Workspace) {
        switch (isa, useWinograd(g)) {
        case (.avx2, true): FastKernels.DirectConv.winogradFilterGradient(x, dy, dk, g, workspace: workspace)
        case (.avx2, false): FastKernels.DirectConv.filterGradient(x, dy, dk, g, workspace: workspace)
        case (.avx512, true): FastKernelsAVX512.DirectConv.winogradFilterGradient(x, dy, dk, g, workspace: workspace)
        case (.avx512, false): FastKernelsAVX512.DirectConv.filterGradient(x, dy, dk, g, workspace: workspace)
        }
    }
}
