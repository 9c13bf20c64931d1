import Foundation
import GraphIR

/// Image operations of the original StegaStamp (`utils.py`, `models.py`) expressed as IR.
public enum ImageOps {
    /// tf.image.rgb_to_yuv's matrix: yuv[o] = sum_i rgb[i] K[i][o].
    public static let yuvMatrix: [Float] = [0.299, -0.14714119, 0.61497538,
                                            0.587, -0.28886916, -0.51496512,
                                            0.114, 0.43601035, -0.10001026]

    /// [..., 3] RGB -> [..., 3] YUV.
    public static func rgbToYuv(_ b: GraphBuilder, _ x: ValueID) -> ValueID {
        let s = b.shape(x)
        let flat = b.reshape(x, [Shape.count(s) / 3, 3])
        let k = b.constant(Tensor(shape: [3, 3], scalars: yuvMatrix), name: "yuv_matrix")
        return b.reshape(b.matmul(flat, k), s)
    }

    /// `falloff_im` of `build_model` for a square image of side `size` (computed in float64,
    /// stored as float32 like the original). Note the original's one-pixel asymmetry: the factor
    /// for i multiplies g[i] and g[(S - i) mod S], so g[0] gets f(0) twice and g[S-1] gets f(1).
    public static func edgeFalloff(size s: Int, speed: Int = 4) -> Tensor {
        let g = falloffProfile(s, speed: speed)
        var out = [Float](repeating: 0, count: s * s)
        for i in 0..<s { for j in 0..<s { out[i * s + j] = Float(1 - g[i] * g[j]) } }
        return Tensor(shape: [s, s], scalars: out)
    }

    /// The edge falloff as a graph value: 1 - g g^T from the 1-D profile g (S floats, not S^2).
    public static func edgeFalloff(_ b: GraphBuilder, height: Int, width: Int, speed: Int = 4) -> ValueID {
        let rows = b.constant(Tensor(shape: [height, 1], scalars: falloffProfile(height, speed: speed).map { Float($0) }), name: "falloff_rows")
        let cols = b.constant(Tensor(shape: [1, width], scalars: falloffProfile(width, speed: speed).map { Float($0) }), name: "falloff_cols")
        return b.sub(b.constant(1), b.mul(rows, cols), name: "falloff")
    }

    /// The 1-D profile g of the falloff (float64), one pixel asymmetric as the original.
    static func falloffProfile(_ s: Int, speed: Int) -> [Double] {
        var g = [Double](repeating: 1, count: s)
        for i in 0..<(s / speed) {
            let f = (Foundation.cos(Double(speed) * Double.pi * Double(i) / Double(s) + Double.pi) + 1) / 2
            g[i] *= f
            g[(s - i) % s] *= f
        }
        return g
    }

    /// Mean sigmoid cross-entropy over all elements (tf.compat.v1.losses.sigmoid_cross_entropy).
    public static func secretLoss(_ b: GraphBuilder, logits: ValueID, labels: ValueID) -> ValueID {
        b.mean(b.binary(.sigmoidCrossEntropy, logits, labels))
    }

    /// The `stn` package's spatial_transformer_network: theta [N, 6] (row-major 2x3) applied to a
    /// [-1, 1] grid of the output size (xs = t0 xt + t1 yt + t2, in float32 in that order, as the
    /// package's batched matmul), mapped onto pixel coordinates with (W - 2) and (H - 2), then
    /// sampled with clamped corners. The grid is two 1-D constants broadcast, not an H x W table.
    public static func spatialTransformer(_ b: GraphBuilder, _ x: ValueID, theta: ValueID, outHeight ho: Int, outWidth wo: Int) -> ValueID {
        let s = b.shape(x)
        let (n, h, w) = (s[0], s[1], s[2])
        let xt = b.constant(Tensor(shape: [1, 1, wo], scalars: (0..<wo).map { wo > 1 ? Float(-1 + 2 * Double($0) / Double(wo - 1)) : -1 }), name: "stn_xt")
        let yt = b.constant(Tensor(shape: [1, ho, 1], scalars: (0..<ho).map { ho > 1 ? Float(-1 + 2 * Double($0) / Double(ho - 1)) : -1 }), name: "stn_yt")
        func t(_ i: Int) -> ValueID { b.reshape(b.slice(theta, begin: [0, i], end: [n, i + 1]), [n, 1, 1]) }
        let xs = b.add(b.add(b.mul(t(0), xt), b.mul(t(1), yt)), t(2))
        let ys = b.add(b.add(b.mul(t(3), xt), b.mul(t(4), yt)), t(5))
        let px = b.mul(b.add(xs, 1), 0.5 * Float(w - 2))
        let py = b.mul(b.add(ys, 1), 0.5 * Float(h - 2))
        let coords = b.concat([b.reshape(px, [n, ho, wo, 1]), b.reshape(py, [n, ho, wo, 1])], axis: 3)
        return b.apply(.bilinearSample(mode: .clamp), [x, coords])
    }

    /// A [7,7] map as a [7,7,3,3] HWIO filter, diagonal in channels.
    static func diagonalFilter(_ b: GraphBuilder, _ v: ValueID) -> ValueID {
        let n = b.shape(v)[0]
        var eye = [Float](repeating: 0, count: 9)
        for c in 0..<3 { eye[c * 3 + c] = 1 }
        return b.mul(b.reshape(v, [n, n, 1, 1]), b.constant(Tensor(shape: [1, 1, 3, 3], scalars: eye)))
    }

    /// Row and column offsets from the centre of an N x N kernel.
    static func offsets(_ n: Int) -> (rows: Tensor, cols: Tensor) {
        let c = Float(n / 2)
        var r = [Float](repeating: 0, count: n * n), q = r
        for i in 0..<n { for j in 0..<n { r[i * n + j] = Float(i) - c; q[i * n + j] = Float(j) - c } }
        return (Tensor(shape: [n, n], scalars: r), Tensor(shape: [n, n], scalars: q))
    }

    /// `random_blur_kernel`'s Gaussian branch at a given sigma (a graph value), normalised.
    public static func gaussianBlurKernel(_ b: GraphBuilder, sigma: ValueID, size n: Int = 7) -> ValueID {
        let (r, q) = offsets(n)
        let d2 = b.constant(Tensor(shape: [n, n], scalars: zip(r.scalars, q.scalars).map { $0 * $0 + $1 * $1 }))
        let v = b.exp(b.neg(b.div(b.div(d2, 2), b.square(sigma))))
        return diagonalFilter(b, b.div(v, b.sum(v, axes: [0, 1])))
    }

    /// `random_blur_kernel`'s line branch: a Gaussian across a line at angle theta, cut to the
    /// Manhattan radius w_line.
    public static func lineBlurKernel(_ b: GraphBuilder, theta: ValueID, sigma: ValueID, width: ValueID, size n: Int = 7) -> ValueID {
        let (r, q) = offsets(n)
        let rows = b.constant(r), cols = b.constant(q)
        let manhattan = b.constant(Tensor(shape: [n, n], scalars: zip(r.scalars, q.scalars).map { Swift.abs($0) + Swift.abs($1) }))
        let d = b.add(b.mul(rows, b.unary(.cos, theta)), b.mul(cols, b.unary(.sin, theta)))
        let v = b.mul(b.exp(b.neg(b.div(b.div(b.square(d), 2), b.square(sigma)))), b.binary(.less, manhattan, width))
        return diagonalFilter(b, b.div(v, b.sum(v, axes: [0, 1])))
    }

    /// `random_blur_kernel`'s "nothing" branch: a delta.
    public static func identityBlurKernel(_ b: GraphBuilder, size n: Int = 7) -> ValueID {
        var v = [Float](repeating: 0, count: n * n)
        v[(n / 2) * n + n / 2] = 1
        return diagonalFilter(b, b.constant(Tensor(shape: [n, n], scalars: v)))
    }
}
