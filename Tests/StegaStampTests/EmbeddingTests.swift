import Foundation
import GraphIR
import GraphRuntime
import StegaStamp
import TestSupport
import XCTest

/// Photos of any size: the fast resize against the textbook formula, the region rule, the
/// residual's application, the PNG writer and the reduced-scale JPEG reader.
final class EmbeddingTests: XCTestCase {
    func noise(_ w: Int, _ h: Int, seed: UInt64) -> RGBImage {
        RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { CounterRandom.uniform(seed: seed, key: 9, counter: UInt64($0)) })
    }

    /// Pillow's BICUBIC written out directly (Double, per output pixel), as the oracle.
    func referenceResize(_ img: RGBImage, x0: Int, y0: Int, rw: Int, rh: Int, width: Int, height: Int) -> [Float] {
        func cubic(_ x: Double) -> Double {
            let a = -0.5, x = abs(x)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
        func taps(_ input: Int, _ output: Int) -> [(Int, [Double])] {
            let scale = Double(input) / Double(output), fs = max(scale, 1)
            return (0..<output).map { i in
                let c = (Double(i) + 0.5) * scale
                let lo = max(Int(c - 2 * fs + 0.5), 0), hi = min(Int(c + 2 * fs + 0.5), input)
                var w = (lo..<hi).map { cubic((Double($0) - c + 0.5) / fs) }
                let t = w.reduce(0, +)
                w = w.map { $0 / t }
                return (lo, w)
            }
        }
        let tx = taps(rw, width), ty = taps(rh, height)
        var out = [Float](repeating: 0, count: width * height * 3)
        for y in 0..<height { for x in 0..<width { for c in 0..<3 {
            var acc = 0.0
            for (j, wy) in ty[y].1.enumerated() { for (i, wx) in tx[x].1.enumerated() {
                acc += wy * wx * Double(img.pixels[((y0 + ty[y].0 + j) * img.width + x0 + tx[x].0 + i) * 3 + c])
            } }
            out[(y * width + x) * 3 + c] = Float(acc)
        } } }
        return out
    }

    func testResizeMatchesTheFormulaInBothPassOrders() {
        let img = noise(61, 47, seed: 1)
        // Shrinking, enlarging, mixed, a region, and tiny inputs (fewer pixels than taps).
        for (x0, y0, rw, rh, w, h) in [(0, 0, 61, 47, 16, 12), (0, 0, 61, 47, 130, 90), (0, 0, 61, 47, 20, 100),
                                       (5, 3, 40, 30, 13, 64), (10, 10, 1, 2, 5, 3), (0, 0, 61, 47, 61, 3)] {
            let fast = Resize.resize(img, x: x0, y: y0, regionWidth: rw, regionHeight: rh, width: w, height: h)
            let ref = referenceResize(img, x0: x0, y0: y0, rw: rw, rh: rh, width: w, height: h)
            let worst = zip(fast.pixels, ref).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-5, "\(rw)x\(rh) at (\(x0), \(y0)) -> \(w)x\(h)")
        }
    }

    func testRegionIsTheWholePhotoOrACentredSquareForPanoramas() {
        XCTAssertEqual(Embedding.region(width: 1024, height: 681), .init(x: 0, y: 0, width: 1024, height: 681))
        XCTAssertEqual(Embedding.region(width: 200, height: 100), .init(x: 0, y: 0, width: 200, height: 100))
        XCTAssertEqual(Embedding.region(width: 300, height: 100), .init(x: 100, y: 0, width: 100, height: 100))
        XCTAssertEqual(Embedding.region(width: 90, height: 400), .init(x: 0, y: 155, width: 90, height: 90))
    }

    func testResidualHasNoMeanAndStaysInRange() {
        let cover = noise(32, 32, seed: 2)
        let raw = RGBImage(width: 32, height: 32, pixels: (0..<(32 * 32 * 3)).map { 0.3 + 0.2 * CounterRandom.uniform(seed: 3, key: 1, counter: UInt64($0)) })
        let r = Embedding.residual(raw: raw, cover: cover)
        for c in 0..<3 {
            let mean = stride(from: c, to: r.pixels.count, by: 3).map { Double(r.pixels[$0]) }.reduce(0, +) / 1024
            XCTAssertEqual(mean, 0, accuracy: 1e-6)
        }
    }

    func testApplyAddsTheUpsampledResidualAndFeathersARegion() {
        let residual = RGBImage(width: 8, height: 8, pixels: (0..<192).map { i in i % 3 == 0 ? 0.05 : -0.05 })
        // A constant residual upsamples to the same constant: every pixel moves by strength x it.
        let cover = RGBImage(width: 50, height: 40, pixels: [Float](repeating: 0.5, count: 50 * 40 * 3))
        let out = Embedding.apply(residual, to: cover, strength: 0.5)
        for (i, v) in out.pixels.enumerated() { XCTAssertEqual(v, i % 3 == 0 ? 0.525 : 0.475, accuracy: 1e-6) }
        var inPlace = cover
        let sse = Embedding.apply(residual, into: &inPlace, strength: 0.5)
        XCTAssertEqual(inPlace, out)
        XCTAssertEqual(10 * log10(Double(out.pixels.count) / sse), Quality.psnr(out, cover), accuracy: 1e-3)
        // Clamped to [0, 1].
        let bright = RGBImage(width: 10, height: 10, pixels: [Float](repeating: 1, count: 300))
        XCTAssertTrue(Embedding.apply(residual, to: bright, strength: 4).pixels.allSatisfy { $0 >= 0 && $0 <= 1 })
        // A panorama: only the centred square changes, its seam feathered to nothing.
        let wide = RGBImage(width: 300, height: 100, pixels: [Float](repeating: 0.5, count: 300 * 100 * 3))
        let w = Embedding.apply(residual, to: wide, strength: 1)
        func at(_ x: Int, _ y: Int) -> Float { w.pixels[(y * 300 + x) * 3] }
        XCTAssertEqual(at(50, 50), 0.5)
        XCTAssertEqual(at(250, 50), 0.5)
        XCTAssertEqual(at(150, 50), 0.55, accuracy: 1e-5)
        XCTAssertLessThan(abs(at(100, 50) - 0.5), 0.01, "the seam is feathered")
        XCTAssertEqual(at(150, 0), 0.55, accuracy: 1e-5, "no feather where the region meets the photo's border")
    }

    func testPNGWriterRoundTripsThroughLibpngAtEverySize() throws {
        // Sizes that give one piece, several pieces, a single row and a single column.
        for (w, h) in [(1, 1), (7, 1), (1, 9), (57, 33), (1500, 2000)] {
            let img = noise(w, h, seed: UInt64(w * h))
            let png = try ImageIO.encodePNG(img)
            XCTAssertEqual(try ImageIO.decode(png).eightBitSamples(), img.eightBitSamples(), "\(w)x\(h)")
        }
        // Photo-like content compresses.
        let smooth = RGBImage(width: 400, height: 300, pixels: (0..<(400 * 300 * 3)).map { i in Float((i / 3) % 400) / 400 })
        XCTAssertLessThan(try ImageIO.encodePNG(smooth).count, 400 * 300 * 3 / 10)
    }

    func testJPEGReadsAtAReducedScaleThatKeepsTheShortSide() throws {
        // Smooth content (a photo's, at this scale): the reduced decode must look like a resize.
        let img = RGBImage(width: 1200, height: 800, pixels: (0..<(1200 * 800 * 3)).map { i in
            let (x, y, c) = (Double((i / 3) % 1200), Double(i / 3600), Double(i % 3))
            return Float(0.5 + 0.3 * sin(x / (37 + 5 * c)) * cos(y / 23))
        })
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scaled-\(getpid()).jpg").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ImageIO.write(img, path: path, jpegQuality: 90)
        let small = try ImageIO.read(path: path, minimumShortSide: 256)
        XCTAssertEqual(small.width, 1200)
        XCTAssertEqual(small.height, 800)
        // libjpeg-turbo's smallest scale (of k/8, k/16) that keeps 256 rows: 3/8, 300 rows.
        XCTAssertEqual(small.image.height, 300)
        XCTAssertEqual(small.image.width, 450)
        let whole = try ImageIO.read(path: path, minimumShortSide: 801)
        XCTAssertEqual(whole.image.width, 1200)
        // The reduced decode is close to a resize of the whole one.
        let full = try ImageIO.read(path: path)
        let ref = Resize.resize(full, width: 450, height: 300)
        let meanError = zip(ref.pixels, small.image.pixels).map { Double(abs($0 - $1)) }.reduce(0, +) / Double(ref.pixels.count)
        XCTAssertLessThan(meanError, 0.03)
    }

    func testDamageChainsAndTheSuiteKeepTheSize() throws {
        XCTAssertEqual(try Distortion.chain("downscale+jpeg50"), [.downscale, .jpeg50])
        XCTAssertThrowsError(try Distortion.chain("downscale+jpg")) { XCTAssertTrue("\($0)".contains("unknown damage 'jpg'"), "\($0)") }
        let img = noise(64, 48, seed: 6)
        for d in Distortion.suite {
            let out = try d.apply(img, seed: 1)
            XCTAssertEqual([out.width, out.height], [64, 48], d.rawValue)
            XCTAssertTrue(out.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, d.rawValue)
            if d != .none { XCTAssertNotEqual(out, img, d.rawValue) }
        }
        XCTAssertEqual(try Distortion.apply([.downscale, .jpeg50], to: img, seed: 1).width, 32)
    }

    func testSafetensorsStoresFloat16() throws {
        var f = SafetensorsFile(tensors: ["a": Tensor(shape: [3], scalars: [0.5, -2, 1e-3]), "b": Tensor(shape: [2], scalars: [1.1, 2.2])])
        f.float16 = ["a"]
        let back = try SafetensorsFile.decode(f.encode())
        XCTAssertEqual(back.tensors["a"]!.scalars[0], 0.5)
        XCTAssertEqual(back.tensors["a"]!.scalars[1], -2)
        XCTAssertEqual(back.tensors["a"]!.scalars[2], 1e-3, accuracy: 1e-6)
        XCTAssertEqual(back.tensors["b"]!.scalars, [1.1, 2.2])
        XCTAssertEqual(back.float16, ["a"])
    }
}
