import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Fast kernels for the `cpu` backend. They write into the output buffer the memory plan gave
/// them (which may be an operand's own buffer for elementwise ops) and return false for cases
/// they do not cover, where the reference kernel runs instead. Tested op by op against
/// `ReferenceKernels`.
enum CPUKernels {

    /// The native kernel of a step, chosen when the executable is compiled: the switch over the op
    /// and its shapes runs here once, the closure per call. Nil where no native kernel takes the
    /// step (`uncoveredReason` says why); the plan then names the reference kernel.
    static func kernel(for s: Step, conv: (Step) -> ConvKernel) -> (Kernel, KernelBody)? {
        let n = Shape.count(s.shape)
        if n == 0 { return (.native, { _, _, _ in }) }
        let shapes = s.operandShapes, shape = s.shape
        switch s.op {
        case .matmul(let ta, let tb):
            return (.gemm, { x, out, _ in matmul(x[0], x[1], shapes[0], ta, tb, shape, out) })
        case .conv2d(let c):
            let k = conv(s)
            return (.convolution(k, epilogue: nil), { x, out, w in conv2d(x[0], x[1], shapes[0], shapes[1], c, shape, out, kernel: k, w) })
        case .conv2dBackpropInput(let c, _):
            let k = conv(s)
            return (.convolution(k, epilogue: nil),
                    { x, out, w in conv2dBackpropInput(x[0], x[1], shapes[0], shapes[1], c, shape, out, kernel: k, w) })
        case .conv2dBackpropFilter(let c, _):
            let k = conv(s)
            return (.convolution(k, epilogue: nil),
                    { x, out, w in conv2dBackpropFilter(x[0], x[1], shapes[0], shapes[1], c, shape, out, kernel: k, w) })
        case .unary(let u): return (.native, { x, out, _ in unary(u, x[0], out, n) })
        case .binary(let b):
            guard binaryCovers(shapes[0], shapes[1], shape) else { return nil }
            return (.native, { x, out, _ in _ = binary(b, x[0], shapes[0], x[1], shapes[1], shape, out) })
        case .select:
            guard shapes.allSatisfy({ $0 == shape }) else { return nil }
            return (.native, { x, out, _ in for i in 0..<n { out[i] = x[0][i] != 0 ? x[1][i] : x[2][i] } })
        case .reduce(let r, let axes, _):
            return (.native, { x, out, w in
                if !reduce(r, x[0], shapes[0], axes: axes, out, w) { reduceStrided(r, x[0], shapes[0], axes: axes, out, n) }
            })
        case .reshape: return (.native, { x, out, _ in if UnsafePointer(out) != x[0] { out.update(from: x[0], count: n) } })
        case .transpose(let perm):
            let xs = Shape.strides(shapes[0]), strides = perm.map { xs[$0] }
            return (.native, { x, out, _ in stridedCopy(x[0], strides: strides, origin: 0, shape, out) })
        case .broadcast:
            let xs = Shape.strides(shapes[0]), lead = shape.count - shapes[0].count
            let strides = shape.indices.map { a in a < lead || shapes[0][a - lead] == 1 ? 0 : xs[a - lead] }
            return (.native, { x, out, _ in stridedCopy(x[0], strides: strides, origin: 0, shape, out) })
        case .slice(let begin, _):
            let xs = Shape.strides(shapes[0]), origin = zip(begin, xs).map(*).reduce(0, +)
            return (.native, { x, out, _ in stridedCopy(x[0], strides: xs, origin: origin, shape, out) })
        case .concat(let axis):
            let outer = Shape.count(Array(shape[..<axis])), inner = Shape.count(Array(shape[(axis + 1)...]))
            let blocks = (0..<s.count).map { shapes[$0][axis] * inner }
            let row = blocks.reduce(0, +)
            return (.native, { x, out, _ in
                nonisolated(unsafe) let (parts, result) = (x, out)
                onBothCores(outer, elements: n) { range in
                    for o in range {
                        var dst = result + o * row
                        for (k, block) in blocks.enumerated() {
                            copy(parts[k] + o * block, to: dst, block)
                            dst += block
                        }
                    }
                }
            })
        case .pad(let before, _, .constant, let value):
            let os = Shape.strides(shape), origin = zip(before, os).map(*).reduce(0, +)
            return (.native, { x, out, _ in
                out.update(repeating: value, count: n)
                scatterCopy(x[0], shapes[0], into: out + origin, strides: os)
            })
        case .upsampleNearest(let f): return (.native, { x, out, _ in upsample(x[0], shapes[0], f, shape, out) })
        case .avgPool(let win, let st): return (.native, { x, out, _ in pool(x[0], shapes[0], win, st, shape, out, max: false) })
        case .maxPool(let win, let st): return (.native, { x, out, _ in pool(x[0], shapes[0], win, st, shape, out, max: true) })
        case .avgPoolBackprop(let win, let st, _): return (.native, { x, out, _ in avgPoolBackprop(x[0], shapes[0], win, st, shape, out) })
        case .maxPoolBackprop(let win, let st):
            return (.native, { x, out, _ in maxPoolBackprop(x[0], shapes[0], x[1], shapes[1], win, st, out) })
        case .bilinearSample(let mode): return (.native, { x, out, _ in sample(x[0], shapes[0], x[1], shapes[1], mode, out) })
        case .bilinearSampleGradImage(let mode, _):
            return (.native, { x, out, _ in sampleGradImage(x[0], x[1], shapes[1], mode, shape, out) })
        case .bilinearSampleGradCoords(let mode):
            return (.native, { x, out, _ in sampleGradCoords(x[0], shapes[0], x[1], shapes[1], x[2], mode, out) })
        case .randomUniform(_, let key): return (.native, { x, out, _ in random(x[0][0], key, n, normal: false, out) })
        case .randomNormal(_, let key): return (.native, { x, out, _ in random(x[0][0], key, n, normal: true, out) })
        case .allReduce(let r):
            return (.native, { x, out, _ in
                if UnsafePointer(out) != x[0] { out.update(from: x[0], count: n) }
                Collectives.allReduce(out, count: n, op: r)
            })
        // No native kernel: the reference runs them (named in the plan). Listed, not defaulted, so
        // a new op is a compile error here until it is placed.
        case .pad, .reverse, .projectiveWarp, .projectiveWarpTranspose, .fused: return nil
        }
    }

    /// Why `kernel(for:)` has no native kernel for a step (the plan prints it).
    static func uncoveredReason(_ s: Step) -> String {
        switch s.op {
        case .binary: return "broadcast pattern \(Shape.describe(s.operandShapes[0])) x \(Shape.describe(s.operandShapes[1])) not covered"
        case .select: return "broadcasting select"
        case .pad(_, _, let mode, _): return "\(mode) padding"
        default: return "no native kernel for \(s.op.name)"
        }
    }

    /// The same kernels on tensors (fused bodies that fall back to evaluation op by op).
    static func run(_ op: Op, _ a: [Tensor], shape: [Int], conv: (Step) -> ConvKernel) -> Tensor? {
        let step = Step(value: 0, op: op, operands: Array(a.indices), operandShapes: a.map(\.shape), shape: shape, argStart: 0, count: a.count)
        guard let (_, body) = kernel(for: step, conv: conv) else { return nil }
        var out = [Float](repeating: 0, count: Shape.count(shape))
        ArenaProgram.withPinned(a) { pointers in
            pointers.withUnsafeBufferPointer { args in
                out.withUnsafeMutableBufferPointer {
                    body(args.baseAddress!, $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!, Workspace())
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func unary(_ u: UnaryOp, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        switch u {
        case .neg: for i in 0..<n { out[i] = -x[i] }
        case .relu: for i in 0..<n { out[i] = x[i] > 0 ? x[i] : 0 }
        case .abs: for i in 0..<n { out[i] = Swift.abs(x[i]) }
        case .sqrt: for i in 0..<n { out[i] = x[i].squareRoot() }
        case .stopGradient: if UnsafePointer(out) != x { out.update(from: x, count: n) }
        default:
            let f = ReferenceKernels.unaryFunction(u)
            for i in 0..<n { out[i] = f(x[i]) }
        }
    }

    /// A fused `output` kernel that is exactly conv2d -> add(bias [co]) [-> relu] whose convolution
    /// runs on the direct kernels: one pass with the epilogue applied as tiles are stored. Nil for
    /// any other body, or where the convolution goes to sgemm (the plan then runs it with its tail).
    static func fusedConvolution(_ f: FusedKernel, _ s: Step, conv: (Step) -> ConvKernel) -> (Kernel, KernelBody)? {
        guard f.kind == .output else { return nil }
        let body = f.body
        let ops = body.values.enumerated().filter { $0.element.op != nil }
        guard ops.count == 2 || ops.count == 3 else { return nil }
        func argIndex(_ id: ValueID) -> Int? { body.inputs.firstIndex(of: id) }
        let shapes = s.operandShapes
        guard case .op(.conv2d(let c), let convArgs) = ops[0].element.definition,
              let xi = argIndex(convArgs[0]), let ki = argIndex(convArgs[1]),
              case .op(.binary(.add), let addArgs) = ops[1].element.definition, addArgs[0].index == ops[0].offset,
              let bi = argIndex(addArgs[1]), shapes[bi] == [shapes[ki][3]] else { return nil }
        var relu = false
        if ops.count == 3 {
            guard case .op(.unary(.relu), let r) = ops[2].element.definition, r[0].index == ops[1].offset else { return nil }
            relu = true
        }
        guard body.outputs[0].value.index == ops.last!.offset else { return nil }
        let g = ConvGeometry(x: shapes[xi], kernel: shapes[ki], out: s.shape, c)
        if g.k == 0 || Shape.count(s.shape) == 0 { return nil }
        let contraction = Step(value: s.value, op: .conv2d(c), operands: [xi, ki], operandShapes: [shapes[xi], shapes[ki]], shape: s.shape,
                               argStart: 0, count: 2)
        let choice = conv(contraction)
        guard let direct = choice.directKernels else { return nil }
        let geometry = DirectConvGeometry(input: shapes[xi], kernel: shapes[ki], output: s.shape, strides: c.strides, padding: c.padding)
        return (.convolution(choice, epilogue: relu ? "bias+relu" : "bias"), { x, out, w in
            direct.forward(x[xi], x[ki], out, geometry, bias: x[bi], relu: relu, workspace: w)
        })
    }

    /// Whether `binary` takes these shapes: same shape, a scalar, or an operand that repeats along
    /// the leading axes (a bias), on either side.
    static func binaryCovers(_ xShape: [Int], _ yShape: [Int], _ shape: [Int]) -> Bool {
        let n = Shape.count(shape), xn = Shape.count(xShape), yn = Shape.count(yShape)
        func periodic(_ small: [Int]) -> Bool {
            let trimmed = Array(small.drop(while: { $0 == 1 }))
            return Array(shape.suffix(trimmed.count)) == trimmed
        }
        if xn == n && yn == n && xShape == shape && yShape == shape { return true }
        if xShape == shape && (yn == 1 || periodic(yShape)) && yn > 0 { return true }
        return yShape == shape && (xn == 1 || periodic(xShape)) && xn > 0
    }

    /// Same-shape, scalar and trailing-broadcast (bias) cases without index arrays.
    static func binary(_ b: BinaryOp, _ x: UnsafePointer<Float>, _ xShape: [Int], _ y: UnsafePointer<Float>, _ yShape: [Int],
                       _ shape: [Int], _ out: UnsafeMutablePointer<Float>) -> Bool {
        let n = Shape.count(shape)
        let xn = Shape.count(xShape), yn = Shape.count(yShape)
        func periodic(_ small: [Int]) -> Bool {
            let trimmed = Array(small.drop(while: { $0 == 1 }))
            return Array(shape.suffix(trimmed.count)) == trimmed
        }
        if xn == n && yn == n && xShape == shape && yShape == shape {
            switch b {
            case .add: for i in 0..<n { out[i] = x[i] + y[i] }
            case .sub: for i in 0..<n { out[i] = x[i] - y[i] }
            case .mul: for i in 0..<n { out[i] = x[i] * y[i] }
            case .div: for i in 0..<n { out[i] = x[i] / y[i] }
            default:
                let f = ReferenceKernels.binaryFunction(b)
                for i in 0..<n { out[i] = f(x[i], y[i]) }
            }
        } else if xShape == shape && (yn == 1 || periodic(yShape)) && yn > 0 {
            let f = ReferenceKernels.binaryFunction(b)
            if yn == 1 {
                let v = y[0]
                switch b {
                case .add: for i in 0..<n { out[i] = x[i] + v }
                case .mul: for i in 0..<n { out[i] = x[i] * v }
                default: for i in 0..<n { out[i] = f(x[i], v) }
                }
            } else {
                var i = 0
                while i < n {
                    switch b {
                    case .add: for j in 0..<yn { out[i + j] = x[i + j] + y[j] }
                    case .mul: for j in 0..<yn { out[i + j] = x[i + j] * y[j] }
                    default: for j in 0..<yn { out[i + j] = f(x[i + j], y[j]) }
                    }
                    i += yn
                }
            }
        } else if yShape == shape && (xn == 1 || periodic(xShape)) && xn > 0 {
            let f = ReferenceKernels.binaryFunction(b)
            var i = 0
            while i < n {
                for j in 0..<xn { out[i + j] = f(x[j], y[i + j]) }
                i += xn
            }
        } else {
            return false
        }
        return true
    }

    /// Reductions over one contiguous block of axes: the input is [outer, r, inner], the result
    /// [outer, inner]; double accumulation like the reference kernel.
    static func reduce(_ r: ReduceOp, _ x: UnsafePointer<Float>, _ shape: [Int], axes: [Int], _ out: UnsafeMutablePointer<Float>,
                       _ workspace: Workspace) -> Bool {
        let sorted = axes.sorted()
        guard let first = sorted.first, sorted.last! - first + 1 == sorted.count else { return false }
        let outer = Shape.count(Array(shape[..<first]))
        let count = Shape.count(Array(shape[first...sorted.last!]))
        let inner = Shape.count(Array(shape[(sorted.last! + 1)...]))
        if count == 0 { return false }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: max(inner, 1)) { acc -> Bool in
            for o in 0..<outer {
                let base = x + o * count * inner
                if r == .max {
                    for j in 0..<inner { out[o * inner + j] = base[j] }
                    for k in 1..<max(count, 1) {
                        let row = base + k * inner
                        for j in 0..<inner {
                            let v = row[j], m = out[o * inner + j]
                            if v.isNaN || m.isNaN { out[o * inner + j] = .nan } else if v > m { out[o * inner + j] = v }
                        }
                    }
                    continue
                }
                if inner == 1 {
                    // Blocks of 8 float partial sums, added in double.
                    var total = 0.0, k = 0
                    while k + 8 <= count {
                        var p = SIMD8<Float>()
                        let end = min(count, k + 4096) & ~7
                        while k < end { p += UnsafeRawPointer(base + k).loadUnaligned(as: SIMD8<Float>.self); k += 8 }
                        total += Double(p.sum())
                    }
                    while k < count { total += Double(base[k]); k += 1 }
                    out[o] = Float(r == .mean ? total / Double(count) : total)
                    continue
                }
                if outer == 1 && count >= 64 && count * inner >= 1 << 16 {
                    // A bias gradient: the rows split between the cores, each with its own sums.
                    let partial = workspace.buffer(.sums, 2 * inner, of: Double.self)
                    partial.update(repeating: 0, count: 2 * inner)
                    nonisolated(unsafe) let (sums, rows) = (partial, base)
                    Parallel.forEach(2) { part in
                        let mine = sums + part * inner
                        for k in (count * part / 2)..<(count * (part + 1) / 2) {
                            let row = rows + k * inner
                            for j in 0..<inner { mine[j] += Double(row[j]) }
                        }
                    }
                    for j in 0..<inner {
                        let total = partial[j] + partial[inner + j]
                        out[j] = Float(r == .mean ? total / Double(count) : total)
                    }
                    continue
                }
                acc.initialize(repeating: 0)
                for k in 0..<count {
                    let row = base + k * inner
                    for j in 0..<inner { acc[j] += Double(row[j]) }
                }
                for j in 0..<inner { out[o * inner + j] = Float(r == .mean ? acc[j] / Double(count) : acc[j]) }
            }
            return true
        }
    }

    /// Any other reduction (the upsampling gradient's [n, h, f, w, f, c] summed over the two f axes):
    /// the input walked in order, each run of its last axis added into the output row it maps to.
    static func reduceStrided(_ r: ReduceOp, _ x: UnsafePointer<Float>, _ shape: [Int], axes: [Int], _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        var kept = shape
        for a in axes { kept[a] = 1 }
        let keptStrides = Shape.strides(kept)
        let outStrides = shape.indices.map { axes.contains($0) ? 0 : keptStrides[$0] }
        let count = Shape.count(shape) / max(n, 1)
        out.update(repeating: r == .max ? -.infinity : 0, count: n)
        guard let last = shape.last else { return }
        let lastStride = outStrides[outStrides.count - 1]
        var src = x
        ReferenceKernels.gather(Array(shape.dropLast()), strides: Array(outStrides.dropLast()), origin: 0) { _, o in
            let dst = out + o
            switch (r, lastStride) {
            case (.max, 0): for j in 0..<last { let v = src[j]; if v.isNaN || dst[0].isNaN { dst[0] = .nan } else if v > dst[0] { dst[0] = v } }
            case (.max, _): for j in 0..<last { let v = src[j]; if v.isNaN || dst[j].isNaN { dst[j] = .nan } else if v > dst[j] { dst[j] = v } }
            case (_, 0): var t: Float = 0; for j in 0..<last { t += src[j] }; dst[0] += t
            default: for j in 0..<last { dst[j] += src[j] }
            }
            src += last
        }
        if r == .mean { let scale = 1 / Float(count); for i in 0..<n { out[i] *= scale } }
    }

    /// Runs `body` over 0..<count, in two halves on both cores when the work (`elements` floats
    /// moved) is large enough to pay for it: the data-movement kernels are memory-bound, and one
    /// core alone does not reach the memory bandwidth.
    static func onBothCores(_ count: Int, elements: Int, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        if count >= 2 && elements >= 1 << 16 {
            Parallel.forEach(2) { part in body((count * part / 2)..<(count * (part + 1) / 2)) }
        } else {
            body(0..<count)
        }
    }

    /// memcpy for long runs; a plain loop (vectorised) for the short per-pixel runs of channel
    /// concatenation and slicing, where a call per run cost more than the copy.
    @inline(__always)
    static func copy(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, _ count: Int) {
        if count >= 256 { dst.update(from: src, count: count) } else { for j in 0..<count { dst[j] = src[j] } }
    }

    /// out[i] = x[origin + sum(index_a * strides_a)] for every index of `shape`, the last axis as
    /// one run.
    static func stridedCopy(_ x: UnsafePointer<Float>, strides: [Int], origin: Int, _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        let n = Shape.count(shape)
        if n == 0 { return }
        // The leading dimension (images) split between the cores.
        if shape.count >= 2 && shape[0] >= 2 && n >= 1 << 16 {
            let inner = Array(shape.dropFirst()), innerStrides = Array(strides.dropFirst()), rows = n / shape[0]
            nonisolated(unsafe) let (src, result) = (x, out)
            onBothCores(shape[0], elements: n) { range in
                for i in range { stridedCopyRows(src, strides: innerStrides, origin: origin + i * strides[0], inner, result + i * rows) }
            }
            return
        }
        stridedCopyRows(x, strides: strides, origin: origin, shape, out)
    }

    private static func stridedCopyRows(_ x: UnsafePointer<Float>, strides: [Int], origin: Int, _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        guard let last = shape.last else { out[0] = x[origin]; return }
        let stride = strides[strides.count - 1]
        let outerShape = Array(shape.dropLast())
        var dst = out
        ReferenceKernels.gather(outerShape, strides: Array(strides.dropLast()), origin: origin) { _, o in
            let src = x + o
            if stride == 1 { copy(src, to: dst, last) }
            else if stride == 0 { dst.update(repeating: src[0], count: last) }
            else { for j in 0..<last { dst[j] = src[j * stride] } }
            dst += last
        }
    }

    /// Writes x (shape `shape`) into `out` at every index, with the destination's strides.
    static func scatterCopy(_ x: UnsafePointer<Float>, _ shape: [Int], into out: UnsafeMutablePointer<Float>, strides: [Int]) {
        if Shape.count(shape) == 0 { return }
        guard let last = shape.last else { out[0] = x[0]; return }
        var src = x
        ReferenceKernels.gather(Array(shape.dropLast()), strides: Array(strides.dropLast()), origin: 0) { _, o in
            (out + o).update(from: src, count: last)
            src += last
        }
    }

    // Pooling (VALID windows, as the reference kernels): channels innermost, images on both cores.

    static func pool(_ x: UnsafePointer<Float>, _ xShape: [Int], _ win: [Int], _ st: [Int], _ shape: [Int],
                     _ out: UnsafeMutablePointer<Float>, max: Bool) {
        let (h, w, c) = (xShape[1], xShape[2], xShape[3])
        let (oh, ow) = (shape[1], shape[2])
        let scale = 1 / Float(win[0] * win[1])
        nonisolated(unsafe) let (src, result) = (x, out)
        perImage(shape[0]) { b in
            for i in 0..<oh {
                for j in 0..<ow {
                    let o = result + ((b * oh + i) * ow + j) * c
                    for di in 0..<win[0] {
                        for dj in 0..<win[1] {
                            let p = src + ((b * h + i * st[0] + di) * w + j * st[1] + dj) * c
                            if di == 0 && dj == 0 { o.update(from: p, count: c); continue }
                            if max {
                                // The reference's rule: a larger value or a NaN takes the window.
                                for q in 0..<c where p[q] > o[q] || p[q].isNaN { o[q] = p[q] }
                            } else {
                                for q in 0..<c { o[q] += p[q] }
                            }
                        }
                    }
                    if !max { for q in 0..<c { o[q] *= scale } }
                }
            }
        }
    }

    static func avgPoolBackprop(_ dy: UnsafePointer<Float>, _ dyShape: [Int], _ win: [Int], _ st: [Int], _ shape: [Int],
                                _ out: UnsafeMutablePointer<Float>) {
        let (h, w, c) = (shape[1], shape[2], shape[3])
        let (oh, ow) = (dyShape[1], dyShape[2])
        let scale = 1 / Float(win[0] * win[1])
        out.update(repeating: 0, count: Shape.count(shape))
        nonisolated(unsafe) let (grad, result) = (dy, out)
        perImage(shape[0]) { b in
            for i in 0..<oh {
                for j in 0..<ow {
                    let g = grad + ((b * oh + i) * ow + j) * c
                    for di in 0..<win[0] {
                        for dj in 0..<win[1] {
                            let d = result + ((b * h + i * st[0] + di) * w + j * st[1] + dj) * c
                            for q in 0..<c { d[q] += g[q] * scale }
                        }
                    }
                }
            }
        }
    }

    static func maxPoolBackprop(_ x: UnsafePointer<Float>, _ xShape: [Int], _ dy: UnsafePointer<Float>, _ dyShape: [Int],
                                _ win: [Int], _ st: [Int], _ out: UnsafeMutablePointer<Float>) {
        let (h, w, c) = (xShape[1], xShape[2], xShape[3])
        let (oh, ow) = (dyShape[1], dyShape[2])
        out.update(repeating: 0, count: Shape.count(xShape))
        nonisolated(unsafe) let (src, grad, result) = (x, dy, out)
        perImage(xShape[0]) { b in
            for i in 0..<oh {
                for j in 0..<ow {
                    for q in 0..<c {
                        var best = -Float.infinity, at = -1
                        for di in 0..<win[0] {
                            for dj in 0..<win[1] {
                                let idx = ((b * h + i * st[0] + di) * w + j * st[1] + dj) * c + q
                                let v = src[idx]
                                if at < 0 || v > best || v.isNaN { best = v; at = idx }
                            }
                        }
                        result[at] += grad[((b * oh + i) * ow + j) * c + q]
                    }
                }
            }
        }
    }

    // Bilinear sampling (`Sampling.taps` decides corners and weights, as in the reference kernel):
    // images split between the cores, no per-pixel allocation.

    static func perImage(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        if n >= 2 { Parallel.forEach(n) { body($0) } } else { for b in 0..<n { body(b) } }
    }

    static func sample(_ image: UnsafePointer<Float>, _ iShape: [Int], _ coords: UnsafePointer<Float>, _ cShape: [Int],
                       _ mode: SampleMode, _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (iShape[0], iShape[1], iShape[2], iShape[3])
        let pixels = cShape[1] * cShape[2]
        nonisolated(unsafe) let (img, xy, result) = (image, coords, out)
        perImage(n) { b in
            for p in 0..<pixels {
                let k = b * pixels + p
                let t = Sampling.taps(xy[2 * k], xy[2 * k + 1], h: h, w: w, mode: mode)
                let o = result + k * c
                if t.nan { o.update(repeating: .nan, count: c); continue }
                if c == 3 {
                    // RGB (the STN and the warps): the three sums in registers, stored once.
                    var (r, g, bl): (Float, Float, Float) = (0, 0, 0)
                    @inline(__always) func tap3(_ i: Int, _ wgt: Float) {
                        if i < 0 { return }
                        let src = img + (b * h * w + i) * 3
                        r += wgt * src[0]; g += wgt * src[1]; bl += wgt * src[2]
                    }
                    tap3(t.index.0, t.weight.0); tap3(t.index.1, t.weight.1); tap3(t.index.2, t.weight.2); tap3(t.index.3, t.weight.3)
                    o[0] = r; o[1] = g; o[2] = bl
                    continue
                }
                o.update(repeating: 0, count: c)
                @inline(__always) func tap(_ i: Int, _ wgt: Float) {
                    if i < 0 { return }
                    let src = img + (b * h * w + i) * c
                    for q in 0..<c { o[q] += wgt * src[q] }
                }
                tap(t.index.0, t.weight.0); tap(t.index.1, t.weight.1); tap(t.index.2, t.weight.2); tap(t.index.3, t.weight.3)
            }
        }
    }

    static func sampleGradImage(_ dy: UnsafePointer<Float>, _ coords: UnsafePointer<Float>, _ cShape: [Int], _ mode: SampleMode,
                                _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let pixels = cShape[1] * cShape[2]
        out.update(repeating: 0, count: n * h * w * c)
        nonisolated(unsafe) let (grad, xy, result) = (dy, coords, out)
        perImage(n) { b in  // each image scatters into its own slice of the result
            for p in 0..<pixels {
                let k = b * pixels + p
                let t = Sampling.taps(xy[2 * k], xy[2 * k + 1], h: h, w: w, mode: mode)
                let g = grad + k * c
                @inline(__always) func tap(_ i: Int, _ wgt: Float) {
                    if i < 0 { return }
                    let dst = result + (b * h * w + i) * c
                    for q in 0..<c { dst[q] += wgt * g[q] }
                }
                tap(t.index.0, t.weight.0); tap(t.index.1, t.weight.1); tap(t.index.2, t.weight.2); tap(t.index.3, t.weight.3)
            }
        }
    }

    static func sampleGradCoords(_ image: UnsafePointer<Float>, _ iShape: [Int], _ coords: UnsafePointer<Float>, _ cShape: [Int],
                                 _ dy: UnsafePointer<Float>, _ mode: SampleMode, _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (iShape[0], iShape[1], iShape[2], iShape[3])
        let pixels = cShape[1] * cShape[2]
        nonisolated(unsafe) let (img, xy, grad, result) = (image, coords, dy, out)
        perImage(n) { b in
            for p in 0..<pixels {
                let k = b * pixels + p
                let t = Sampling.taps(xy[2 * k], xy[2 * k + 1], h: h, w: w, mode: mode)
                if t.nan { result[2 * k] = .nan; result[2 * k + 1] = .nan; continue }
                let g = grad + k * c
                var gx: Float = 0, gy: Float = 0
                @inline(__always) func tap(_ i: Int, _ dx: Float, _ dyw: Float) {
                    if i < 0 { return }
                    let src = img + (b * h * w + i) * c
                    var s: Float = 0
                    for q in 0..<c { s += g[q] * src[q] }
                    gx += dx * s
                    gy += dyw * s
                }
                tap(t.index.0, t.dX.0, t.dY.0); tap(t.index.1, t.dX.1, t.dY.1); tap(t.index.2, t.dX.2, t.dY.2); tap(t.index.3, t.dX.3, t.dY.3)
                result[2 * k] = gx
                result[2 * k + 1] = gy
            }
        }
    }

    /// The reference kernel's counter-based numbers (a pure function of seed, key and index), on
    /// both cores.
    static func random(_ seed: Float, _ key: Int, _ n: Int, normal: Bool, _ out: UnsafeMutablePointer<Float>) {
        let s = CounterRandom.seed(from: seed), k = UInt64(bitPattern: Int64(key))
        nonisolated(unsafe) let result = out
        let parts = n >= 1 << 14 ? 2 : 1
        Parallel.forEach(parts) { part in
            for i in (n * part / parts)..<(n * (part + 1) / parts) {
                result[i] = normal ? CounterRandom.normal(seed: s, key: k, counter: UInt64(i)) : CounterRandom.uniform(seed: s, key: k, counter: UInt64(i))
            }
        }
    }

    static func upsample(_ x: UnsafePointer<Float>, _ xShape: [Int], _ f: [Int], _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (oh, ow) = (shape[1], shape[2])
        nonisolated(unsafe) let (src, result) = (x, out)
        onBothCores(n * oh, elements: Shape.count(shape)) { range in
            for r in range {
                let b = r / oh, i = r % oh
                let row = result + r * ow * c
                for j in 0..<ow { copy(src + ((b * h + i / f[0]) * w + j / f[1]) * c, to: row + j * c, c) }
            }
        }
    }

    static func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ aShape: [Int], _ ta: Bool, _ tb: Bool,
                       _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        let r = shape.count
        let m = shape[r - 2], n = shape[r - 1]
        let k = ta ? aShape[r - 2] : aShape[r - 1]
        let batch = Shape.count(Array(shape[..<(r - 2)]))
        if k == 0 { out.update(repeating: 0, count: batch * m * n); return }
        for p in 0..<batch {
            Sgemm.run(transA: ta, transB: tb, m: m, n: n, k: k, a + p * m * k, lda: ta ? m : k, b + p * k * n, ldb: tb ? k : n,
                      out + p * m * n, ldc: n)
        }
    }

    struct ConvGeometry {
        let n, h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pl: Int
        var k: Int { kh * kw * ci }

        init(x: [Int], kernel: [Int], out: [Int], _ c: ConvAttributes) {
            (n, h, w, ci) = (x[0], x[1], x[2], x[3])
            (kh, kw, co) = (kernel[0], kernel[1], kernel[3])
            (oh, ow) = (out[1], out[2])
            (sh, sw, pt, pl) = (c.strides[0], c.strides[1], c.padding[0], c.padding[2])
        }

        /// Output rows per im2col tile: keeps the column buffer near 1 MiB.
        var rowsPerTile: Int { max(1, min(oh, (1 << 18) / max(1, ow * k))) }

        var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w }

        /// Whether DirectConv beats im2col + sgemm for this shape: measured with `stegastamp bench
        /// --convolutions` (2026-11-30, AVX-512 tiles, single-pixel tiles with four sums, sgemm
        /// split by the executor), the direct kernel won at every width in W3 down to 8 pixels
        /// (4x16x16x256 -> 2x2x128: 0.79 against 1.48 ms; 4x32x32x64 -> 3x3x128 stride 2: 1.02
        /// against 1.84 ms for two). Narrower outputs (none in W3) stay on sgemm, unmeasured.
        var prefersDirect: Bool { !isPointwise && ow >= 8 }

        /// Calls `body(b, y0, y1, col)` for every tile of output rows of every image, with a column
        /// buffer of `rowsPerTile` rows (allocated once per call).
        func forEachTile(_ workspace: Workspace, _ body: (Int, Int, Int, UnsafeMutablePointer<Float>) -> Void) {
            let tile = rowsPerTile
            let col = workspace.buffer(.columns, tile * ow * k, of: Float.self)
            for b in 0..<n {
                var y0 = 0
                while y0 < oh {
                    let y1 = min(oh, y0 + tile)
                    body(b, y0, y1, col)
                    y0 = y1
                }
            }
        }

        /// Fills col[(y - y0) * ow + x, (i * kw + j) * ci + q] for output rows y0..<y1 of image b.
        func im2col(_ x: UnsafePointer<Float>, b: Int, y0: Int, y1: Int, into col: UnsafeMutablePointer<Float>) {
            let kk = k
            for y in y0..<y1 {
                for xo in 0..<ow {
                    let row = col + ((y - y0) * ow + xo) * kk
                    for i in 0..<kh {
                        let iy = y * sh - pt + i
                        for j in 0..<kw {
                            let ix = xo * sw - pl + j
                            let dst = row + (i * kw + j) * ci
                            if iy < 0 || iy >= h || ix < 0 || ix >= w {
                                dst.update(repeating: 0, count: ci)
                            } else {
                                dst.update(from: x + ((b * h + iy) * w + ix) * ci, count: ci)
                            }
                        }
                    }
                }
            }
        }

        /// Adds col back into the image (the adjoint of im2col).
        func col2im(_ col: UnsafePointer<Float>, b: Int, y0: Int, y1: Int, into x: UnsafeMutablePointer<Float>) {
            let kk = k
            for y in y0..<y1 {
                for xo in 0..<ow {
                    let row = col + ((y - y0) * ow + xo) * kk
                    for i in 0..<kh {
                        let iy = y * sh - pt + i
                        if iy < 0 || iy >= h { continue }
                        for j in 0..<kw {
                            let ix = xo * sw - pl + j
                            if ix < 0 || ix >= w { continue }
                            let src = row + (i * kw + j) * ci
                            let dst = x + ((b * h + iy) * w + ix) * ci
                            for q in 0..<ci { dst[q] += src[q] }
                        }
                    }
                }
            }
        }
    }

    static func conv2d(_ x: UnsafePointer<Float>, _ kernel: UnsafePointer<Float>, _ xShape: [Int], _ kShape: [Int], _ c: ConvAttributes,
                       _ shape: [Int], _ out: UnsafeMutablePointer<Float>, kernel choice: ConvKernel, _ workspace: Workspace) {
        let g = ConvGeometry(x: xShape, kernel: kShape, out: shape, c)
        if g.k == 0 { out.update(repeating: 0, count: Shape.count(shape)); return }
        if let direct = choice.directKernels {
            let geometry = DirectConvGeometry(input: xShape, kernel: kShape, output: shape, strides: c.strides, padding: c.padding)
            direct.forward(x, kernel, out, geometry, workspace: workspace)
            return
        }
        if g.isPointwise {
            Sgemm.run(m: g.n * g.h * g.w, n: g.co, k: g.ci, x, lda: g.ci, kernel, ldb: g.co, out, ldc: g.co)
            return
        }
        g.forEachTile(workspace) { b, y0, y1, col in
            g.im2col(x, b: b, y0: y0, y1: y1, into: col)
            Sgemm.run(m: (y1 - y0) * g.ow, n: g.co, k: g.k, col, lda: g.k, kernel, ldb: g.co, out + (b * g.oh + y0) * g.ow * g.co, ldc: g.co)
        }
    }

    /// dx = conv2d_backprop_input(dy, k), as forward convolutions over dy on the direct / Winograd
    /// kernels (`inputGradientByPhases`) where they take the shape; otherwise sgemm + col2im.
    static func conv2dBackpropInput(_ dy: UnsafePointer<Float>, _ kernel: UnsafePointer<Float>, _ dyShape: [Int], _ kShape: [Int],
                                    _ c: ConvAttributes, _ shape: [Int], _ dx: UnsafeMutablePointer<Float>, kernel choice: ConvKernel,
                                    _ workspace: Workspace) {
        let g = ConvGeometry(x: shape, kernel: kShape, out: dyShape, c)
        let total = Shape.count(shape)
        if Shape.count(dyShape) == 0 || g.k == 0 { dx.update(repeating: 0, count: total); return }
        if let direct = choice.directKernels, let phases = inputGradientPhases(g, direct) {
            inputGradientByPhases(dy, kernel, g, phases, dx, direct, workspace)
            return
        }
        dx.update(repeating: 0, count: total)
        if g.isPointwise {
            Sgemm.run(transB: true, m: g.n * g.h * g.w, n: g.ci, k: g.co, dy, lda: g.co, kernel, ldb: g.co, dx, ldc: g.ci)
            return
        }
        g.forEachTile(workspace) { b, y0, y1, col in
            Sgemm.run(transB: true, m: (y1 - y0) * g.ow, n: g.k, k: g.co, dy + (b * g.oh + y0) * g.ow * g.co, lda: g.co, kernel, ldb: g.co,
                      col, ldc: g.k)
            g.col2im(col, b: b, y0: y0, y1: y1, into: dx)
        }
    }

    /// The input gradient as forward convolutions over dy. Output pixel (y, x) = (s*Y + py, s*X + px)
    /// of phase (py, px) receives the kernel taps i = i0 + s*a (i0 = (py + pt) mod s), from dy rows
    /// Y + cy - a (cy = (py + pt - i0) / s), and likewise along x: a stride-1 convolution of dy with
    /// the phase's taps flipped in space and transposed in channels. Stride 1 is one phase, written
    /// straight into dx (so it gets Winograd where 3x3); with stride 2 each of the four phases
    /// (taps 2x2, 2x1, 1x2, 1x1 of a 3x3 kernel) runs into scratch and is scattered into dx. This
    /// replaced sgemm + col2im for strided convolutions (about 2x faster at 400x400: 4x200x200x32 ->
    /// 3x3x64, 9.7 -> 4.8 ms; the scatter costs what output strides in the kernel would save).
    struct Phase { var py, px, rows, cols, i0, j0, taps, tapsX: Int; var geometry: DirectConvGeometry? }

    /// The phases of the input gradient on these direct kernels; nil where a phase would need
    /// negative padding or is narrower than the direct kernel takes (sgemm + col2im then).
    static func inputGradientPhases(_ g: ConvGeometry, _ direct: DirectKernels) -> [Phase]? {
        let (kh, kw, ci, co, sh, sw) = (g.kh, g.kw, g.ci, g.co, g.sh, g.sw)
        // Strided with few input channels (the 3-channel image: 3 of a tile's 16-32 lanes, plus the
        // scatter) measured slower than sgemm + col2im (4x400x400x3: 8.6 against 7.1 ms).
        if (sh > 1 || sw > 1) && ci < 16 { return nil }
        var phases: [Phase] = []
        for py in 0..<sh {
            for px in 0..<sw {
                let rows = (g.h - py + sh - 1) / sh, cols = (g.w - px + sw - 1) / sw
                if rows <= 0 || cols <= 0 { continue }
                let i0 = (py + g.pt) % sh, j0 = (px + g.pl) % sw
                let taps = i0 < kh ? (kh - i0 + sh - 1) / sh : 0, tapsX = j0 < kw ? (kw - j0 + sw - 1) / sw : 0
                var phase = Phase(py: py, px: px, rows: rows, cols: cols, i0: i0, j0: j0, taps: taps, tapsX: tapsX, geometry: nil)
                if taps > 0 && tapsX > 0 {
                    let top = taps - 1 - (py + g.pt - i0) / sh, left = tapsX - 1 - (px + g.pl - j0) / sw
                    let bottom = max(0, rows - 1 - top + taps - 1 - (g.oh - 1)), right = max(0, cols - 1 - left + tapsX - 1 - (g.ow - 1))
                    let geometry = DirectConvGeometry(input: [g.n, g.oh, g.ow, co], kernel: [taps, tapsX, co, ci], output: [g.n, rows, cols, ci],
                                                      strides: [1, 1], padding: [top, bottom, left, right])
                    if top < 0 || left < 0 || !direct.takes(geometry, wide: cols >= 8) { return nil }
                    phase.geometry = geometry
                }
                phases.append(phase)
            }
        }
        return phases
    }

    static func inputGradientByPhases(_ dy: UnsafePointer<Float>, _ kernel: UnsafePointer<Float>, _ g: ConvGeometry, _ phases: [Phase],
                                      _ dx: UnsafeMutablePointer<Float>, _ direct: DirectKernels, _ workspace: Workspace) {
        let (kw, ci, co, sh, sw) = (g.kw, g.ci, g.co, g.sh, g.sw)
        let single = sh == 1 && sw == 1
        for phase in phases {
            let out = single ? dx : workspace.buffer(.columns, g.n * phase.rows * phase.cols * ci, of: Float.self)
            if let geometry = phase.geometry {
                // F[a][b][o][q] = K[i0 + sh * (taps - 1 - a)][j0 + sw * (tapsX - 1 - b)][q][o]
                let f = workspace.buffer(.flippedKernel, phase.taps * phase.tapsX * co * ci, of: Float.self)
                for a in 0..<phase.taps {
                    for b in 0..<phase.tapsX {
                        let src = kernel + ((phase.i0 + sh * (phase.taps - 1 - a)) * kw + phase.j0 + sw * (phase.tapsX - 1 - b)) * ci * co
                        let dst = f + (a * phase.tapsX + b) * co * ci
                        for q in 0..<ci { for o in 0..<co { dst[o * ci + q] = src[q * co + o] } }
                    }
                }
                direct.forward(dy, f, out, geometry, workspace: workspace)
            } else {
                out.update(repeating: 0, count: g.n * phase.rows * phase.cols * ci)  // no tap reaches this phase
            }
            if single { continue }
            // Scatter the phase into every sh-th row and sw-th column of dx.
            nonisolated(unsafe) let (src, result) = (UnsafePointer(out), dx)
            let (h, w, rows, cols, py, px) = (g.h, g.w, phase.rows, phase.cols, phase.py, phase.px)
            onBothCores(g.n * rows, elements: g.n * rows * cols * ci) { range in
                for r in range {
                    let b = r / rows, y = py + sh * (r % rows)
                    let line = src + r * cols * ci, target = result + ((b * h + y) * w + px) * ci
                    for x in 0..<cols { copy(line + x * ci, to: target + x * sw * ci, ci) }
                }
            }
        }
    }

    static func conv2dBackpropFilter(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ xShape: [Int], _ dyShape: [Int],
                                     _ c: ConvAttributes, _ shape: [Int], _ dk: UnsafeMutablePointer<Float>, kernel choice: ConvKernel,
                                     _ workspace: Workspace) {
        let g = ConvGeometry(x: xShape, kernel: shape, out: dyShape, c)
        dk.update(repeating: 0, count: Shape.count(shape))
        if Shape.count(dyShape) == 0 || g.k == 0 { return }
        if let direct = choice.directKernels {
            let geometry = DirectConvGeometry(input: xShape, kernel: shape, output: dyShape, strides: c.strides, padding: c.padding)
            direct.filterGradient(x, dy, dk, geometry, workspace: workspace)
            return
        }
        if g.isPointwise {
            Sgemm.run(transA: true, m: g.ci, n: g.co, k: g.n * g.h * g.w, x, lda: g.ci, dy, ldb: g.co, dk, ldc: g.co)
            return
        }
        g.forEachTile(workspace) { b, y0, y1, col in
            g.im2col(x, b: b, y0: y0, y1: y1, into: col)
            Sgemm.run(transA: true, m: g.k, n: g.co, k: (y1 - y0) * g.ow, col, lda: g.k, dy + (b * g.oh + y0) * g.ow * g.co, ldb: g.co,
                      beta: 1, dk, ldc: g.co)
        }
    }
}
