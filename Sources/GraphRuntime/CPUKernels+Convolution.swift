import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Convolutions, their gradients and matmul: the direct / Winograd kernels or im2col + sgemm, as the plan chose.
extension CPUKernels {
    /// A fused `output` kernel that is exactly [prologue ->] conv2d [-> add(bias [co]) [-> relu]],
    /// the prologue a nearest upsampling or a channel concatenation of the image (`Passes.fusion`),
    /// whose convolution runs on the direct kernels: one pass with the epilogue applied as tiles
    /// are stored (with a prologue whatever the algorithm: `upsampledConvolution`,
    /// `concatenatedConvolution`). Nil for any other body, or where the convolution of a body
    /// without a prologue goes to sgemm (the plan then runs it with its tail).
    static func fusedConvolution(_ f: FusedKernel, _ s: Step, conv: (Step) -> ConvKernel) -> (Kernel, KernelBody)? {
        guard f.kind == .output else { return nil }
        let body = f.body
        var ops = body.values.enumerated().filter { $0.element.op != nil }
        func argIndex(_ id: ValueID) -> Int? { body.inputs.firstIndex(of: id) }
        let shapes = s.operandShapes
        enum Prologue { case upsample(factors: [Int], source: Int), concat(parts: [Int]) }
        var prologue: (kind: Prologue, value: Int)? = nil
        if ConvolutionPlanner.Shapes.prologueConvolution(f) != nil, let first = ops.first, case .op(let op, let a) = first.element.definition {
            let sources = a.compactMap(argIndex)
            guard sources.count == a.count else { return nil }
            switch op {
            case .upsampleNearest(let factors): prologue = (.upsample(factors: factors, source: sources[0]), first.offset)
            case .concat: prologue = (.concat(parts: sources), first.offset)
            default: return nil
            }
            ops.removeFirst()
        }
        guard (1...3).contains(ops.count), case .op(.conv2d(let c), let convArgs) = ops[0].element.definition,
              let ki = argIndex(convArgs[1]) else { return nil }
        let image: [Int], xi: Int
        if let prologue {
            guard convArgs[0].index == prologue.value else { return nil }
            (image, xi) = (body.values[prologue.value].shape, -1)
        } else {
            guard let i = argIndex(convArgs[0]) else { return nil }
            (image, xi) = (shapes[i], i)
        }
        var bi: Int? = nil, relu = false
        if ops.count >= 2 {
            guard case .op(.binary(.add), let addArgs) = ops[1].element.definition, addArgs[0].index == ops[0].offset,
                  let b = argIndex(addArgs[1]), shapes[b] == [shapes[ki][3]] else { return nil }
            bi = b
        }
        if ops.count == 3 {
            guard case .op(.unary(.relu), let r) = ops[2].element.definition, r[0].index == ops[1].offset else { return nil }
            relu = true
        }
        guard prologue != nil || bi != nil, body.outputs[0].value.index == ops.last!.offset else { return nil }
        let epilogue = bi == nil ? nil : relu ? "bias+relu" : "bias"
        // With a prologue the tuner times this fused kernel itself (its rules read the convolution
        // over the whole image); without, the plain convolution, whose kernel takes the epilogue.
        let choice = prologue != nil ? conv(s)
            : conv(Step(value: s.value, op: .conv2d(c), operands: [0, 1], operandShapes: [image, shapes[ki]], shape: s.shape, argStart: 0, count: 2))
        switch prologue?.kind {
        case .upsample(let factors, let source)?:
            return upsampledConvolution(factors: factors, c, source: shapes[source], kernel: shapes[ki], output: s.shape, choice: choice,
                                        epilogue: epilogue, operands: source, ki, bias: bi, relu: relu)
        case .concat(let parts)?:
            return concatenatedConvolution(parts: parts, c, shapes: shapes, image: image, kernel: shapes[ki], output: s.shape, choice: choice,
                                           epilogue: epilogue, ki, bias: bi, relu: relu)
        case nil: break
        }
        guard let bi else { return nil }
        let g = ConvGeometry(x: shapes[xi], kernel: shapes[ki], out: s.shape, c)
        if g.k == 0 || Shape.count(s.shape) == 0 { return nil }
        guard let direct = choice.directKernels else { return nil }
        let geometry = DirectConvGeometry(input: shapes[xi], kernel: shapes[ki], output: s.shape, strides: c.strides, padding: c.padding)
        let run: KernelBody = { x, out, w in direct.forward(x[xi], x[ki], out, geometry, bias: x[bi], relu: relu, workspace: w) }
        return (.convolution(choice, epilogue: epilogue), onThreads(of: choice, run))
    }

    /// The contraction of a fused output kernel (`OutputEpilogue`): a conv2d or matmul step, or a
    /// fused upsample + conv2d.
    static func contractionKernel(_ s: Step, conv: (Step) -> ConvKernel) -> (Kernel, KernelBody)? {
        if case .fused(let f) = s.op { return fusedConvolution(f, s, conv: conv) }
        return kernel(for: s, conv: conv)
    }

    /// A (batched) matmul's batch count and op(A) op(B) sizes: m x k times k x n.
    static func matmulSizes(_ aShape: [Int], transA ta: Bool, _ shape: [Int]) -> (batch: Int, m: Int, n: Int, k: Int) {
        let r = shape.count
        return (Shape.count(Array(shape[..<(r - 2)])), shape[r - 2], shape[r - 1], ta ? aShape[r - 2] : aShape[r - 1])
    }

    static func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ aShape: [Int], _ ta: Bool, _ tb: Bool,
                       _ shape: [Int], _ out: UnsafeMutablePointer<Float>, skinny: VectorISA? = nil) {
        let (batch, m, n, k) = matmulSizes(aShape, transA: ta, shape)
        if k == 0 { out.update(repeating: 0, count: batch * m * n); return }
        for p in 0..<batch {
            if let isa = skinny {
                Sgemm.skinny(isa, transA: ta, transB: tb, m: m, n: n, k: k, a + p * m * k, lda: ta ? m : k, b + p * k * n, ldb: tb ? k : n,
                             out + p * m * n, ldc: n)
                continue
            }
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
    /// `byPhases`: the direct kernels and their phases, when the plan chose them (`inputGradientPlan`).
    static func conv2dBackpropInput(_ dy: UnsafePointer<Float>, _ kernel: UnsafePointer<Float>, _ dyShape: [Int], _ kShape: [Int],
                                    _ c: ConvAttributes, _ shape: [Int], _ dx: UnsafeMutablePointer<Float>,
                                    byPhases: (DirectKernels, [Phase])?, _ workspace: Workspace) {
        let g = ConvGeometry(x: shape, kernel: kShape, out: dyShape, c)
        let total = Shape.count(shape)
        if Shape.count(dyShape) == 0 || g.k == 0 { dx.update(repeating: 0, count: total); return }
        if let (direct, phases) = byPhases {
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
    /// (taps 2x2, 2x1, 1x2, 1x1 of a 3x3 kernel) stores into every other row and column of dx
    /// (the direct kernel's output strides). This replaced sgemm + col2im for strided convolutions
    /// (about 2x faster at 400x400: 4x200x200x32 -> 3x3x64, 9.7 -> 4.8 ms, then with a scatter
    /// from scratch that the output strides removed).
    struct Phase { var py, px, rows, cols, i0, j0, taps, tapsX: Int; var geometry: DirectConvGeometry? }

    /// The phases of the input gradient on these direct kernels; nil where a phase would need
    /// negative padding or is narrower than the direct kernel takes (sgemm + col2im then).
    static func inputGradientPhases(_ g: ConvGeometry, _ direct: DirectKernels) -> [Phase]? {
        if Shape.count([g.n, g.oh, g.ow, g.co]) == 0 || g.k == 0 { return nil }
        let (kh, kw, ci, co, sh, sw) = (g.kh, g.kw, g.ci, g.co, g.sh, g.sw)
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
                    let strided = sh == 1 && sw == 1 ? geometry : geometry.writingEvery(rowStep: sh, pixelStep: sw, ofRows: g.h, cols: g.w)
                    if top < 0 || left < 0 || !direct.takes(strided, wide: cols >= 8) { return nil }
                    phase.geometry = strided
                }
                phases.append(phase)
            }
        }
        return phases
    }

    static func inputGradientByPhases(_ dy: UnsafePointer<Float>, _ kernel: UnsafePointer<Float>, _ g: ConvGeometry, _ phases: [Phase],
                                      _ dx: UnsafeMutablePointer<Float>, _ direct: DirectKernels, _ workspace: Workspace) {
        let (kw, ci, co, sh, sw) = (g.kw, g.ci, g.co, g.sh, g.sw)
        for phase in phases {
            // The phase's first pixel; the geometry's output strides reach the others.
            let out = dx + (phase.py * g.w + phase.px) * ci
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
                // No tap reaches this phase: zeros in its rows and columns.
                for b in 0..<g.n {
                    for y in 0..<phase.rows {
                        let line = out + ((b * g.h + y * sh) * g.w) * ci
                        for x in 0..<phase.cols { (line + x * sw * ci).update(repeating: 0, count: ci) }
                    }
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
