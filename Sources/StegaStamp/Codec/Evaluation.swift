import Foundation
import GraphIR
import GraphKernels
import GraphRuntime
import FastKernelSupport

/// The robustness suite of `stegastamp eval` and the damage `--strength auto` must survive: real
/// distortions of the encoded photo (real JPEG through libjpeg-turbo, not the differentiable
/// approximation). Random ones draw from the seed they are given.
public enum Distortion: String, CaseIterable, Sendable {
    case none, jpeg90, jpeg70, jpeg50, blur, noise, brighter, darker, rescale, downscale, perspective, crop, rotate, print

    /// The suite `eval` runs (`downscale` keeps the smaller photo: it is a step of chains such as
    /// `--survive downscale+jpeg50`, while `rescale` goes back up).
    public static let suite: [Distortion] = [.none, .jpeg90, .jpeg70, .jpeg50, .blur, .noise, .brighter, .darker, .rescale, .perspective, .crop, .rotate, .print]

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
        case .downscale: return "downscale 50%"
        case .perspective: return "perspective warp 2%"
        case .crop: return "crop 5% per border"
        case .rotate: return "rotation 2 degrees"
        case .print: return "print-like (combined)"
        }
    }

    /// A chain such as `downscale+jpeg50` (the keys are the case names), applied left to right.
    public static func chain(_ spec: String) throws -> [Distortion] {
        let parts = spec.split(separator: "+").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard !parts.isEmpty else { throw ModelError("empty damage chain") }
        return try parts.map { p in
            guard let d = Distortion(rawValue: p) else {
                throw ModelError("unknown damage '\(p)' in '\(spec)'; known: \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return d
        }
    }

    /// Chains separated by commas, e.g. `downscale+jpeg50,perspective,brighter`.
    public static func chains(_ spec: String) throws -> [[Distortion]] {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false)
        guard !spec.isEmpty else { throw ModelError("empty damage list") }
        return try parts.map { try chain(String($0)) }
    }

    public static func apply(_ chain: [Distortion], to img: RGBImage, seed: UInt64) throws -> RGBImage {
        var x = img
        for (i, d) in chain.enumerated() { x = try d.apply(x, seed: seed &+ UInt64(i) &* 0x9E37) }
        return x
    }

    public func apply(_ img: RGBImage, seed: UInt64) throws -> RGBImage {
        let short = Double(min(img.width, img.height))
        func uniform(_ key: UInt64, _ i: Int) -> Double { Double(CounterRandom.uniform(seed: seed, key: key, counter: UInt64(i))) }
        switch self {
        case .none: return img
        case .jpeg90: return try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: 90))
        case .jpeg70: return try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: 70))
        case .jpeg50: return try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: 50))
        case .blur: return Self.gaussianBlur(img, sigma: max(0.8, short / 400))
        case .noise: return Self.noise(img, sigma: 0.02, seed: seed)
        case .brighter: return Self.colour(img, contrast: 1.2, brightness: 0.05)
        case .darker: return Self.colour(img, contrast: 0.8, brightness: -0.08)
        case .rescale:
            // Bicubic overshoots; a resized photo is stored in [0, 1] again.
            let small = Resize.resize(img, width: max(1, img.width / 2), height: max(1, img.height / 2)).clamped()
            return Resize.resize(small, width: img.width, height: img.height).clamped()
        case .downscale: return Resize.resize(img, width: max(1, img.width / 2), height: max(1, img.height / 2)).clamped()
        case .perspective:
            // Each corner moves by up to 2 % of the image's width and height.
            let (w, h) = (Double(img.width), Double(img.height))
            let src: [(Double, Double)] = [(0, 0), (w, 0), (w, h), (0, h)]
            let moved = src.enumerated().map { i, p in (p.0 + (uniform(0xA02, 2 * i) * 2 - 1) * 0.02 * w, p.1 + (uniform(0xA02, 2 * i + 1) * 2 - 1) * 0.02 * h) }
            return Self.warp(img, corners: moved)
        case .crop:
            let dx = max(1, img.width / 20), dy = max(1, img.height / 20)
            return Resize.resize(img, x: dx, y: dy, regionWidth: img.width - 2 * dx, regionHeight: img.height - 2 * dy, width: img.width, height: img.height).clamped()
        case .rotate:
            // +-2 degrees about the centre (the sign drawn from the seed); the corners it uncovers are black.
            let a = (uniform(0xA03, 0) < 0.5 ? -2.0 : 2.0) * Double.pi / 180
            let (cx, cy) = (Double(img.width) / 2, Double(img.height) / 2)
            let corners = [(0.0, 0.0), (Double(img.width), 0), (Double(img.width), Double(img.height)), (0, Double(img.height))].map { p in
                (cx + (p.0 - cx) * cos(a) - (p.1 - cy) * sin(a), cy + (p.0 - cx) * sin(a) + (p.1 - cy) * cos(a))
            }
            return Self.warp(img, corners: corners)
        case .print:
            // What a print photographed with a phone does, mildly: perspective, blur, a colour
            // shift per channel, sensor noise, then JPEG.
            var x = try Distortion.perspective.apply(img, seed: seed)
            x = Self.gaussianBlur(x, sigma: max(1.0, short / 300))
            let gains = (0..<3).map { Float(0.9 + 0.2 * uniform(0xA04, $0)) }
            let contrast = Float(0.85 + 0.15 * uniform(0xA05, 0)), brightness = Float(-0.05 + 0.1 * uniform(0xA05, 1))
            var px = x.pixels
            for i in 0..<px.count { px[i] = ((px[i] - 0.5) * contrast + 0.5 + brightness) * gains[i % 3] }
            x = Self.noise(RGBImage(width: x.width, height: x.height, pixels: px), sigma: 0.02, seed: seed ^ 0x5EED)
            return try ImageIO.decode(try ImageIO.encodeJPEG(x, quality: 70))
        }
    }

    static func colour(_ img: RGBImage, contrast: Float, brightness: Float) -> RGBImage {
        RGBImage(width: img.width, height: img.height, pixels: img.pixels.map { min(max(($0 - 0.5) * contrast + 0.5 + brightness, 0), 1) })
    }

    static func noise(_ img: RGBImage, sigma: Float, seed: UInt64) -> RGBImage {
        RGBImage(width: img.width, height: img.height, pixels: img.pixels.enumerated().map { i, v in
            min(max(v + sigma * CounterRandom.normal(seed: seed, key: 0xA01, counter: UInt64(i)), 0), 1)
        })
    }

    /// The image seen with its corners moved to `corners` (clockwise from the top left).
    static func warp(_ img: RGBImage, corners: [(Double, Double)]) -> RGBImage {
        let (w, h) = (Double(img.width), Double(img.height))
        let hm = PerspectiveMatrices.homography(from: corners, to: [(0, 0), (w, 0), (w, h), (0, h)])
        let t = Tensor(shape: [1, 8], scalars: hm.prefix(8).map { Float($0) })
        return RGBImage(ReferenceKernels.run(.projectiveWarp(inverse: false, gradient: .exact), [img.tensor, t], shape: img.tensor.shape))
    }

    static func gaussianBlur(_ img: RGBImage, sigma: Double) -> RGBImage {
        let r = Int((3 * sigma).rounded(.up))
        let k = (-r...r).map { Foundation.exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = k.reduce(0, +)
        let kernel = k.map { Float($0 / total) }
        let (w, h) = (img.width, img.height)
        // Two passes, edges replicated.
        func pass(_ src: [Float], horizontal: Bool) -> [Float] {
            var out = [Float](repeating: 0, count: src.count)
            src.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    let (sp, op) = (s.baseAddress!, o.baseAddress!)
                    Parallel.forEach(min(h, 64)) { chunk in
                        for y in (h * chunk / min(h, 64))..<(h * (chunk + 1) / min(h, 64)) {
                            for x in 0..<w {
                                var a0: Float = 0, a1: Float = 0, a2: Float = 0
                                for (j, wt) in kernel.enumerated() {
                                    let xx = horizontal ? min(max(x + j - r, 0), w - 1) : x
                                    let yy = horizontal ? y : min(max(y + j - r, 0), h - 1)
                                    let p = sp + (yy * w + xx) * 3
                                    a0 += wt * p[0]; a1 += wt * p[1]; a2 += wt * p[2]
                                }
                                let q = op + (y * w + x) * 3
                                q[0] = a0; q[1] = a1; q[2] = a2
                            }
                        }
                    }
                }
            }
            return out
        }
        return RGBImage(width: w, height: h, pixels: pass(pass(img.pixels, horizontal: true), horizontal: false))
    }
}

public enum Quality {
    public static func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
        precondition(a.pixels.count == b.pixels.count, "PSNR of images of different sizes")
        let n = a.pixels.count, chunks = max(1, min(64, n / 65536))
        var sums = [Double](repeating: 0, count: chunks)
        a.pixels.withUnsafeBufferPointer { pa in
            b.pixels.withUnsafeBufferPointer { pb in
                sums.withUnsafeMutableBufferPointer { sp in
                    let (ap, bp, out) = (pa.baseAddress!, pb.baseAddress!, sp.baseAddress!)
                    Parallel.forEach(chunks) { c in
                        var acc = 0.0
                        var i = n * c / chunks
                        let end = n * (c + 1) / chunks
                        // Float partial sums of 4096 terms, Double across them.
                        while i < end {
                            let stop = min(end, i + 4096)
                            var part: Float = 0
                            for j in i..<stop { let d = ap[j] - bp[j]; part += d * d }
                            acc += Double(part)
                            i = stop
                        }
                        out[c] = acc
                    }
                }
            }
        }
        let mse = sums.reduce(0, +) / Double(n)
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
