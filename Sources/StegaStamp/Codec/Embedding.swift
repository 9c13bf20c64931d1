import FastKernelSupport

/// How a residual computed at the model's size goes into a photo of any size, and where the
/// decoder looks (TrustMark's recipe): the photo's region is resized to the model's size, the
/// encoder's residual (encoded - cover, each channel's mean removed) is upsampled smoothly to the
/// region's resolution, scaled by the strength, added and clamped.
public enum Embedding {
    /// Photos whose long side exceeds this many short sides carry the message in a centred square
    /// (squeezing a panorama into the model's square would stretch the residual 3:1 and more).
    public static let aspectLimit = 2.0
    /// Width of the feathered seam around a region smaller than the photo, as a share of its side.
    public static let featherShare = 0.04

    public struct Region: Equatable, Sendable, CustomStringConvertible {
        public var x, y, width, height: Int
        public init(x: Int, y: Int, width: Int, height: Int) { (self.x, self.y, self.width, self.height) = (x, y, width, height) }
        public var description: String { "\(width)x\(height) at (\(x), \(y))" }
    }

    /// The region of a width x height photo that carries the message: all of it, or for extreme
    /// aspect ratios the centred square of the short side. Encoder and decoder both use this, so a
    /// slightly cropped or resized photo finds (nearly) the same region.
    public static func region(width: Int, height: Int) -> Region {
        let (long, short) = (max(width, height), min(width, height))
        if Double(long) <= aspectLimit * Double(short) { return Region(x: 0, y: 0, width: width, height: height) }
        return Region(x: (width - short) / 2, y: (height - short) / 2, width: short, height: short)
    }

    /// The model's input for a photo: its region, resized (antialiased) to the model's size.
    public static func modelInput(_ img: RGBImage, width: Int, height: Int) -> RGBImage {
        let r = region(width: img.width, height: img.height)
        return Resize.resize(img, x: r.x, y: r.y, regionWidth: r.width, regionHeight: r.height, width: width, height: height)
    }

    /// The residual to embed, at the model's size: clamp(cover + raw) - cover, each channel's mean
    /// removed (a uniform tint carries no message and costs PSNR).
    public static func residual(raw: RGBImage, cover: RGBImage) -> RGBImage {
        precondition(raw.width == cover.width && raw.height == cover.height)
        return removeChannelMeans(RGBImage(width: raw.width, height: raw.height, pixels: zip(raw.pixels, cover.pixels).map { min(max($0 + $1, 0), 1) - $1 }))
    }

    /// `r` with each channel's mean subtracted.
    public static func removeChannelMeans(_ r: RGBImage) -> RGBImage {
        var p = r.pixels
        let n = Float(r.width * r.height)
        for c in 0..<3 {
            var mean: Float = 0
            for i in stride(from: c, to: p.count, by: 3) { mean += p[i] }
            mean /= n
            for i in stride(from: c, to: p.count, by: 3) { p[i] -= mean }
        }
        return RGBImage(width: r.width, height: r.height, pixels: p)
    }

    /// Smooth ramp from 0 at a region's edge to 1 at `ramp` pixels in (only on sides where the
    /// region stops inside the photo, so a seam never shows).
    static func feather(length: Int, ramp: Int, enabled: Bool) -> [Float] {
        guard enabled, ramp > 0 else { return [Float](repeating: 1, count: length) }
        return (0..<length).map { i in
            let d = Float(min(i, length - 1 - i)) + 0.5
            let t = min(1, d / Float(ramp))
            return t * t * (3 - 2 * t)
        }
    }

    /// The photo with the residual added: upsampled (bicubic) to the region, x strength, feathered,
    /// clamped. One pass over the photo, rows spread over the cores; the residual is never held
    /// at the photo's resolution.
    public static func apply(_ residual: RGBImage, to img: RGBImage, strength: Float) -> RGBImage {
        var out = img
        _ = apply(residual, into: &out, strength: strength)
        return out
    }

    /// `apply` in place (a 20-megapixel photo is 240 MB of floats: no second copy); returns the
    /// sum of squared changes, so PSNR needs no cover: 10 log10(samples / sum).
    @discardableResult
    public static func apply(_ residual: RGBImage, into img: inout RGBImage, strength: Float) -> Double {
        let r = region(width: img.width, height: img.height)
        let tx = Resize.Taps(input: residual.width, output: r.width), ty = Resize.Taps(input: residual.height, output: r.height)
        // Horizontal pass at the residual's height: residual.height x r.width, small.
        let mid = Resize.horizontal(residual.pixels, rowStride: residual.width, x0: 0, rows: 0..<residual.height, taps: tx, width: r.width)
        let ramp = Int((featherShare * Double(min(r.width, r.height))).rounded())
        // Per sample (x3 channels), so the inner loop is one contiguous, vectorisable pass.
        let fx = feather(length: r.width, ramp: ramp, enabled: r.width < img.width).flatMap { [$0, $0, $0] }
        let fy = feather(length: r.height, ramp: ramp, enabled: r.height < img.height)
        let rowLength = r.width * 3, n = ty.taps, imageWidth = img.width
        let chunks = min(r.height, 64)
        var squared = [Double](repeating: 0, count: chunks)
        mid.withUnsafeBufferPointer { m in
            img.pixels.withUnsafeMutableBufferPointer { o in
              squared.withUnsafeMutableBufferPointer { sq in
                let sqp = sq.baseAddress!
                fx.withUnsafeBufferPointer { fxp in
                    let (mp, op, fxb) = (m.baseAddress!, o.baseAddress!, fxp.baseAddress!)
                    Parallel.forEach(chunks) { chunk in
                        var row = [Float](repeating: 0, count: rowLength)
                        var sum = 0.0
                        row.withUnsafeMutableBufferPointer { rb in
                            let rp = rb.baseAddress!
                            for y in (r.height * chunk / chunks)..<(r.height * (chunk + 1) / chunks) {
                                for i in 0..<rowLength { rp[i] = 0 }
                                for k in 0..<n {
                                    let w = ty.weights[y * n + k]
                                    if w == 0 { continue }
                                    let src = mp + (ty.start[y] + k) * rowLength
                                    for i in 0..<rowLength { rp[i] += w * src[i] }
                                }
                                let gain = strength * fy[y]
                                let dst = op + ((r.y + y) * imageWidth + r.x) * 3
                                var rowSum: Float = 0
                                for i in 0..<rowLength {
                                    let old = dst[i]
                                    var v = old + gain * fxb[i] * rp[i]
                                    v = v < 0 ? 0 : (v > 1 ? 1 : v)
                                    dst[i] = v
                                    rowSum += (v - old) * (v - old)
                                }
                                sum += Double(rowSum)
                            }
                        }
                        sqp[chunk] = sum
                    }
                }
              }
            }
        }
        return squared.reduce(0, +)
    }
}
