import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Fast kernels for the `cpu` backend, one file per op family (`CPUKernels+Convolution.swift`,
/// `+Elementwise`, `+Reductions`, `+DataMovement`, `+Pooling`, `+Sampling`). They write into the
/// output buffer the memory plan gave them (which may be an operand's own buffer for elementwise
/// ops); `kernel(for:)` returns nil for steps they do not cover, which the plan gives to the
/// reference kernel with the reason. Tested op by op against `ReferenceKernels`.
enum CPUKernels {

    /// The native kernel of a step, chosen when the executable is compiled: the switch over the op
    /// and its shapes runs here once, the closure per call. Nil where no native kernel takes the
    /// step (`uncoveredReason` says why); the plan then names the reference kernel.
    static func kernel(for s: Step, conv: (Step) -> ConvKernel) -> (Kernel, KernelBody)? {
        let n = Shape.count(s.shape)
        if n == 0 { return (.native, { _, _, _ in }) }
        let shapes = s.operandShapes, shape = s.shape
        switch s.op {
        case .conv2d, .conv2dBackpropInput, .conv2dBackpropFilter:
            // On one thread: the algorithm's own body, run with the pool held.
            if case .oneThread(let inner) = conv(s) {
                guard let (k, body) = kernel(for: s, conv: { _ in inner }) else { return nil }
                return (k.onOneThread, { x, out, w in Parallel.serially { body(x, out, w) } })
            }
        default: break
        }
        switch s.op {
        case .matmul(let ta, let tb):
            // The planner's choice for a skinny product: `.direct(isa)` stands for the own kernels.
            if ConvolutionPlanner.skinny(s), case .direct(let isa) = conv(s) {
                return (.skinnyGemm(isa), { x, out, _ in matmul(x[0], x[1], shapes[0], ta, tb, shape, out, skinny: isa) })
            }
            return (.gemm, { x, out, _ in matmul(x[0], x[1], shapes[0], ta, tb, shape, out) })
        case .conv2d(let c):
            let k = conv(s)
            return (.convolution(k, epilogue: nil), { x, out, w in conv2d(x[0], x[1], shapes[0], shapes[1], c, shape, out, kernel: k, w) })
        case .conv2dBackpropInput(let c, _):
            let k = conv(s)
            // The phases are a fact of the shapes: found once here, not per call.
            let g = ConvGeometry(x: shape, kernel: shapes[1], out: shapes[0], c)
            let byPhases = k.directKernels.flatMap { d in inputGradientPhases(g, d).map { (d, $0) } }
            return (.convolution(byPhases == nil ? .gemm : k, epilogue: nil),
                    { x, out, w in conv2dBackpropInput(x[0], x[1], shapes[0], shapes[1], c, shape, out, byPhases: byPhases, w) })
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
            return (.native, { x, out, _ in ElementwiseLoops.select(x[0], x[1], x[2], out, n) })
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
            if let run = shape.last, shape.count >= 2, shape.dropLast() == shapes[0].dropLast() {
                // Channels only (the concatenation's gradient): one run per pixel, rows on both cores.
                let stride = shapes[0][shape.count - 1]
                return (.native, { x, out, _ in rowCopy(x[0] + origin, stride: stride, run: run, rows: n / run, out) })
            }
            return (.native, { x, out, _ in stridedCopy(x[0], strides: xs, origin: origin, shape, out) })
        case .concat(let axis):
            let outer = Shape.count(Array(shape[..<axis])), inner = Shape.count(Array(shape[(axis + 1)...]))
            let blocks = (0..<s.count).map { shapes[$0][axis] * inner }
            let row = blocks.reduce(0, +)
            if blocks.allSatisfy({ $0 == 1 }) {
                // One float from each part per row (the STN's x and y grids into coordinate pairs):
                // an interleave, without a copy call per float.
                let parts = blocks.count
                return (.native, { x, out, _ in
                    nonisolated(unsafe) let (src, result) = (x, out)
                    onBothCores(outer, elements: n) { range in
                        for k in 0..<parts {
                            let p = src[k]
                            for o in range { result[o * parts + k] = p[o] }
                        }
                    }
                })
            }
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
        case .projectiveWarp(let inverse, _):
            return (.native, { x, out, w in projectiveWarp(x[0], shapes[0], x[1], inverse: inverse, out, w) })
        case .projectiveWarpTranspose(let inverse):
            return (.native, { x, out, w in projectiveWarpTranspose(x[0], x[1], inverse: inverse, shape, out, w) })
        case .randomUniform(_, let key): return (.native, { x, out, _ in random(x[0][0], key, n, normal: false, out) })
        case .randomNormal(_, let key): return (.native, { x, out, _ in random(x[0][0], key, n, normal: true, out) })
        case .allReduce(let r):
            return (.native, { x, out, _ in
                if UnsafePointer(out) != x[0] { out.update(from: x[0], count: n) }
                Collectives.allReduce(out, count: n, op: r)
            })
        // No native kernel: the reference runs them (named in the plan). Listed, not defaulted, so
        // a new op is a compile error here until it is placed.
        case .pad, .reverse, .fused: return nil
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
        guard let (_, body) = contractionKernel(step, conv: conv) else { return nil }
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
}
