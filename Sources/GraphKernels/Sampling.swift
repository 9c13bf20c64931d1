import GraphIR

/// Bilinear sampling shared by the STN sampler (`clamp`) and TF's projective transform (`zero`).
/// Both use the same four weights `wa = (x1-X)(y1-Y)` at (y0,x0), `wb = (x1-X)(Y-y0)` at (y1,x0),
/// `wc = (X-x0)(y1-Y)` at (y0,x1), `wd = (X-x0)(Y-y0)` at (y1,x1); they differ in the corners:
/// `clamp` clamps x0, x1 = x0+1 into the image before forming the weights (so outside samples
/// cancel to 0), `zero` keeps them and lets taps outside the image read 0.
public enum Sampling {
    @frozen public struct Taps {
        public var index: (Int, Int, Int, Int) = (-1, -1, -1, -1)  // pixel offsets (y*W+x), -1 = reads 0
        public var weight: (Float, Float, Float, Float) = (0, 0, 0, 0)
        public var dX: (Float, Float, Float, Float) = (0, 0, 0, 0)
        public var dY: (Float, Float, Float, Float) = (0, 0, 0, 0)
        public var nan = false
        @inlinable public init() {}
    }

    @usableFromInline @inline(__always)
    static func safeFloor(_ v: Float) -> Int {
        Int(Swift.max(Swift.min(v.rounded(.down), 1_073_741_824), -1_073_741_824))
    }

    @inlinable
    public static func taps(_ X: Float, _ Y: Float, h: Int, w: Int, mode: SampleMode) -> Taps {
        var t = Taps()
        if X.isNaN || Y.isNaN { t.nan = true; return t }
        if !X.isFinite || !Y.isFinite { return t }
        var x0 = safeFloor(X), y0 = safeFloor(Y)
        var x1 = x0 + 1, y1 = y0 + 1
        if mode == .clamp {
            x0 = Swift.min(Swift.max(x0, 0), w - 1); x1 = Swift.min(Swift.max(x1, 0), w - 1)
            y0 = Swift.min(Swift.max(y0, 0), h - 1); y1 = Swift.min(Swift.max(y1, 0), h - 1)
        }
        let fx0 = Float(x0), fx1 = Float(x1), fy0 = Float(y0), fy1 = Float(y1)
        let ax = fx1 - X, bx = X - fx0, ay = fy1 - Y, by = Y - fy0
        t.weight = (ax * ay, ax * by, bx * ay, bx * by)
        t.dX = (-ay, -by, ay, by)
        t.dY = (-ax, ax, -bx, bx)
        func at(_ y: Int, _ x: Int) -> Int { (y >= 0 && y < h && x >= 0 && x < w) ? y * w + x : -1 }
        t.index = (at(y0, x0), at(y1, x0), at(y0, x1), at(y1, x1))
        return t
    }

    static func sample(_ image: Tensor, _ coords: Tensor, _ mode: SampleMode) -> Tensor {
        let (n, h, w, c) = (image.shape[0], image.shape[1], image.shape[2], image.shape[3])
        let (oh, ow) = (coords.shape[1], coords.shape[2])
        var out = [Float](repeating: 0, count: n * oh * ow * c)
        for b in 0..<n {
            for p in 0..<(oh * ow) {
                let ci = (b * oh * ow + p) * 2
                let t = taps(coords.scalars[ci], coords.scalars[ci + 1], h: h, w: w, mode: mode)
                let o = (b * oh * ow + p) * c
                if t.nan { for q in 0..<c { out[o + q] = .nan }; continue }
                accumulate(image.scalars, base: b * h * w, c: c, t.index, t.weight) { q, v in out[o + q] += v }
            }
        }
        return Tensor(shape: [n, oh, ow, c], scalars: out)
    }

    @inline(__always)
    static func accumulate(_ img: [Float], base: Int, c: Int, _ idx: (Int, Int, Int, Int), _ wt: (Float, Float, Float, Float),
                           _ add: (Int, Float) -> Void) {
        let pairs = [(idx.0, wt.0), (idx.1, wt.1), (idx.2, wt.2), (idx.3, wt.3)]
        for (i, wgt) in pairs where i >= 0 {
            let off = (base + i) * c
            for q in 0..<c { add(q, wgt * img[off + q]) }
        }
    }

    static func gradImage(_ dy: Tensor, _ coords: Tensor, _ mode: SampleMode, _ shape: [Int]) -> Tensor {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = (coords.shape[1], coords.shape[2])
        var acc = [Double](repeating: 0, count: n * h * w * c)
        for b in 0..<n {
            for p in 0..<(oh * ow) {
                let ci = (b * oh * ow + p) * 2
                let t = taps(coords.scalars[ci], coords.scalars[ci + 1], h: h, w: w, mode: mode)
                let g = (b * oh * ow + p) * c
                let pairs = [(t.index.0, t.weight.0), (t.index.1, t.weight.1), (t.index.2, t.weight.2), (t.index.3, t.weight.3)]
                for (i, wgt) in pairs where i >= 0 {
                    let off = (b * h * w + i) * c
                    for q in 0..<c { acc[off + q] += Double(wgt) * Double(dy.scalars[g + q]) }
                }
            }
        }
        return Tensor(shape: shape, scalars: acc.map { Float($0) })
    }

    static func gradCoords(_ image: Tensor, _ coords: Tensor, _ dy: Tensor, _ mode: SampleMode) -> Tensor {
        let (n, h, w, c) = (image.shape[0], image.shape[1], image.shape[2], image.shape[3])
        let (oh, ow) = (coords.shape[1], coords.shape[2])
        var out = [Float](repeating: 0, count: coords.count)
        for b in 0..<n {
            for p in 0..<(oh * ow) {
                let ci = (b * oh * ow + p) * 2
                let t = taps(coords.scalars[ci], coords.scalars[ci + 1], h: h, w: w, mode: mode)
                if t.nan { out[ci] = .nan; out[ci + 1] = .nan; continue }
                let g = (b * oh * ow + p) * c
                var gx = 0.0, gy = 0.0
                let quads = [(t.index.0, t.dX.0, t.dY.0), (t.index.1, t.dX.1, t.dY.1),
                             (t.index.2, t.dX.2, t.dY.2), (t.index.3, t.dX.3, t.dY.3)]
                for (i, dx, dyw) in quads where i >= 0 {
                    let off = (b * h * w + i) * c
                    var s = 0.0
                    for q in 0..<c { s += Double(dy.scalars[g + q]) * Double(image.scalars[off + q]) }
                    gx += Double(dx) * s
                    gy += Double(dyw) * s
                }
                out[ci] = Float(gx)
                out[ci + 1] = Float(gy)
            }
        }
        return Tensor(shape: coords.shape, scalars: out)
    }

    /// The 8 transform entries to use for one image: t itself, or inv([t; 1]) divided by its [2,2].
    static func transform(_ raw: [Float], inverse: Bool) -> [Float] {
        if !inverse { return raw }
        let inv = Matrix3.inverse(raw.map(Double.init) + [1])
        return (0..<8).map { Float(inv[$0] / inv[8]) }
    }

    /// Source coordinates of output pixel (x, y) under TF's projective transform, in float32;
    /// nil when the projection is 0 (TF fills those pixels).
    @inline(__always)
    static func project(_ t: [Float], x: Int, y: Int) -> (Float, Float)? {
        let fx = Float(x), fy = Float(y)
        let k = t[6] * fx + t[7] * fy + 1
        if k == 0 { return nil }
        return ((t[0] * fx + t[1] * fy + t[2]) / k, (t[3] * fx + t[4] * fy + t[5]) / k)
    }

    /// Source coordinates [n, h, w, 2] of every output pixel into `coords`, from the transforms
    /// [n, 8]; where the projection is 0 (TF fills those pixels) a coordinate far outside the
    /// image, which samples to 0. The one definition the reference and CPU kernels share.
    public static func projectiveCoords(_ transforms: UnsafePointer<Float>, n: Int, h: Int, w: Int, inverse: Bool,
                                        into coords: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let t = transform(Array(UnsafeBufferPointer(start: transforms + b * 8, count: 8)), inverse: inverse)
            for y in 0..<h {
                for x in 0..<w {
                    let o = ((b * h + y) * w + x) * 2
                    guard let (X, Y) = project(t, x: x, y: y) else { coords[o] = -1e9; coords[o + 1] = -1e9; continue }
                    coords[o] = X
                    coords[o + 1] = Y
                }
            }
        }
    }

    static func projectiveCoords(_ transforms: Tensor, n: Int, h: Int, w: Int, inverse: Bool) -> Tensor {
        var coords = [Float](repeating: 0, count: n * h * w * 2)
        transforms.scalars.withUnsafeBufferPointer { t in
            coords.withUnsafeMutableBufferPointer { projectiveCoords(t.baseAddress!, n: n, h: h, w: w, inverse: inverse, into: $0.baseAddress!) }
        }
        return Tensor(shape: [n, h, w, 2], scalars: coords)
    }

    static func projectiveWarp(_ images: Tensor, _ transforms: Tensor, inverse: Bool) -> Tensor {
        let s = images.shape
        return sample(images, projectiveCoords(transforms, n: s[0], h: s[1], w: s[2], inverse: inverse), .zero)
    }

    static func projectiveWarpTranspose(_ dy: Tensor, _ transforms: Tensor, inverse: Bool) -> Tensor {
        let s = dy.shape
        return gradImage(dy, projectiveCoords(transforms, n: s[0], h: s[1], w: s[2], inverse: inverse), .zero, s)
    }
}
