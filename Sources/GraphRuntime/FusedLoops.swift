import FastKernels
import GraphIR
import GraphKernels

/// Runs a fused `loop` kernel tile by tile: each body op works on chunks of `tile` elements in
/// small scratch buffers, so a chain of elementwise ops reads its inputs and writes its result once,
/// with no full-size intermediates. Operands are full-size, scalars, or repeat along the leading
/// axes (a bias); anything else falls back to the reference evaluation.
enum FusedLoops {
    static let tile = 2048

    enum Source {
        case full(UnsafePointer<Float>)
        case scalar(Float)
        /// Period `m`: element i reads p[i % m].
        case periodic(UnsafePointer<Float>, Int)
        /// Blocks of `b`: element i reads p[i / b] (a per-image value [n, 1, 1, 1] of a batch).
        case blocked(UnsafePointer<Float>, Int)
        case scratch(Int)
    }

    /// Whether `run` covers this kernel: a loop whose body ops are all elementwise at the result's shape.
    static func covers(_ f: FusedKernel, shape: [Int]) -> Bool {
        guard f.kind == .loop else { return false }
        for v in f.body.values where v.op != nil {
            switch v.op! {
            case .unary, .binary, .select: if v.shape != shape { return false }
            default: return false
            }
        }
        if case .parameter = f.body[f.body.outputs[0].value].definition { return false }
        return f.body[f.body.outputs[0].value].op != nil
    }

    /// Whether `run` takes this step: `covers`, and every operand full-size, a scalar, or
    /// repeating along the leading axes.
    static func covers(_ f: FusedKernel, _ s: Step) -> Bool {
        let shape = s.shape, n = Shape.count(shape)
        guard covers(f, shape: shape) else { return false }
        var argIndex = 0
        for v in f.body.values {
            let shapeOf: [Int]
            switch v.definition {
            case .input: shapeOf = s.operandShapes[argIndex]; argIndex += 1
            case .constant(let c): shapeOf = c.shape
            case .parameter: return false
            case .op: continue
            }
            let count = Shape.count(shapeOf)
            if count == 1 || shapeOf == shape || blockSize(shapeOf, shape) != nil { continue }
            let trimmed = Array(shapeOf.drop(while: { $0 == 1 }))
            guard Array(shape.suffix(trimmed.count)) == trimmed, count > 0, n % count == 0 else { return false }
        }
        return true
    }

    /// For an operand of `shape`'s rank that keeps its leading axes and is 1 along the rest
    /// ([n, 1, 1, 1] against [n, h, w, c]), how many consecutive elements share one of its values.
    static func blockSize(_ operand: [Int], _ shape: [Int]) -> Int? {
        guard operand.count == shape.count, let m = operand.firstIndex(of: 1), m > 0,
              operand[m...].allSatisfy({ $0 == 1 }), Array(operand[..<m]) == Array(shape[..<m]) else { return nil }
        let b = Shape.count(Array(shape[m...]))
        return b > 1 ? b : nil
    }

    /// A fused reduction as an elementwise loop (the body without its final reduction, over the
    /// reduction's input shape) and that reduction, when the loops and `CPUKernels.reduce` take
    /// both (a reduction over one contiguous block of axes).
    static func reductionSplit(_ f: FusedKernel, _ s: Step) -> (loop: FusedKernel, step: Step, op: ReduceOp, axes: [Int])? {
        let body = f.body
        guard f.kind == .input, body.outputs.count == 1, let last = body.values.indices.last,
              body.outputs[0].value.index == last,
              case .op(.reduce(let r, let axes, _), let operands) = body.values[last].definition, operands.count == 1,
              body[operands[0]].op != nil else { return nil }
        let sorted = axes.sorted()
        guard let first = sorted.first, sorted.last! - first + 1 == sorted.count else { return nil }
        let loop = FusedKernel(kind: .loop, body: Graph(name: body.name, values: Array(body.values.dropLast()),
                                                        outputs: [Output(name: body.outputs[0].name, value: operands[0])]))
        let step = Step(value: s.value, op: .fused(loop), operands: s.operands, operandShapes: s.operandShapes,
                        shape: body[operands[0]].shape, argStart: s.argStart, count: s.count)
        // An empty reduction input (a sum over a zero-length axis) stays with the reference kernel.
        guard Shape.count(step.shape) > 0, covers(loop, step) else { return nil }
        return (loop, step, r, sorted)
    }

    /// Runs the loop into `out` (which may be one of its full-size operands' buffers: every tile is
    /// read before it is written). False when the kernel is not covered.
    static func run(_ f: FusedKernel, _ s: Step, _ x: Args, _ out: UnsafeMutablePointer<Float>, workspace: Workspace) -> Bool {
        let shape = s.shape
        let n = Shape.count(shape)
        guard covers(f, shape: shape) else { return false }
        if n == 0 { return true }
        let body = f.body
        var constants: [Tensor] = []
        for v in body.values { if case .constant(let t) = v.definition { constants.append(t) } }
        return ArenaProgram.withPinned(constants) { constPointers -> Bool in
            var sources = [Source?](repeating: nil, count: body.values.count)
            var scratchCount = 0
            var argIndex = 0, constIndex = 0
            for (i, v) in body.values.enumerated() {
                let shapeOf: [Int]
                let p: UnsafePointer<Float>
                switch v.definition {
                case .input: shapeOf = s.operandShapes[argIndex]; p = x[argIndex]; argIndex += 1
                case .constant(let c): shapeOf = c.shape; p = constPointers[constIndex]; constIndex += 1
                case .parameter: return false
                case .op:
                    sources[i] = .scratch(scratchCount)
                    scratchCount += 1
                    continue
                }
                let count = Shape.count(shapeOf)
                if count == 1 { sources[i] = .scalar(p[0]) }
                else if shapeOf == shape { sources[i] = .full(p) }
                else if let b = blockSize(shapeOf, shape) { sources[i] = .blocked(p, b) }
                else {
                    let trimmed = Array(shapeOf.drop(while: { $0 == 1 }))
                    guard Array(shape.suffix(trimmed.count)) == trimmed, count > 0, n % count == 0 else { return false }
                    sources[i] = .periodic(p, count)
                }
            }
            let scratch = workspace.buffer(.loopScratch, max(scratchCount, 1) * tile, of: Float.self)
            // Staging for up to three broadcast operands of one op (select has three).
            let staging = workspace.buffer(.loopStaging, 3 * tile, of: Float.self)
            guard case .scratch(let r) = sources[body.outputs[0].value.index]! else { return false }
            var start = 0
            while start < n {
                let len = min(tile, n - start)
                for (i, v) in body.values.enumerated() {
                    guard case .op(let op, let operands) = v.definition, case .scratch(let slot) = sources[i]! else { continue }
                    apply(op, operands.map { sources[$0.index]! }, scratch + slot * tile, start: start, count: len, scratch: scratch, staging: staging)
                }
                (out + start).update(from: scratch + r * tile, count: len)
                start += len
            }
            return true
        }
    }

    /// Operand chunk as a contiguous pointer (copying periodic and scalar operands into `tmp`).
    @inline(__always)
    static func chunk(_ s: Source, start: Int, count: Int, scratch: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        switch s {
        case .full(let p): return p + start
        case .scratch(let slot): return UnsafePointer(scratch + slot * tile)
        case .scalar(let v): tmp.update(repeating: v, count: count); return UnsafePointer(tmp)
        case .periodic(let p, let m):
            var k = start % m
            for j in 0..<count { tmp[j] = p[k]; k += 1; if k == m { k = 0 } }
            return UnsafePointer(tmp)
        case .blocked(let p, let b):
            var j = 0
            while j < count {
                let block = (start + j) / b, end = min(count, (block + 1) * b - start)
                tmp.advanced(by: j).update(repeating: p[block], count: end - j)
                j = end
            }
            return UnsafePointer(tmp)
        }
    }

    static func apply(_ op: Op, _ a: [Source], _ dst: UnsafeMutablePointer<Float>, start: Int, count: Int,
                      scratch: UnsafeMutablePointer<Float>, staging tmp: UnsafeMutablePointer<Float>) {
        let x = chunk(a[0], start: start, count: count, scratch: scratch, tmp: tmp)
        switch op {
        case .unary(let u):
            ElementwiseLoops.unary(u, x, dst, count)
        case .binary(let b):
            let y = chunk(a[1], start: start, count: count, scratch: scratch, tmp: tmp + tile)
            ElementwiseLoops.binary(b, x, y, dst, count)
        case .select:
            let y = chunk(a[1], start: start, count: count, scratch: scratch, tmp: tmp + tile)
            let z = chunk(a[2], start: start, count: count, scratch: scratch, tmp: tmp + 2 * tile)
            ElementwiseLoops.select(x, y, z, dst, count)
        default:
            fatalError("FusedLoops.apply: \(op.name) is not elementwise (checked in run)")
        }
    }
}
