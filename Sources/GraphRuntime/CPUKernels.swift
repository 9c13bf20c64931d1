import CBLAS
import FastKernels
import GraphIR
import GraphKernels

/// Fast kernels for the `cpu` backend. Each returns nil for cases it does not cover, and the
/// reference kernel runs instead. Tested op by op against `ReferenceKernels`.
enum CPUKernels {

    static func run(_ op: Op, _ a: [Tensor], shape: [Int], convolution: ConvolutionAlgorithm) -> Tensor? {
        let direct = convolution == .direct
        switch op {
        case .matmul(let ta, let tb): return matmul(a[0], a[1], ta, tb, shape)
        case .conv2d(let c): return conv2d(a[0], a[1], c, shape, direct: direct)
        case .conv2dBackpropInput(let c, _): return conv2dBackpropInput(a[0], a[1], c, shape)
        case .conv2dBackpropFilter(let c, _): return conv2dBackpropFilter(a[0], a[1], c, shape, direct: direct)
        case .unary(let u):
            let f = ReferenceKernels.unaryFunction(u)
            var out = a[0].scalars
            for i in out.indices { out[i] = f(out[i]) }
            return Tensor(shape: shape, scalars: out)
        case .binary(let b): return binary(b, a[0], a[1], shape)
        default: return nil
        }
    }

    /// A fused `output` kernel that is exactly conv2d -> add(bias [co]) [-> relu]: one pass through
    /// DirectConv with the epilogue applied as tiles are stored. Nil for any other body.
    static func fusedConvolution(_ f: FusedKernel, _ args: [Tensor], shape: [Int]) -> Tensor? {
        guard f.kind == .output else { return nil }
        let body = f.body
        let ops = body.values.enumerated().filter { $0.element.op != nil }
        guard ops.count == 2 || ops.count == 3 else { return nil }
        func argIndex(_ id: ValueID) -> Int? { body.inputs.firstIndex(of: id) }
        guard case .op(.conv2d(let c), let convArgs) = ops[0].element.definition,
              let xi = argIndex(convArgs[0]), let ki = argIndex(convArgs[1]),
              case .op(.binary(.add), let addArgs) = ops[1].element.definition, addArgs[0].index == ops[0].offset,
              let bi = argIndex(addArgs[1]), args[bi].shape == [args[ki].shape[3]] else { return nil }
        var relu = false
        if ops.count == 3 {
            guard case .op(.unary(.relu), let r) = ops[2].element.definition, r[0].index == ops[1].offset else { return nil }
            relu = true
        }
        guard body.outputs[0].value.index == ops.last!.offset else { return nil }
        let (x, k, bias) = (args[xi], args[ki], args[bi])
        let g = ConvGeometry(x: x.shape, kernel: k.shape, out: shape, c)
        if g.isPointwise || g.k == 0 || Shape.count(shape) == 0 { return nil }
        var out = [Float](repeating: 0, count: Shape.count(shape))
        let geometry = DirectConv.Geometry(input: x.shape, kernel: k.shape, output: shape, strides: c.strides, padding: c.padding)
        x.scalars.withUnsafeBufferPointer { xp in
            k.scalars.withUnsafeBufferPointer { kp in
                bias.scalars.withUnsafeBufferPointer { bp in
                    out.withUnsafeMutableBufferPointer {
                        DirectConv.forward(xp.baseAddress!, kp.baseAddress!, $0.baseAddress!, geometry, bias: bp.baseAddress!, relu: relu)
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// Same-shape and scalar-broadcast cases without index arrays.
    static func binary(_ b: BinaryOp, _ x: Tensor, _ y: Tensor, _ shape: [Int]) -> Tensor? {
        let f = ReferenceKernels.binaryFunction(b)
        let n = Shape.count(shape)
        var out = [Float](repeating: 0, count: n)
        if x.shape == shape && y.shape == shape {
            x.scalars.withUnsafeBufferPointer { xp in
                y.scalars.withUnsafeBufferPointer { yp in
                    for i in 0..<n { out[i] = f(xp[i], yp[i]) }
                }
            }
        } else if x.shape == shape && y.count == 1 {
            let s = y.scalars[0]
            x.scalars.withUnsafeBufferPointer { xp in for i in 0..<n { out[i] = f(xp[i], s) } }
        } else if y.shape == shape && x.count == 1 {
            let s = x.scalars[0]
            y.scalars.withUnsafeBufferPointer { yp in for i in 0..<n { out[i] = f(s, yp[i]) } }
        } else if x.shape == shape, case let yTrim = Array(y.shape.drop(while: { $0 == 1 })),
                  Array(shape.suffix(yTrim.count)) == yTrim {
            // y broadcasts along leading axes only (a bias): repeat it.
            let m = y.count
            if m == 0 || n % m != 0 { return nil }
            x.scalars.withUnsafeBufferPointer { xp in
                y.scalars.withUnsafeBufferPointer { yp in
                    var i = 0
                    while i < n {
                        for j in 0..<m { out[i + j] = f(xp[i + j], yp[j]) }
                        i += m
                    }
                }
            }
        } else {
            return nil
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func matmul(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, _ shape: [Int]) -> Tensor {
        let r = shape.count
        let m = shape[r - 2], n = shape[r - 1]
        let k = ta ? a.shape[r - 2] : a.shape[r - 1]
        let batch = Shape.count(Array(shape[..<(r - 2)]))
        var out = [Float](repeating: 0, count: batch * m * n)
        if m == 0 || n == 0 { return Tensor(shape: shape, scalars: out) }
        a.scalars.withUnsafeBufferPointer { ap in
            b.scalars.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { cp in
                    for p in 0..<batch {
                        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                                    Int32(m), Int32(n), Int32(k), 1,
                                    ap.baseAddress! + p * m * k, Int32(ta ? m : k),
                                    bp.baseAddress! + p * k * n, Int32(tb ? k : n),
                                    0, cp.baseAddress! + p * m * n, Int32(n))
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
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

        /// Calls `body(b, y0, y1, col)` for every tile of output rows of every image, with a column
        /// buffer of `rowsPerTile` rows (allocated once per call).
        func forEachTile(_ body: (Int, Int, Int, UnsafeMutablePointer<Float>) -> Void) {
            let tile = rowsPerTile
            let col = UnsafeMutablePointer<Float>.allocate(capacity: tile * ow * k)
            defer { col.deallocate() }
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

    static func conv2d(_ x: Tensor, _ kernel: Tensor, _ c: ConvAttributes, _ shape: [Int], direct: Bool) -> Tensor {
        let g = ConvGeometry(x: x.shape, kernel: kernel.shape, out: shape, c)
        var out = [Float](repeating: 0, count: Shape.count(shape))
        if out.isEmpty || g.k == 0 { return Tensor(shape: shape, scalars: out) }
        if direct && !g.isPointwise {
            let geometry = DirectConv.Geometry(input: x.shape, kernel: kernel.shape, output: shape, strides: c.strides, padding: c.padding)
            x.scalars.withUnsafeBufferPointer { xp in
                kernel.scalars.withUnsafeBufferPointer { kp in
                    out.withUnsafeMutableBufferPointer { DirectConv.forward(xp.baseAddress!, kp.baseAddress!, $0.baseAddress!, geometry) }
                }
            }
            return Tensor(shape: shape, scalars: out)
        }
        x.scalars.withUnsafeBufferPointer { xp in
            kernel.scalars.withUnsafeBufferPointer { kp in
                out.withUnsafeMutableBufferPointer { op in
                    if g.isPointwise {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(g.n * g.h * g.w), Int32(g.co), Int32(g.ci),
                                    1, xp.baseAddress!, Int32(g.ci), kp.baseAddress!, Int32(g.co), 0, op.baseAddress!, Int32(g.co))
                        return
                    }
                    g.forEachTile { b, y0, y1, col in
                        g.im2col(xp.baseAddress!, b: b, y0: y0, y1: y1, into: col)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32((y1 - y0) * g.ow), Int32(g.co), Int32(g.k),
                                    1, col, Int32(g.k), kp.baseAddress!, Int32(g.co),
                                    0, op.baseAddress! + (b * g.oh + y0) * g.ow * g.co, Int32(g.co))
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func conv2dBackpropInput(_ dy: Tensor, _ kernel: Tensor, _ c: ConvAttributes, _ shape: [Int]) -> Tensor {
        let g = ConvGeometry(x: shape, kernel: kernel.shape, out: dy.shape, c)
        var dx = [Float](repeating: 0, count: Shape.count(shape))
        if dx.isEmpty || dy.count == 0 { return Tensor(shape: shape, scalars: dx) }
        dy.scalars.withUnsafeBufferPointer { gp in
            kernel.scalars.withUnsafeBufferPointer { kp in
                dx.withUnsafeMutableBufferPointer { xp in
                    if g.isPointwise {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(g.n * g.h * g.w), Int32(g.ci), Int32(g.co),
                                    1, gp.baseAddress!, Int32(g.co), kp.baseAddress!, Int32(g.co), 0, xp.baseAddress!, Int32(g.ci))
                        return
                    }
                    g.forEachTile { b, y0, y1, col in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32((y1 - y0) * g.ow), Int32(g.k), Int32(g.co),
                                    1, gp.baseAddress! + (b * g.oh + y0) * g.ow * g.co, Int32(g.co),
                                    kp.baseAddress!, Int32(g.co), 0, col, Int32(g.k))
                        g.col2im(col, b: b, y0: y0, y1: y1, into: xp.baseAddress!)
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: dx)
    }

    static func conv2dBackpropFilter(_ x: Tensor, _ dy: Tensor, _ c: ConvAttributes, _ shape: [Int], direct: Bool) -> Tensor {
        let g = ConvGeometry(x: x.shape, kernel: shape, out: dy.shape, c)
        var dk = [Float](repeating: 0, count: Shape.count(shape))
        if dk.isEmpty || dy.count == 0 { return Tensor(shape: shape, scalars: dk) }
        if direct && !g.isPointwise {
            let geometry = DirectConv.Geometry(input: x.shape, kernel: shape, output: dy.shape, strides: c.strides, padding: c.padding)
            x.scalars.withUnsafeBufferPointer { xp in
                dy.scalars.withUnsafeBufferPointer { gp in
                    dk.withUnsafeMutableBufferPointer { DirectConv.filterGradient(xp.baseAddress!, gp.baseAddress!, $0.baseAddress!, geometry) }
                }
            }
            return Tensor(shape: shape, scalars: dk)
        }
        x.scalars.withUnsafeBufferPointer { xp in
            dy.scalars.withUnsafeBufferPointer { gp in
                dk.withUnsafeMutableBufferPointer { kp in
                    if g.isPointwise {
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(g.ci), Int32(g.co), Int32(g.n * g.h * g.w),
                                    1, xp.baseAddress!, Int32(g.ci), gp.baseAddress!, Int32(g.co), 0, kp.baseAddress!, Int32(g.co))
                        return
                    }
                    g.forEachTile { b, y0, y1, col in
                        g.im2col(xp.baseAddress!, b: b, y0: y0, y1: y1, into: col)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(g.k), Int32(g.co), Int32((y1 - y0) * g.ow),
                                    1, col, Int32(g.k), gp.baseAddress! + (b * g.oh + y0) * g.ow * g.co, Int32(g.co),
                                    1, kp.baseAddress!, Int32(g.co))
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: dk)
    }
}
