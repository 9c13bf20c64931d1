import Foundation
import GraphIR
import GraphKernels
import GraphRuntime

/// The robustness suite of `stegastamp eval`: real distortions of the encoded photo (real JPEG
/// through libjpeg-turbo, not the differentiable approximation), then decoding.
public enum Distortion: CaseIterable, Sendable {
    case none, jpeg90, jpeg70, jpeg50, blur, noise, brighter, darker, rescale, perspective

    public var name: String {
        switch self {
        case .none: return "none"
        case .jpeg90: return "jpeg q90"
        case .jpeg70: return "jpeg q70"
        case .jpeg50: return "jpeg q50"
        case .blur: return "gaussian blur"
        case .noise: return "gaussian noise 0.02"
        case .brighter: return "brightness/contrast +"
        case .darker: return "brightness/contrast -"
        case .rescale: return "downscale 50% + upscale"
        case .perspective: return "perspective warp 2%"
        }
    }

    public func apply(_ img: RGBImage, seed: UInt64) throws -> RGBImage {
        let short = Double(min(img.width, img.height))
        switch self {
        case .none: return img
        case .jpeg90: return try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: 90))
        case .jpeg70: return try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: 70))
        case .jpeg50: return try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: 50))
        case .blur: return Self.gaussianBlur(img, sigma: max(0.8, short / 400))
        case .noise:
            return RGBImage(width: img.width, height: img.height, pixels: img.pixels.enumerated().map { i, v in
                v + 0.02 * CounterRandom.normal(seed: seed, key: 0xA01, counter: UInt64(i))
            }).clamped()
        case .brighter: return RGBImage(width: img.width, height: img.height, pixels: img.pixels.map { ($0 - 0.5) * 1.2 + 0.55 }).clamped()
        case .darker: return RGBImage(width: img.width, height: img.height, pixels: img.pixels.map { ($0 - 0.5) * 0.8 + 0.42 }).clamped()
        case .rescale:
            let small = Resize.resize(img, width: max(1, img.width / 2), height: max(1, img.height / 2))
            return Resize.resize(small, width: img.width, height: img.height)
        case .perspective:
            // Each corner moves by up to 2 % of the image's width and height.
            let (w, h) = (Double(img.width), Double(img.height))
            func offset(_ i: Int) -> Double { (Double(CounterRandom.uniform(seed: seed, key: 0xA02, counter: UInt64(i))) * 2 - 1) * 0.02 }
            let src: [(Double, Double)] = [(0, 0), (w, 0), (w, h), (0, h)]
            var moved: [(Double, Double)] = []
            for (i, p) in src.enumerated() { moved.append((p.0 + offset(2 * i) * w, p.1 + offset(2 * i + 1) * h)) }
            let hm = PerspectiveMatrices.homography(from: moved, to: src)
            let t = Tensor(shape: [1, 8], scalars: hm.prefix(8).map { Float($0) })
            return RGBImage(ReferenceKernels.run(.projectiveWarp(inverse: false, gradient: .exact), [img.tensor, t], shape: img.tensor.shape))
        }
    }

    static func gaussianBlur(_ img: RGBImage, sigma: Double) -> RGBImage {
        let r = Int((3 * sigma).rounded(.up))
        var k = (-r...r).map { Foundation.exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = k.reduce(0, +)
        k = k.map { $0 / total }
        func pass(_ src: [Float], horizontal: Bool) -> [Float] {
            var out = [Float](repeating: 0, count: src.count)
            for y in 0..<img.height { for x in 0..<img.width { for c in 0..<3 {
                var acc = 0.0
                for (j, w) in k.enumerated() {
                    let o = j - r
                    let xx = horizontal ? min(max(x + o, 0), img.width - 1) : x
                    let yy = horizontal ? y : min(max(y + o, 0), img.height - 1)
                    acc += w * Double(src[(yy * img.width + xx) * 3 + c])
                }
                out[(y * img.width + x) * 3 + c] = Float(acc)
            } } }
            return out
        }
        return RGBImage(width: img.width, height: img.height, pixels: pass(pass(img.pixels, horizontal: true), horizontal: false))
    }
}

public enum Quality {
    public static func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
        let mse = zip(a.pixels, b.pixels).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.pixels.count)
        return mse == 0 ? .infinity : 10 * Foundation.log10(1 / mse)
    }

    /// SSIM (Gaussian 11 x 11, sigma 1.5) computed with the IR, on both images resized so the
    /// long side is at most `maxSide` (full-resolution SSIM of large photos is needlessly slow).
    public static func ssim(_ a: RGBImage, _ b: RGBImage, maxSide: Int = 512) throws -> Double {
        let scale = min(1, Double(maxSide) / Double(max(a.width, a.height)))
        let w = max(11, Int(Double(a.width) * scale)), h = max(11, Int(Double(a.height) * scale))
        let ra = Resize.resize(a, width: w, height: h), rb = Resize.resize(b, width: w, height: h)
        let g = GraphBuilder(name: "ssim")
        let x = g.input("a", [1, h, w, 3]), y = g.input("b", [1, h, w, 3])
        g.output("loss", Losses.ssimLoss(g, x, y))
        let graph = try g.finish()
        let loss = try Compiler.compile(graph, for: Signature.of(graph)).run(["a": ra.tensor, "b": rb.tensor])["loss"]!.scalar
        return 1 - Double(loss)
    }
}
