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
        r.views = 2
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
        var before = 0.0, after = 0.0
        for step in 1000..<1004 {
            before += Double(try m.refinementLoss(delta: start.pixels.pixels.map { $0 * strength }, cover: cover, bits: bits, r, step: step).loss)
            after += Double(try m.refinementLoss(delta: refined.pixels.pixels.map { $0 * strength }, cover: cover, bits: bits, r, step: step).loss)
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
    }
}
