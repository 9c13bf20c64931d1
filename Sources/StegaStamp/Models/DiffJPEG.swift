import Foundation
import GraphIR

/// `utils.jpeg_compress_decompress(downsample_c=True, rounding=round_only_at_0, factor)` as IR:
/// YCbCr, 4:2:0 chroma, 8x8 DCT, quantisation with the standard tables scaled by `factor` (a graph
/// value), "rounding" that cubes only coefficients below 0.5 in magnitude, and the way back.
public enum DiffJPEG {
    /// The standard luminance table, transposed as utils.py does (indexed [u][v]).
    public static let yTable: [Float] = {
        let t: [[Float]] = [[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
                            [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
                            [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                            [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]]
        return (0..<64).map { t[$0 % 8][$0 / 8] }
    }()

    /// The chroma table: 99 everywhere but the top-left 4x4 (symmetric, so the transpose is moot).
    public static let cTable: [Float] = {
        let top: [[Float]] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
        return (0..<64).map { i in (i / 8 < 4 && i % 8 < 4) ? top[i % 8][i / 8] : 99 }
    }()

    static let rgbToYcc: [Float] = [0.299, 0.587, 0.114, -0.168736, -0.331264, 0.5, 0.5, -0.418688, -0.081312]
    static let yccToRgb: [Float] = [1, 0, 1.402, 1, -0.344136, -0.714136, 1, 1.772, 0]

    /// The JPEG quality -> table scale of the original: 5000/q/100 below 50, (200 - 2q)/100 above.
    public static func qualityToFactor(_ b: GraphBuilder, _ q: ValueID) -> ValueID {
        let low = b.div(b.div(b.constant(5000), q), 100)
        let high = b.div(b.sub(b.constant(200), b.mul(q, 2)), 100)
        return b.select(b.binary(.less, q, b.constant(50)), low, high)
    }

    /// cos((2x+1) u pi / 16) cos((2y+1) v pi / 16) as a [64, 64] matrix, rows (x, y), columns (u, v);
    /// `inverse` swaps the roles as utils.idct_8x8 does (rows (u, v), columns (x, y)).
    static func cosineMatrix(inverse: Bool) -> Tensor {
        var m = [Float](repeating: 0, count: 64 * 64)
        for x in 0..<8 { for y in 0..<8 { for u in 0..<8 { for v in 0..<8 {
            let c = Float(Foundation.cos(Double((2 * x + 1) * u) * Double.pi / 16) * Foundation.cos(Double((2 * y + 1) * v) * Double.pi / 16))
            if inverse {
                // tensor[x, y, u, v] = cos((2u+1) x pi/16) cos((2v+1) y pi/16), contracted over (x, y).
                let ci = Float(Foundation.cos(Double((2 * u + 1) * x) * Double.pi / 16) * Foundation.cos(Double((2 * v + 1) * y) * Double.pi / 16))
                m[(x * 8 + y) * 64 + u * 8 + v] = ci
            } else {
                m[(x * 8 + y) * 64 + u * 8 + v] = c
            }
        } } } }
        return Tensor(shape: [64, 64], scalars: m)
    }

    static func alpha() -> [Double] { [1 / 2.0.squareRoot()] + [Double](repeating: 1, count: 7) }

    /// One channel [N, h, w, 1] (h, w multiples of 8) through DCT, quantisation and back.
    /// The constants every channel shares, made once per JPEG.
    struct Constants {
        let forward, inverse, scale, alphas: ValueID
        init(_ b: GraphBuilder) {
            let a = DiffJPEG.alpha()
            forward = b.constant(DiffJPEG.cosineMatrix(inverse: false), name: "dct_cos")
            inverse = b.constant(DiffJPEG.cosineMatrix(inverse: true), name: "idct_cos")
            scale = b.constant(Tensor(shape: [64], scalars: (0..<64).map { Float(0.25 * a[$0 / 8] * a[$0 % 8]) }), name: "dct_scale")
            alphas = b.constant(Tensor(shape: [64], scalars: (0..<64).map { Float(a[$0 / 8] * a[$0 % 8]) }), name: "idct_alpha")
        }
    }

    static func channel(_ b: GraphBuilder, _ x: ValueID, table: [Float], factor: ValueID, constants k: Constants) -> ValueID {
        let s = b.shape(x)
        let (n, h, w) = (s[0], s[1], s[2])
        let blocks = b.reshape(b.transpose(b.reshape(x, [n, h / 8, 8, w / 8, 8]), [0, 1, 3, 2, 4]), [n * (h / 8) * (w / 8), 64])
        let dct = b.mul(b.matmul(b.sub(blocks, 128), k.forward), k.scale)
        let q = b.mul(b.constant(Tensor(shape: [64], scalars: table)), factor)
        let quantised = b.div(dct, q)
        let rounded = b.select(b.binary(.less, b.unary(.abs, quantised), b.constant(0.5)),
                               b.mul(b.mul(quantised, quantised), quantised), quantised)
        let dequantised = b.mul(rounded, q)
        let idct = b.add(b.mul(b.matmul(b.mul(dequantised, k.alphas), k.inverse), 0.25), 128)
        return b.reshape(b.transpose(b.reshape(idct, [n, h / 8, w / 8, 8, 8]), [0, 1, 3, 2, 4]), [n, h, w, 1])
    }

    /// image [N, H, W, 3] in [0, 1]; `factor` a scalar graph value. Sizes that are not multiples
    /// of 16 are padded (symmetric, bottom/right) and cropped back to the input size.
    /// (The original's crop `[:, :-vpad, :-wpad]` returns an empty tensor when exactly one pad is
    /// zero; we crop to the input size in every case.)
    public static func compressDecompress(_ b: GraphBuilder, _ image: ValueID, factor: ValueID) -> ValueID {
        let s = b.shape(image)
        let (n, h, w) = (s[0], s[1], s[2])
        var v = b.mul(image, 255)
        let ph = (16 - h % 16) % 16, pw = (16 - w % 16) % 16
        if ph > 0 || pw > 0 {
            v = b.apply(.pad(before: [0, 0, 0, 0], after: [0, ph, pw, 0], mode: .symmetric, value: 0), [v])
        }
        let (hp, wp) = (h + ph, w + pw)
        let a = b.constant(Tensor(shape: [3, 3], scalars: rgbToYcc), name: "jpeg_rgb_to_ycc")
        let ycc = b.add(b.reshape(b.matmul(b.reshape(v, [n * hp * wp, 3]), a, transposeB: true), [n, hp, wp, 3]),
                        b.constant(Tensor(shape: [3], scalars: [0, 128, 128])))
        func plane(_ c: Int) -> ValueID { b.slice(ycc, begin: [0, 0, 0, c], end: [n, hp, wp, c + 1]) }
        let k = Constants(b)
        let y = channel(b, plane(0), table: yTable, factor: factor, constants: k)
        var chroma: [ValueID] = []
        for c in 1...2 {
            let pooled = b.apply(.avgPool(window: [2, 2], strides: [2, 2]), [plane(c)])
            chroma.append(b.upsampleNearest(channel(b, pooled, table: cTable, factor: factor, constants: k), factor: 2))
        }
        let back = b.add(b.concat([y] + chroma, axis: 3), b.constant(Tensor(shape: [3], scalars: [0, -128, -128])))
        let bm = b.constant(Tensor(shape: [3, 3], scalars: yccToRgb), name: "jpeg_ycc_to_rgb")
        var rgb = b.reshape(b.matmul(b.reshape(back, [n * hp * wp, 3]), bm, transposeB: true), [n, hp, wp, 3])
        if ph > 0 || pw > 0 { rgb = b.slice(rgb, begin: [0, 0, 0, 0], end: [n, h, w, 3]) }
        // Constant first: at exactly 0 or 255 the gradient goes to the constant, as in TF.
        let clamped = b.binary(.minimum, b.constant(255), b.binary(.maximum, b.constant(0), rgb))
        return b.div(clamped, 255)
    }
}
