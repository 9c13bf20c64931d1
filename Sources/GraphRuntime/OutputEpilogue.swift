import GraphIR
import GraphJIT
import GraphPasses

/// A fused `output` kernel taken apart: its contraction (conv2d or matmul) writes the result
/// buffer, then its elementwise tail (bias, activation, residual...) runs over that buffer in
/// place, as a JIT kernel or a tiled Swift loop. Covers every output kernel the direct
/// convolution's bias/ReLU epilogue does not (matmul + bias, 1x1 and sgemm-path convolutions).
struct OutputEpilogue {
    /// The contraction as a step of its own (operands: kernel operands `contractionOperands`).
    let contraction: Step
    let contractionOperands: [Int]
    /// The tail: input 0 is the contraction's result, inputs 1... are kernel operands `tailOperands`.
    let tail: FusedKernel
    let tailStep: Step
    let tailOperands: [Int]

    init?(_ f: FusedKernel, _ s: Step) {
        guard f.kind == .output else { return nil }
        let body = f.body
        guard var c = body.values.firstIndex(where: { $0.op != nil }) else { return nil }
        func operandIndex(_ v: Int) -> Int? { body.inputs.firstIndex(of: ValueID(v)) }
        // A nearest upsampling or concatenation the convolution reads (`Passes.fusion`): the
        // contraction is the pair, as a fused step of its own.
        var prologue: (op: Op, sources: [Int], value: Int)? = nil
        if case .op(let p, let a) = body.values[c].definition,
           let next = body.values.indices.first(where: { $0 > c && body.values[$0].op != nil }),
           case .op(.conv2d(let attributes), let convArgs) = body.values[next].definition, convArgs[0].index == c,
           Passes.isConvolutionPrologue(p, image: body.values[c].shape, convolution: attributes) {
            let sources = a.compactMap { operandIndex($0.index) }
            guard sources.count == a.count else { return nil }
            prologue = (p, sources, c)
            c = next
        }
        guard case .op(let op, let args) = body.values[c].definition, body.values[c].shape == s.shape else { return nil }
        switch op {
        case .conv2d, .matmul: break
        default: return nil
        }
        if let prologue {
            guard case .conv2d = op, args[0].index == prologue.value, let k = operandIndex(args[1].index) else { return nil }
            let pair = GraphBuilder(name: "contraction")
            let xs = prologue.sources.enumerated().map { pair.input("x\($0.offset)", s.operandShapes[$0.element]) }
            let kernel = pair.input("k", s.operandShapes[k])
            pair.output("y", pair.apply(op, [pair.apply(prologue.op, xs), kernel]))
            guard let pairBody = try? pair.finish() else { return nil }
            contractionOperands = prologue.sources + [k]
            contraction = Step(value: s.value, op: .fused(FusedKernel(kind: .output, body: pairBody)), operands: contractionOperands,
                               operandShapes: contractionOperands.map { s.operandShapes[$0] }, shape: s.shape, argStart: 0,
                               count: contractionOperands.count)
        } else {
            let cOperands = args.compactMap { operandIndex($0.index) }
            guard cOperands.count == args.count else { return nil }  // a constant operand: not covered
            contractionOperands = cOperands
            contraction = Step(value: s.value, op: op, operands: cOperands, operandShapes: cOperands.map { s.operandShapes[$0] },
                               shape: s.shape, argStart: 0, count: cOperands.count)
        }
        // The tail as a body of its own.
        let b = GraphBuilder(name: "epilogue")
        var mapped: [Int: ValueID] = [c: b.input("acc", s.shape)]
        var tailOperands: [Int] = []
        for (i, v) in body.values.enumerated() where i > c {
            guard case .op(let op, let operands) = v.definition else { continue }
            var xs: [ValueID] = []
            for o in operands.map(\.index) {
                if mapped[o] == nil {
                    switch body.values[o].definition {
                    case .input:
                        guard let k = operandIndex(o) else { return nil }
                        mapped[o] = b.input("arg\(tailOperands.count + 1)", body.values[o].shape)
                        tailOperands.append(k)
                    case .constant(let t): mapped[o] = b.constant(t)
                    default: return nil
                    }
                }
                xs.append(mapped[o]!)
            }
            mapped[i] = b.apply(op, xs)
        }
        guard let result = mapped[body.outputs[0].value.index], result != mapped[c] else { return nil }
        b.output("result", result)
        guard let tailBody = try? b.finish(), ElementwiseKernel.accepts(tailBody, shape: s.shape) else { return nil }
        tail = FusedKernel(kind: .loop, body: tailBody)
        self.tailOperands = tailOperands
        tailStep = Step(value: s.value, op: .fused(tail), operands: [s.value] + tailOperands,
                        operandShapes: [s.shape] + tailOperands.map { s.operandShapes[$0] }, shape: s.shape, argStart: 0,
                        count: 1 + tailOperands.count)
    }

    /// The JIT kernel of the tail (input 0 is the output buffer itself).
    func jitKernel(name: String) -> ElementwiseKernel {
        ElementwiseKernel(name: name, body: tail.body, operandShapes: tailStep.operandShapes, shape: tailStep.shape, inPlaceOperands: [0])
    }
}
