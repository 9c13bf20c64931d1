import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// How a convolution-family step (conv2d, its input and filter gradients) computes: the direct
/// register-tile kernels of one instruction set (Winograd F(2x2, 3x3) where it applies, or never),
/// or im2col + sgemm (one sgemm for 1x1 convolutions); the direct kernels on every core (the
/// `Parallel` loops) or on the calling thread alone (`oneThread`: for small steps the split's
/// cost can exceed its gain, and the tuner measures which).
public enum ConvKernel: Hashable, Sendable, CustomStringConvertible {
    case winograd(VectorISA)
    case direct(VectorISA)
    case gemm
    /// A direct or Winograd kernel with its loops run on the calling thread only.
    indirect case oneThread(ConvKernel)

    var directKernels: DirectKernels? {
        switch self {
        case .winograd(let isa): return DirectKernels(isa: isa, winograd: true)
        case .direct(let isa): return DirectKernels(isa: isa, winograd: false)
        case .gemm: return nil
        case .oneThread(let k): return k.directKernels
        }
    }

    public var description: String {
        switch self {
        case .winograd(let isa): return "winograd \(isa.rawValue)"
        case .direct(let isa): return "direct \(isa.rawValue)"
        case .gemm: return "im2col+sgemm"
        case .oneThread(let k): return k.description + " 1 thread"
        }
    }

    /// The name the tuning cache stores.
    var key: String {
        switch self {
        case .winograd(let isa): return "winograd-\(isa.rawValue)"
        case .direct(let isa): return "direct-\(isa.rawValue)"
        case .gemm: return "gemm"
        case .oneThread(let k): return k.key + "-1thread"
        }
    }

    init?(key: String) {
        if key.hasSuffix("-1thread") {
            guard let k = ConvKernel(key: String(key.dropLast("-1thread".count))), k.directKernels != nil else { return nil }
            self = .oneThread(k)
            return
        }
        if key == "gemm" { self = .gemm; return }
        let parts = key.split(separator: "-").map(String.init)
        guard parts.count == 2, let isa = VectorISA(rawValue: parts[1]), isa.isAvailable else { return nil }
        switch parts[0] {
        case "winograd": self = .winograd(isa)
        case "direct": self = .direct(isa)
        default: return nil
        }
    }
}

/// The kernel one step of the schedule runs, chosen once when the executable is compiled:
/// execution calls it, with no search and no pattern matching per call.
public enum Kernel: Hashable, Sendable, CustomStringConvertible {
    /// A GraphJIT loop nest (fused elementwise loop, fused reduction, or one elementwise op).
    case jit
    /// The tiled Swift loops over a fused elementwise body (the JIT is off or does not take it).
    case loops
    /// A fused reduction the JIT does not take (over leading axes): its elementwise body by the
    /// Swift loops into scratch, then the native reduction.
    case loopsThenReduction
    /// A convolution-family kernel; `epilogue` names the bias / ReLU fused into its stores.
    case convolution(ConvKernel, epilogue: String?)
    /// A convolution over a nearest upsampling fused into it: phase by phase on the source image
    /// (`byPhases`), or the upsampling written to scratch first.
    case upsampledConvolution(ConvKernel, byPhases: Bool, epilogue: String?)
    /// A convolution over a channel concatenation fused into it: the direct kernel reading the parts
    /// in turn (`inParts`), or the concatenation written to scratch first.
    case concatenatedConvolution(ConvKernel, inParts: Bool, epilogue: String?)
    /// sgemm (OpenBLAS) for a matmul.
    case gemm
    /// The own kernels for a matmul with one side of at most 8 (`SkinnyGemm`: dense layers at small batch).
    case skinnyGemm(VectorISA)
    /// A fused output kernel: its contraction writes the result, then its elementwise tail runs in place.
    indirect case withTail(Kernel, tail: Kernel)
    /// A Swift kernel of `CPUKernels` (data movement, reductions, pooling, sampling, random, collectives).
    case native
    /// The reference kernel on copies of the operands, and why.
    case reference(reason: String)

    public var description: String {
        switch self {
        case .jit: return "jit loop"
        case .loops: return "swift loops"
        case .loopsThenReduction: return "swift loops + native reduction"
        case .convolution(let c, let e): return c.description + (e.map { " + " + $0 } ?? "")
        case .upsampledConvolution(let c, let phases, let e):
            return (phases ? "\(c) by upsampling phases" : "upsample + \(c)") + (e.map { " + " + $0 } ?? "")
        case .concatenatedConvolution(let c, let inParts, let e):
            return (inParts ? "\(c) over the concatenated parts" : "concat + \(c)") + (e.map { " + " + $0 } ?? "")
        case .gemm: return "sgemm"
        case .skinnyGemm(let isa): return "skinny gemm \(isa.rawValue)"
        case .withTail(let k, let t): return "\(k) + tail (\(t))"
        case .native: return "native"
        case .reference(let r): return "reference (\(r))"
        }
    }

    /// The same kernel labelled as run on one thread (a convolution on the direct kernels).
    var onOneThread: Kernel {
        if case .convolution(let c, let e) = self, c.directKernels != nil { return .convolution(.oneThread(c), epilogue: e) }
        return self
    }

    /// The label a profile adds to the op kind: the algorithm, without the epilogue detail.
    public var profileLabel: String {
        switch self {
        case .convolution(let c, _): return c.description
        case .upsampledConvolution(let c, let phases, _): return phases ? "\(c) by phases" : "upsample + \(c)"
        case .concatenatedConvolution(let c, let inParts, _): return inParts ? "\(c) over parts" : "concat + \(c)"
        case .withTail(let k, _): return k.profileLabel + " + tail"
        case .reference: return "reference"
        default: return description
        }
    }
}

/// One step of an executable's kernel plan, as `stegastamp graph plan --kernels` prints it.
public struct PlannedStep: Sendable {
    public let value: String
    public let op: String
    public let operandShapes: [[Int]]
    public let shape: [Int]
    public let kernel: Kernel
    /// Whether a measurement chose the kernel (autotuning), rather than the heuristics.
    public let tuned: Bool
}

/// What runs a step: operands, output buffer, scratch memory.
typealias KernelBody = (Args, UnsafeMutablePointer<Float>, Workspace) -> Void

extension Kernel {
    /// Plans one step: the kernel and the closure that runs it. `conv` picks the algorithm of
    /// a convolution-family step (heuristics or the tuner) among `ConvolutionPlanner.candidates`;
    /// `heuristic` serves the ops of a fused body the reference kernel evaluates op by op.
    static func plan(_ s: Step, jit: JITKernels?, epilogue: OutputEpilogue?, conv: (Step) -> ConvKernel,
                     heuristic: @escaping @Sendable (Step) -> ConvKernel) -> (Kernel, KernelBody) {
        if let jit, let k = jit.kernels[s.value] {
            return (.jit, { x, out, _ in JITKernels.call(k, x, out) })
        }
        if case .fused(let f) = s.op {
            if let (kernel, body) = CPUKernels.fusedConvolution(f, s, conv: conv) { return (kernel, body) }
            if let e = epilogue, let (contraction, run) = CPUKernels.contractionKernel(e.contraction, conv: conv) {
                let tail: Kernel, runTail: KernelBody
                if let jit, let k = jit.epilogueKernels[s.value] {
                    (tail, runTail) = (.jit, { x, out, _ in JITKernels.call(k, x, out) })
                } else if FusedLoops.covers(e.tail, e.tailStep) {
                    let (tailKernel, tailStep) = (e.tail, e.tailStep)
                    (tail, runTail) = (.loops, { x, out, w in _ = FusedLoops.run(tailKernel, tailStep, x, out, workspace: w) })
                } else {
                    return referencePlan(s, reason: "fused output kernel whose tail no loop takes", conv: heuristic)
                }
                let (cOps, tOps) = (e.contractionOperands, e.tailOperands)
                let body: KernelBody = { x, out, w in
                    withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: max(cOps.count, 1 + tOps.count)) { args in
                        for (k, o) in cOps.enumerated() { args[k] = x[o] }
                        run(UnsafePointer(args.baseAddress!), out, w)
                        args[0] = UnsafePointer(out)
                        for (k, o) in tOps.enumerated() { args[k + 1] = x[o] }
                        runTail(UnsafePointer(args.baseAddress!), out, w)
                    }
                }
                return (.withTail(contraction, tail: tail), body)
            }
            if FusedLoops.covers(f, s) {
                return (.loops, { x, out, w in _ = FusedLoops.run(f, s, x, out, workspace: w) })
            }
            if let split = FusedLoops.reductionSplit(f, s) {
                let n = Shape.count(split.step.shape)
                return (.loopsThenReduction, { x, out, w in
                    let scratch = w.buffer(.reductionInput, n, of: Float.self)
                    _ = FusedLoops.run(split.loop, split.step, x, scratch, workspace: w)
                    _ = CPUKernels.reduce(split.op, UnsafePointer(scratch), split.step.shape, axes: split.axes, out, w)
                })
            }
            return referencePlan(s, reason: "fused \(f.kind.rawValue) kernel no native loop takes", conv: heuristic)
        }
        if let planned = CPUKernels.kernel(for: s, conv: conv) { return planned }
        return referencePlan(s, reason: CPUKernels.uncoveredReason(s), conv: heuristic)
    }

    /// The reference kernel on copies (a fused body evaluated op by op, with the native kernels
    /// where they take an op).
    static func referencePlan(_ s: Step, reason: String, conv: @escaping @Sendable (Step) -> ConvKernel) -> (Kernel, KernelBody) {
        let body: KernelBody = { x, out, _ in
            let args = (0..<s.count).map { k in
                Tensor(shape: s.operandShapes[k], scalars: Array(UnsafeBufferPointer(start: x[k], count: Shape.count(s.operandShapes[k]))))
            }
            let result: Tensor
            if case .fused(let f) = s.op {
                result = ReferenceKernels.evaluate(f.body, args) { op, a, shape in
                    CPUKernels.run(op, a, shape: shape, conv: conv) ?? ReferenceKernels.run(op, a, shape: shape)
                }
            } else {
                result = ReferenceKernels.run(s.op, args, shape: s.shape)
            }
            result.scalars.withUnsafeBufferPointer { if let p = $0.baseAddress { out.update(from: p, count: $0.count) } }
        }
        return (.reference(reason: reason), body)
    }
}
