import FastKernels
import FastKernelSupport
import GraphIR
import GraphPasses

/// Chooses the algorithm of every convolution-family step when an executable is compiled: the
/// measured choice of the tuner where tuning is on, otherwise the heuristics of
/// `CompileOptions.convolution` (the rules measured by hand on one CPU, 2026-11-30).
struct ConvolutionPlanner {
    let options: CompileOptions
    let tuner: KernelTuner?

    /// The step's convolution geometry: forward x / kernel / output, whatever the op.
    struct Shapes {
        let g: CPUKernels.ConvGeometry
        let forward: DirectConvGeometry
        let kind: Kind
        enum Kind { case forward, inputGradient, filterGradient }

        init?(_ s: Step) {
            let sh = s.operandShapes
            switch s.op {
            case .conv2d(let c):
                g = .init(x: sh[0], kernel: sh[1], out: s.shape, c)
                forward = DirectConvGeometry(input: sh[0], kernel: sh[1], output: s.shape, strides: c.strides, padding: c.padding)
                kind = .forward
            case .conv2dBackpropInput(let c, _):
                g = .init(x: s.shape, kernel: sh[1], out: sh[0], c)
                forward = DirectConvGeometry(input: s.shape, kernel: sh[1], output: sh[0], strides: c.strides, padding: c.padding)
                kind = .inputGradient
            case .conv2dBackpropFilter(let c, _):
                g = .init(x: sh[0], kernel: s.shape, out: sh[1], c)
                forward = DirectConvGeometry(input: sh[0], kernel: s.shape, output: sh[1], strides: c.strides, padding: c.padding)
                kind = .filterGradient
            case .fused(let f):
                // A convolution over its prologue's image (`Passes.isConvolutionPrologue`): the rules and
                // the candidates read the convolution as the graph wrote it; the tuner times the fused kernel.
                guard let (c, image, kernel) = Self.prologueConvolution(f) else { return nil }
                g = .init(x: image, kernel: kernel, out: s.shape, c)
                forward = DirectConvGeometry(input: image, kernel: kernel, output: s.shape, strides: c.strides, padding: c.padding)
                kind = .forward
            default: return nil
            }
        }

        /// The convolution of an output kernel that starts with a prologue: its attributes, image and kernel shapes.
        static func prologueConvolution(_ f: FusedKernel) -> (ConvAttributes, image: [Int], kernel: [Int])? {
            let ops = f.body.values.indices.filter { f.body.values[$0].op != nil }
            guard f.kind == .output, ops.count >= 2, case .op(let p, _) = f.body.values[ops[0]].definition,
                  case .op(.conv2d(let c), let a) = f.body.values[ops[1]].definition, a[0].index == ops[0],
                  Passes.isConvolutionPrologue(p, image: f.body.values[ops[0]].shape, convolution: c) else { return nil }
            return (c, f.body.values[ops[0]].shape, f.body.values[a[1].index].shape)
        }

        /// Multiply-adds of the convolution (the same for its two gradients).
        var multiplyAdds: Int { g.n * g.oh * g.ow * g.co * g.k }

        /// Whether the direct kernels of `isa` can run the step (Winograd allowed or not).
        func directTakes(_ isa: VectorISA, winograd: Bool, heuristic: Bool) -> Bool {
            let d = DirectKernels(isa: isa, winograd: winograd)
            // The heuristics keep 1x1 convolutions on sgemm (measured faster, 2026-11-30); the
            // tuner may try the direct kernels there too.
            let wide = heuristic ? g.prefersDirect : g.ow >= 8
            switch kind {
            case .forward: return d.takes(forward, wide: wide)
            case .inputGradient:
                // The heuristics also keep strided steps with few input channels on sgemm + col2im
                // (the 3-channel image: 3 of a tile's 16-32 lanes, plus the scatter; 4x400x400x3 on
                // Zen 4 with OpenBLAS Cooperlake: 8.6 against 7.1 ms); the tuner tries both (on the
                // Emerald Rapids machine, where OpenBLAS runs its Prescott kernels, sgemm took 24 ms).
                if heuristic && (g.isPointwise || ((g.sh > 1 || g.sw > 1) && g.ci < 16)) { return false }
                return CPUKernels.inputGradientPhases(g, d) != nil
            case .filterGradient: return wide
            }
        }

        /// Whether Winograd actually runs (else `.winograd` computes exactly as `.direct`).
        func winogradRuns(_ isa: VectorISA) -> Bool {
            switch kind {
            case .forward, .filterGradient: return FastKernels.DirectConv.winogradApplies(forward)
            case .inputGradient:
                guard g.sh == 1 && g.sw == 1, let phases = CPUKernels.inputGradientPhases(g, DirectKernels(isa: isa, winograd: true)),
                      let p = phases.first?.geometry else { return false }
                return FastKernels.DirectConv.winogradApplies(p)
            }
        }
    }

    /// Whether a matmul step is one the skinny kernels take (one side at most 8, and enough work
    /// for the choice to matter). The planner offers them as `.direct(isa)`, OpenBLAS as `.gemm`.
    static func skinny(_ s: Step) -> Bool {
        guard case .matmul(let ta, let tb) = s.op, s.shape.count >= 2, let a = s.operandShapes.first, a.count == s.shape.count else { return false }
        let (_, m, n, k) = CPUKernels.matmulSizes(a, transA: ta, s.shape)
        return m * n * k >= 1 << 14 && SkinnyGemm.takes(transA: ta, transB: tb, m: m, n: n, k: k)
    }

    /// Today's rules: `options.convolution`'s kernels at `options.vectorISA` where they take the shape.
    func heuristic(_ s: Step) -> ConvKernel {
        if case .matmul = s.op { return Self.skinny(s) && options.convolution != .gemm ? .direct(options.vectorISA) : .gemm }
        guard options.convolution != .gemm, let shapes = Shapes(s) else { return .gemm }
        let isa = options.vectorISA, winograd = options.convolution == .winograd
        guard shapes.directTakes(isa, winograd: winograd, heuristic: true) else { return .gemm }
        let needsWinograd = !shapes.directTakes(isa, winograd: false, heuristic: true)
        return winograd && (shapes.winogradRuns(isa) || needsWinograd) ? .winograd(isa) : .direct(isa)
    }

    /// Steps up to this many multiply-adds (0.1-0.3 ms on one core of the machines seen) also try
    /// their direct kernels on one thread.
    static let oneThreadLimit = 1 << 24

    /// Every kernel that can run the step, the heuristic's choice first.
    static func candidates(_ s: Step, heuristic: ConvKernel) -> [ConvKernel] {
        if skinny(s) {
            var seen = Set<ConvKernel>()
            return ([heuristic] + VectorISA.available.map { .direct($0) } + [.gemm]).filter { seen.insert($0).inserted }
        }
        guard let shapes = Shapes(s) else { return [.gemm] }
        var out = [heuristic]
        for isa in VectorISA.available {
            if shapes.directTakes(isa, winograd: false, heuristic: false) { out.append(.direct(isa)) }
            if shapes.winogradRuns(isa) && shapes.directTakes(isa, winograd: true, heuristic: false) { out.append(.winograd(isa)) }
        }
        // Small steps: each direct kernel also on one thread (the split may cost more than it gains).
        if shapes.multiplyAdds <= Self.oneThreadLimit {
            out += out.filter { $0.directKernels != nil }.map { .oneThread($0) }
        }
        out.append(.gemm)
        var seen = Set<ConvKernel>()
        return out.filter { seen.insert($0).inserted }
    }

    /// The kernel for the step, and how the tuner got it (nil: the heuristics chose).
    func choose(_ s: Step) -> (ConvKernel, KernelTuner.Outcome?) {
        let h = heuristic(s)
        guard let tuner, Shape.count(s.shape) > 0 else { return (h, nil) }
        let candidates = Self.candidates(s, heuristic: h)
        if candidates.count < 2 { return (h, nil) }
        return tuner.choose(s, candidates: candidates, loadLimit: options.tuningLoadLimit)
    }
}

/// The tuner's view of one convolution, for benchmarks: every candidate kernel with its time.
public enum ConvolutionCandidates {
    /// (kernel, seconds per call) for every kernel that can run `op` on operands of these shapes, the
    /// rules' choice first; timed as the tuner times them.
    public static func timed(_ op: Op, operandShapes: [[Int]], shape: [Int], options: CompileOptions = CompileOptions()) -> [(ConvKernel, Double)] {
        let s = Step(value: 0, op: op, operands: Array(operandShapes.indices), operandShapes: operandShapes, shape: shape, argStart: 0,
                     count: operandShapes.count)
        let heuristic = ConvolutionPlanner(options: options, tuner: nil).heuristic(s)
        return ConvolutionPlanner.candidates(s, heuristic: heuristic).map { ($0, KernelTuner.time(s, $0)) }
    }
}
