/// Separable bicubic resampling (a = -0.5) with the kernel widened by the scale when shrinking,
/// so downscaling averages instead of aliasing: Pillow's BICUBIC, which `ImageOps.fit` uses.
public enum Resize {
    static func cubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// For each output index: the first input index and the normalised weights.
    static func coefficients(input: Int, output: Int) -> [(start: Int, weights: [Double])] {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = 2 * filterScale
        return (0..<output).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), input)
            var w = (lo..<hi).map { cubic((Double($0) - center + 0.5) / filterScale) }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
            return (lo, w)
        }
    }

    public static func resize(_ img: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0, "resize to \(width)x\(height)")
        if width == img.width && height == img.height { return img }
        // Horizontal pass: img.height x width.
        let cx = coefficients(input: img.width, output: width)
        var mid = [Float](repeating: 0, count: img.height * width * 3)
        for y in 0..<img.height {
            for (x, c) in cx.enumerated() {
                var acc = (0.0, 0.0, 0.0)
                for (k, w) in c.weights.enumerated() {
                    let src = (y * img.width + c.start + k) * 3
                    acc.0 += w * Double(img.pixels[src]); acc.1 += w * Double(img.pixels[src + 1]); acc.2 += w * Double(img.pixels[src + 2])
                }
                let dst = (y * width + x) * 3
                mid[dst] = Float(acc.0); mid[dst + 1] = Float(acc.1); mid[dst + 2] = Float(acc.2)
            }
        }
        // Vertical pass.
        let cy = coefficients(input: img.height, output: height)
        var out = [Float](repeating: 0, count: height * width * 3)
        for (y, c) in cy.enumerated() {
            for x in 0..<(width * 3) {
                var acc = 0.0
                for (k, w) in c.weights.enumerated() { acc += w * Double(mid[(c.start + k) * width * 3 + x]) }
                out[y * width * 3 + x] = Float(acc)
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
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
        let cropped = crop(img, x: (img.width - cw) / 2, y: (img.height - ch) / 2, width: cw, height: ch)
        return resize(cropped, width: width, height: height)
    }
}
