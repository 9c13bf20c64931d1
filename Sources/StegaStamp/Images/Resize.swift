import FastKernelSupport

/// Separable bicubic resampling (a = -0.5) with the kernel widened by the scale when shrinking,
/// so downscaling averages instead of aliasing: Pillow's BICUBIC, which `ImageOps.fit` uses.
/// The vertical pass runs over whole contiguous rows (it vectorises), so the pass order is chosen
/// per call to put the expensive direction there; rows are spread over the cores.
public enum Resize {
    static func cubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// For each output index: the first input index and `taps` normalised weights (zero past the
    /// last input index, so every output has the same count).
    struct Taps {
        var start: [Int]
        var taps: Int
        var weights: [Float]

        init(input: Int, output: Int) {
            let scale = Double(input) / Double(output)
            let filterScale = max(scale, 1)
            let support = 2 * filterScale
            var per: [(Int, [Double])] = []
            for i in 0..<output {
                let center = (Double(i) + 0.5) * scale
                let lo = max(Int(center - support + 0.5), 0)
                let hi = max(min(Int(center + support + 0.5), input), lo + 1)
                var w = (lo..<hi).map { cubic((Double($0) - center + 0.5) / filterScale) }
                let total = w.reduce(0, +)
                if total != 0 { w = w.map { $0 / total } }
                per.append((lo, w))
            }
            let n = per.map { $0.1.count }.max() ?? 1
            let first = per.map { min($0.0, max(0, input - n)) }
            var wts = [Float](repeating: 0, count: output * n)
            for (i, (lo, w)) in per.enumerated() {
                for (k, v) in w.enumerated() { wts[i * n + lo - first[i] + k] = Float(v) }
            }
            (taps, start, weights) = (n, first, wts)
        }
    }

    public static func resize(_ img: RGBImage, width: Int, height: Int) -> RGBImage {
        resize(img, x: 0, y: 0, regionWidth: img.width, regionHeight: img.height, width: width, height: height)
    }

    /// Resamples the rectangle (x, y, regionWidth, regionHeight) of `img` to width x height.
    public static func resize(_ img: RGBImage, x x0: Int, y y0: Int, regionWidth rw: Int, regionHeight rh: Int,
                              width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0, "resize to \(width)x\(height)")
        precondition(x0 >= 0 && y0 >= 0 && rw > 0 && rh > 0 && x0 + rw <= img.width && y0 + rh <= img.height, "resize region out of the image")
        if width == rw && height == rh { return x0 == 0 && y0 == 0 && rw == img.width && rh == img.height ? img : crop(img, x: x0, y: y0, width: rw, height: rh) }
        let tx = Taps(input: rw, output: width), ty = Taps(input: rh, output: height)
        // Horizontal work is about 4x dearer per tap than vertical (strided, not vectorised).
        let horizontalFirst = 4 * rh * width * tx.taps + height * width * ty.taps <= 4 * height * width * tx.taps + height * rw * ty.taps
        if horizontalFirst {
            let mid = horizontal(img.pixels, rowStride: img.width, x0: x0, rows: y0..<(y0 + rh), taps: tx, width: width)
            return RGBImage(width: width, height: height, pixels: vertical(mid, rowLength: width * 3, offset: 0, rowStride: width * 3, taps: ty, height: height))
        } else {
            let mid = vertical(img.pixels, rowLength: rw * 3, offset: x0 * 3 + y0 * img.width * 3, rowStride: img.width * 3, taps: ty, height: height)
            return RGBImage(width: width, height: height, pixels: horizontal(mid, rowStride: rw, x0: 0, rows: 0..<height, taps: tx, width: width))
        }
    }

    /// Rows `rows` of `src` (rowStride pixels per row), columns x0..., resampled to `width`.
    static func horizontal(_ src: [Float], rowStride: Int, x0: Int, rows: Range<Int>, taps t: Taps, width: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows.count * width * 3)
        let n = t.taps
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                t.weights.withUnsafeBufferPointer { wts in
                    t.start.withUnsafeBufferPointer { st in
                        let (sp, op, wp, stp) = (s.baseAddress!, o.baseAddress!, wts.baseAddress!, st.baseAddress!)
                        Parallel.forEach(min(rows.count, 64)) { chunk in
                            let lo = rows.count * chunk / min(rows.count, 64), hi = rows.count * (chunk + 1) / min(rows.count, 64)
                            for r in lo..<hi {
                                let row = sp + ((rows.lowerBound + r) * rowStride + x0) * 3
                                let dst = op + r * width * 3
                                for x in 0..<width {
                                    var a0: Float = 0, a1: Float = 0, a2: Float = 0
                                    let p = row + stp[x] * 3, w = wp + x * n
                                    for k in 0..<n {
                                        let wk = w[k]
                                        a0 += wk * p[3 * k]; a1 += wk * p[3 * k + 1]; a2 += wk * p[3 * k + 2]
                                    }
                                    dst[3 * x] = a0; dst[3 * x + 1] = a1; dst[3 * x + 2] = a2
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Resamples rows of `rowLength` floats (starting at `offset`, `rowStride` apart) to `height` rows.
    static func vertical(_ src: [Float], rowLength: Int, offset: Int, rowStride: Int, taps t: Taps, height: Int) -> [Float] {
        var out = [Float](repeating: 0, count: height * rowLength)
        let n = t.taps
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                let (sp, op) = (s.baseAddress! + offset, o.baseAddress!)
                Parallel.forEach(min(height, 64)) { chunk in
                    let lo = height * chunk / min(height, 64), hi = height * (chunk + 1) / min(height, 64)
                    for y in lo..<hi {
                        let dst = op + y * rowLength
                        for k in 0..<n {
                            let w = t.weights[y * n + k]
                            if w == 0 { continue }
                            let row = sp + (t.start[y] + k) * rowStride
                            for i in 0..<rowLength { dst[i] += w * row[i] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// A rectangle of the image.
    public static func crop(_ img: RGBImage, x: Int, y: Int, width: Int, height: Int) -> RGBImage {
        var out = [Float]()
        out.reserveCapacity(width * height * 3)
        for row in y..<(y + height) {
            out.append(contentsOf: img.pixels[((row * img.width + x) * 3)..<((row * img.width + x + width) * 3)])
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// `ImageOps.fit`: centre-crop to the target's aspect ratio, then resize.
    public static func fit(_ img: RGBImage, width: Int, height: Int) -> RGBImage {
        let target = Double(width) / Double(height)
        var cw = img.width, ch = img.height
        if Double(img.width) / Double(img.height) > target {
            cw = max(1, Int((Double(img.height) * target).rounded()))
        } else {
            ch = max(1, Int((Double(img.width) / target).rounded()))
        }
        return resize(img, x: (img.width - cw) / 2, y: (img.height - ch) / 2, regionWidth: cw, regionHeight: ch, width: width, height: height)
    }
}
