import Foundation
import GraphIR

/// Hyperparameters of the transform net and the warp: the defaults are `scripts/base.sh` with
/// `train.py`'s ramps. They are fixed for a run; what changes per step (the step itself, hence
/// every ramp, and the random seed) is a graph input.
public struct TransformConfig: Sendable, Equatable {
    public var rndBri: Float = 0.3, rndBriRamp: Float = 1000
    public var rndHue: Float = 0.1, rndHueRamp: Float = 1000
    public var rndNoise: Float = 0.02, rndNoiseRamp: Float = 1000
    public var rndSat: Float = 1.0, rndSatRamp: Float = 1000
    public var contrastLow: Float = 0.5, contrastHigh: Float = 1.5, contrastRamp: Float = 1000
    public var jpegQuality: Float = 50, jpegQualityRamp: Float = 1000
    public var blur = true
    public var jpeg = true
    /// Data-parallel training: this graph's batch is examples batchOffset ..< batchOffset + batch
    /// of a global batch of `globalBatch`; per-example draws are made for the global batch and
    /// sliced, so every example gets the draw a single process would give it.
    public var globalBatch: Int? = nil
    public var batchOffset = 0
    public init() {}

    /// The photometric damage (noise, contrast, brightness, hue, saturation, JPEG quality) at
    /// `share` of its full range, as at that share of each ramp; blur is unchanged.
    public func scaled(_ share: Float) -> TransformConfig {
        var c = self
        c.rndBri *= share; c.rndHue *= share; c.rndNoise *= share; c.rndSat *= share
        c.contrastLow = 1 - (1 - contrastLow) * share
        c.contrastHigh = 1 + (contrastHigh - 1) * share
        c.jpegQuality = 100 - (100 - jpegQuality) * share
        return c
    }
}

/// How the unwarped encoded image's borders are filled (`--borders` of the original).
public enum BorderMode: String, CaseIterable, Sendable {
    case noEdge = "no_edge", black, white, random, randomrgb, image
}

public enum TransformNet {
    /// min(step / ramp, 1)
    static func ramp(_ b: GraphBuilder, _ step: ValueID, _ r: Float) -> ValueID {
        b.binary(.minimum, b.div(step, r), b.constant(1))
    }

    /// A draw of one value per example (shape [batch, ...]); see `globalBatch`.
    static func perExample(_ b: GraphBuilder, _ seed: ValueID, _ key: Int, _ shape: [Int], normal: Bool, _ c: TransformConfig) -> ValueID {
        let n = shape[0]
        let total = c.globalBatch ?? n
        var full = shape
        full[0] = total
        let draw = b.apply(normal ? .randomNormal(shape: full, key: key) : .randomUniform(shape: full, key: key), [seed])
        if total == n { return draw }
        return b.slice(draw, begin: [c.batchOffset] + [Int](repeating: 0, count: shape.count - 1), end: [c.batchOffset + n] + shape.dropFirst())
    }

    /// A uniform draw in [lo, hi) per example, keyed by `key`.
    static func uniform(_ b: GraphBuilder, _ seed: ValueID, _ key: Int, _ shape: [Int], lo: ValueID, hi: ValueID, _ c: TransformConfig) -> ValueID {
        let u = perExample(b, seed, key, shape, normal: false, c)
        return b.add(lo, b.mul(u, b.sub(hi, lo)))
    }

    static func uniform(_ b: GraphBuilder, _ seed: ValueID, _ key: Int, _ lo: Float, _ hi: Float) -> ValueID {
        b.add(b.mul(b.apply(.randomUniform(shape: [], key: key), [seed]), hi - lo), b.constant(lo))
    }

    /// clip_by_value: gradient passes inside and at the bounds.
    static func clip(_ b: GraphBuilder, _ x: ValueID, _ lo: Float, _ hi: Float) -> ValueID {
        b.binary(.minimum, b.binary(.maximum, x, b.constant(lo)), b.constant(hi))
    }

    /// `utils.random_blur_kernel(probs=[.25, .25], N_blur=7, sigrange_gauss=[1, 3],
    /// sigrange_line=[.25, 1], wmin_line=3)`: one kernel per batch, Gaussian with probability 1/4,
    /// line with 1/4, none otherwise. All branches are computed; `select` picks one.
    public static func randomBlurKernel(_ b: GraphBuilder, seed: ValueID) -> ValueID {
        let sigma = uniform(b, seed, 101, 1, 3)
        let theta = uniform(b, seed, 102, 0, Float(2 * Double.pi))
        let sigLine = uniform(b, seed, 103, 0.25, 1)
        let wLine = uniform(b, seed, 104, 3, 3.1)
        let t = b.apply(.randomUniform(shape: [], key: 105), [seed])
        let gauss = ImageOps.gaussianBlurKernel(b, sigma: sigma)
        let line = ImageOps.lineBlurKernel(b, theta: theta, sigma: sigLine, width: wLine)
        let nothing = ImageOps.identityBlurKernel(b)
        let lineOrNothing = b.select(b.binary(.less, t, b.constant(0.5)), line, nothing)
        return b.select(b.binary(.less, t, b.constant(0.25)), gauss, lineOrNothing)
    }

    /// `transform_net`: blur, noise, clip, contrast, brightness and hue, clip, desaturation, JPEG.
    public static func apply(_ b: GraphBuilder, _ image: ValueID, seed: ValueID, step: ValueID, config c: TransformConfig = TransformConfig())
        -> ValueID {
        let s = b.shape(image)
        let n = s[0]
        var x = image
        if c.blur { x = b.conv2dSame(x, randomBlurKernel(b, seed: seed), stride: 1) }

        let noiseStd = b.mul(b.mul(b.apply(.randomUniform(shape: [], key: 110), [seed]), ramp(b, step, c.rndNoiseRamp)), c.rndNoise)
        x = clip(b, b.add(x, b.mul(perExample(b, seed, 111, s, normal: true, c), noiseStd)), 0, 1)

        let r = ramp(b, step, c.contrastRamp)
        let low = b.sub(b.constant(1), b.mul(r, 1 - c.contrastLow))
        let high = b.add(b.constant(1), b.mul(r, c.contrastHigh - 1))
        x = b.mul(x, uniform(b, seed, 112, [n, 1, 1, 1], lo: low, hi: high, c))

        let bri = b.mul(ramp(b, step, c.rndBriRamp), c.rndBri)
        let hue = b.mul(ramp(b, step, c.rndHueRamp), c.rndHue)
        let hueShift = uniform(b, seed, 113, [n, 1, 1, 3], lo: b.neg(hue), hi: hue, c)
        let brightness = uniform(b, seed, 114, [n, 1, 1, 1], lo: b.neg(bri), hi: bri, c)
        x = clip(b, b.add(x, b.add(hueShift, brightness)), 0, 1)

        let sat = b.mul(b.mul(b.apply(.randomUniform(shape: [], key: 115), [seed]), ramp(b, step, c.rndSatRamp)), c.rndSat)
        let lum = b.sum(b.mul(x, b.constant(Tensor(shape: [3], scalars: [0.3, 0.6, 0.1]))), axes: [3], keepDims: true)
        x = b.add(b.mul(b.sub(b.constant(1), sat), x), b.mul(sat, lum))

        if c.jpeg {
            let q = b.sub(b.constant(100), b.mul(b.mul(b.apply(.randomUniform(shape: [], key: 116), [seed]),
                                                       ramp(b, step, c.jpegQualityRamp)), 100 - c.jpegQuality))
            let factor = b.add(DiffJPEG.qualityToFactor(b, q), 0.0001)
            x = DiffJPEG.compressDecompress(b, x, factor: factor)
        }
        return x
    }

    /// The warp/unwarp part of `build_model`: the cover image is warped with M[:, 1, :], the
    /// encoder works on the warped image, and the encoded image is unwarped with M[:, 0, :] (which
    /// is not exactly the inverse: the original drops inv(M)[2,2]). Returns the encoded image, the
    /// warped input and the warped encoding (what the critic sees when borders != no_edge).
    public static func perspectiveEncode(_ b: GraphBuilder, image: ValueID, m: ValueID, seed: ValueID, borders: BorderMode,
                                         encoder: (ValueID) -> ValueID) -> (encoded: ValueID, inputWarped: ValueID, encodedWarped: ValueID) {
        let s = b.shape(image)
        let n = s[0]
        let fwd = b.reshape(b.slice(m, begin: [0, 1, 0], end: [n, 2, 8]), [n, 8])
        let inv = b.reshape(b.slice(m, begin: [0, 0, 0], end: [n, 1, 8]), [n, 8])
        func warp(_ x: ValueID, _ t: ValueID) -> ValueID { b.apply(.projectiveWarp(inverse: false, gradient: .tf), [x, t]) }
        let ones = b.constant(1, shape: s)
        var inputWarped = warp(image, fwd)
        let maskWarped = warp(ones, fwd)
        inputWarped = b.add(inputWarped, b.mul(b.sub(b.constant(1), maskWarped), image))
        let residualWarped = encoder(inputWarped)
        let encodedWarped = b.add(residualWarped, inputWarped)
        let encoded: ValueID
        switch borders {
        case .noEdge:
            encoded = b.add(image, warp(residualWarped, inv))
        case .black:
            encoded = warp(encodedWarped, inv)
        case .white, .random, .randomrgb, .image:
            let mask = warp(ones, inv)
            let outside = b.sub(b.constant(1), mask)
            let fill: ValueID
            switch borders {
            case .white: fill = b.constant(1)
            case .random: fill = b.apply(.randomUniform(shape: [1], key: 120), [seed])
            case .randomrgb: fill = b.apply(.randomUniform(shape: [3], key: 120), [seed])
            default:
                // tf.manip.roll(image_input, shift=1, axis=0): each image gets its predecessor's pixels.
                fill = n > 1 ? b.concat([b.slice(image, begin: [n - 1, 0, 0, 0], end: s),
                                         b.slice(image, begin: [0, 0, 0, 0], end: [n - 1, s[1], s[2], s[3]])], axis: 0) : image
            }
            encoded = b.add(warp(encodedWarped, inv), b.mul(outside, fill))
        }
        return (encoded, inputWarped, encodedWarped)
    }
}

/// `utils.get_rand_transform_matrix`: corners moved by U(-d, d), the homography that maps the
/// moved corners back to the image corners (M, with M[2,2] = 1), and the pair
/// [inv(M) without its [2,2] entry, M] per image: shape [batch, 2, 8].
public enum PerspectiveMatrices {
    /// `zoom` > 0 also scales each example's four corners about the centre by a common 1 + z,
    /// z uniform in [-zoom, zoom] (a crop or a margin of the photo: what StegaStamp's independent
    /// corner draws almost never make); its draws are separate, so zoom 0 leaves the rest as it was.
    public static func random(size: Int, displacement d: Double, zoom: Double = 0, batch: Int, seed: UInt64) -> Tensor {
        var out: [Float] = []
        var counter: UInt64 = 0
        func u() -> Double {
            defer { counter += 1 }
            return Double(CounterRandom.uniform(seed: seed, key: 0x9E55, counter: counter)) * 2 * d - d
        }
        let s = Double(size)
        for i in 0..<batch {
            let src = [(0.0, 0.0), (s, 0.0), (s, s), (0.0, s)]
            var dst = src.map { ($0.0 + u(), $0.1 + u()) }
            if zoom > 0 {
                let z = (Double(CounterRandom.uniform(seed: seed, key: 0x200A, counter: UInt64(i))) * 2 - 1) * zoom
                dst = zip(src, dst).map { p, q in (q.0 + z * (p.0 - s / 2), q.1 + z * (p.1 - s / 2)) }
            }
            let m = homography(from: dst, to: src)
            let inv = Matrix3.inverse(m)
            out += inv.prefix(8).map { Float($0) }
            out += m.prefix(8).map { Float($0) }
        }
        return Tensor(shape: [batch, 2, 8], scalars: out)
    }

    /// The 3x3 (row-major, [2,2] = 1) perspective transform taking `from[i]` to `to[i]`, as
    /// cv2.getPerspectiveTransform: an 8x8 linear system solved in float64.
    public static func homography(from: [(Double, Double)], to: [(Double, Double)]) -> [Double] {
        var a = [[Double]](repeating: [Double](repeating: 0, count: 9), count: 8)
        for i in 0..<4 {
            let (x, y) = from[i], (X, Y) = to[i]
            a[i] = [x, y, 1, 0, 0, 0, -x * X, -y * X, X]
            a[i + 4] = [0, 0, 0, x, y, 1, -x * Y, -y * Y, Y]
        }
        // Gaussian elimination with partial pivoting on the augmented matrix.
        for c in 0..<8 {
            let p = (c..<8).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            a.swapAt(c, p)
            for r in 0..<8 where r != c && a[c][c] != 0 {
                let f = a[r][c] / a[c][c]
                for k in c..<9 { a[r][k] -= f * a[c][k] }
            }
        }
        return (0..<8).map { a[$0][8] / a[$0][$0] } + [1]
    }
}
