import Foundation
@testable import StegaStamp
import XCTest

/// Encoder-side refinement through the shipped model's decoder: its gradient against finite
/// differences, and a refined residual of the same energy that the decoder reads better on views
/// the refinement never saw.
final class RefinementTests: XCTestCase {
    func photo(_ seed: UInt64) throws -> RGBImage {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("refine-\(getpid())-\(seed)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try ImageIO.read(path: try SyntheticImages.writePhotos(directory: dir, count: 1, width: 320, height: 240, seed: seed)[0])
    }

    /// d loss / d delta along a random direction against a central difference of the same views.
    func testGradientMatchesFiniteDifferences() throws {
        let m = try WatermarkModel(path: try ShippedModel.path())
        let image = try photo(3)
        let bits = try SecretCodec.standard.encode("Grad")
        var r = Refinement(steps: 1)
        r.views = 3  // view 1 loses a frame and has its contrast and brightness changed (and clipped)
        r.jpeg = false
        let delta = try m.residuals([image], bits: bits)[0].pixels.pixels.map { $0 * 0.3 }
        let cover = m.batchTensor([image])
        let g = try m.refinementLoss(delta: delta, cover: cover, bits: bits, r, step: 7).gradient
        var state: UInt64 = 12345
        let direction: [Float] = delta.indices.map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        let unit = Float(1 / WatermarkModel.norm(direction))
        let v = direction.map { $0 * unit }
        let analytic = zip(g, v).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let eps: Float = 0.02
        let plus = try m.refinementLoss(delta: zip(delta, v).map { $0 + eps * $1 }, cover: cover, bits: bits, r, step: 7).loss
        let minus = try m.refinementLoss(delta: zip(delta, v).map { $0 - eps * $1 }, cover: cover, bits: bits, r, step: 7).loss
        let numeric = Double(plus - minus) / Double(2 * eps)
        XCTAssertGreaterThan(abs(analytic), 1e-6, "the loss does not depend on delta")
        XCTAssertEqual(numeric, analytic, accuracy: 0.1 * abs(analytic), "numeric \(numeric), analytic \(analytic)")
    }

    /// Same norm, no per-channel tint, and a lower secret loss on unseen views.
    func testRefinedResidualKeepsItsEnergyAndDecodesBetterOnUnseenViews() throws {
        let m = try WatermarkModel(path: try ShippedModel.path())
        let image = try photo(4)
        let bits = try SecretCodec.standard.encode("Refine")
        let strength: Float = 0.3
        let start = try m.residuals([image], bits: bits)[0]
        var r = Refinement(steps: 8)
        r.views = 4
        let refined = try m.refine(start, image: image, bits: bits, strength: strength, r).residual
        let (a, b) = (WatermarkModel.norm(start.pixels.pixels), WatermarkModel.norm(refined.pixels.pixels))
        XCTAssertEqual(b, a, accuracy: 1e-4 * a)
        for c in 0..<3 {
            let mean = stride(from: c, to: refined.pixels.pixels.count, by: 3).reduce(0.0) { $0 + Double(refined.pixels.pixels[$1]) }
            XCTAssertEqual(mean / Double(128 * 128), 0, accuracy: 1e-6)
        }
        XCTAssertNotEqual(refined.pixels, start.pixels)
        let cover = m.batchTensor([image])
        // What the decoder reads of each residual in this photo.
        let trip = RoundTrip(width: m.width, height: m.height, photoWidth: image.width, photoHeight: image.height)
        var before = 0.0, after = 0.0
        for step in 1000..<1004 {
            before += Double(try m.refinementLoss(delta: trip.apply(start.pixels.pixels.map { $0 * strength }), cover: cover, bits: bits, r, step: step).loss)
            after += Double(try m.refinementLoss(delta: trip.apply(refined.pixels.pixels.map { $0 * strength }), cover: cover, bits: bits, r, step: step).loss)
        }
        XCTAssertLessThan(after, 0.8 * before, "secret loss on unseen views: before \(before / 4), after \(after / 4)")
        // No steps: the residual unchanged.
        XCTAssertEqual(try m.refine(start, image: image, bits: bits, strength: strength, Refinement(steps: 0)).residual.pixels, start.pixels)
    }

    func testBadSettingsAreClearErrors() throws {
        let m = try WatermarkModel(path: try ShippedModel.path())
        let image = try photo(5)
        let bits = try SecretCodec.standard.encode("Bad")
        let start = try m.residuals([image], bits: bits)[0]
        var r = Refinement(steps: 2)
        r.views = 0
        XCTAssertThrowsError(try m.refine(start, image: image, bits: bits, strength: 0.3, r)) { e in
            XCTAssertTrue("\(e)".contains("views"), "\(e)")
        }
        XCTAssertThrowsError(try m.refine(start, image: image, bits: Array(bits.prefix(10)), strength: 0.3, Refinement(steps: 2)))
        var garish = Refinement(steps: 2)
        garish.colour = 1
        XCTAssertThrowsError(try m.refine(start, image: image, bits: bits, strength: 0.3, garish)) { e in
            XCTAssertTrue("\(e)".contains("colour"), "\(e)")
        }
        var harsh = Refinement(steps: 2)
        harsh.severity = 1.5
        XCTAssertThrowsError(try m.refine(start, image: image, bits: bits, strength: 0.3, harsh)) { e in
            XCTAssertTrue("\(e)".contains("severity"), "\(e)")
        }
    }

    /// The round trip is what the photo pipeline does to a residual: upsampled into a photo,
    /// resized back to the model's size. And its transpose is its adjoint (the gradient's way back).
    func testRoundTripIsThePhotoPipelineAndItsTransposeTheAdjoint() throws {
        for (w, h) in [(640, 300), (128, 128), (200, 90), (1000, 333)] {
            let trip = RoundTrip(width: 128, height: 128, photoWidth: w, photoHeight: h)
            var state: UInt64 = UInt64(w * 7 + h)
            func noise() -> [Float] {
                (0..<(128 * 128 * 3)).map { _ in
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000 * 0.05
                }
            }
            let x = noise(), y = noise()
            let grey = RGBImage(width: w, height: h, pixels: [Float](repeating: 0.5, count: w * h * 3))
            let encoded = Embedding.apply(RGBImage(width: 128, height: 128, pixels: x), to: grey, strength: 1)
            let read = Embedding.modelInput(encoded, width: 128, height: 128).pixels.map { $0 - 0.5 }
            let expected = trip.apply(x)
            let worst = zip(read, expected).map { abs($0 - $1) }.max()!
            // Feathering (square regions of wide photos) changes the residual near the region's edges.
            if Embedding.region(width: w, height: h).width == w {
                XCTAssertLessThan(worst, 1e-4, "\(w)x\(h): the round trip is off by \(worst)")
            }
            let bx = zip(trip.apply(x), y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let xbt = zip(x, trip.apply(y, transposed: true)).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(bx, xbt, accuracy: 1e-4 * max(abs(bx), 1), "\(w)x\(h)")
            XCTAssertNotEqual(bx, 0)
        }
    }

    /// Scaling the transform net's damage: 1 is the model's, 0 leaves no photometric damage.
    func testScaledTransformConfig() {
        var c = TransformConfig()
        c.contrastLow = 0.75; c.contrastHigh = 1.3; c.jpegQuality = 50
        XCTAssertEqual(c.scaled(1), c)
        let none = c.scaled(0)
        XCTAssertEqual([none.rndBri, none.rndHue, none.rndNoise, none.rndSat], [0, 0, 0, 0])
        XCTAssertEqual([none.contrastLow, none.contrastHigh, none.jpegQuality], [1, 1, 100])
        let some = c.scaled(0.3)
        XCTAssertEqual(some.jpegQuality, 85, accuracy: 1e-4)
        XCTAssertEqual(some.contrastHigh, 1.09, accuracy: 1e-6)
        XCTAssertEqual(some.blur, c.blur)
    }
}
