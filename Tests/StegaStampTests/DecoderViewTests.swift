import Foundation
@testable import StegaStamp
import XCTest

/// The decoder's views: each lines a slightly cropped or turned photo up with the original again,
/// in the model's square (also for a photo that is not square), and the plain view is the
/// model input unchanged.
final class DecoderViewTests: XCTestCase {
    /// A smooth photo (errors then measure geometry, not aliasing).
    func smooth(_ w: Int, _ h: Int) -> RGBImage {
        var px = [Float](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w { for c in 0..<3 {
            let (u, v) = (Double(x) / Double(w), Double(y) / Double(h))
            px[(y * w + x) * 3 + c] = Float(0.5 + 0.2 * sin(7 * u + 2 * Double(c)) * cos(5 * v) + 0.15 * sin(11 * u * v + Double(c)))
        } } }
        return RGBImage(width: w, height: h, pixels: px)
    }

    /// Mean absolute difference over the central half of two model inputs.
    func centralError(_ a: RGBImage, _ b: RGBImage) -> Double {
        var sum = 0.0, n = 0
        for y in (a.height / 4)..<(3 * a.height / 4) { for x in (a.width / 4)..<(3 * a.width / 4) { for c in 0..<3 {
            sum += Double(abs(a.pixels[(y * a.width + x) * 3 + c] - b.pixels[(y * b.width + x) * 3 + c])); n += 1
        } } }
        return sum / Double(n)
    }

    func testViewsUndoACropAndATurnOfAPhotoThatIsNotSquare() {
        let (w, h) = (300, 200)
        let photo = smooth(w, h)
        let aspect = Double(w) / Double(h)
        func input(_ img: RGBImage) -> RGBImage { Embedding.modelInput(img, width: 128, height: 128) }
        let original = input(photo)
        XCTAssertEqual(DecoderView.plain.apply(to: original, aspect: aspect), original)

        // 5 % per border cropped away and resized back: the 1/0.9 view sees the original again.
        let cropped = input(Resize.resize(photo, x: 15, y: 10, regionWidth: 270, regionHeight: 180, width: w, height: h).clamped())
        let plainCrop = centralError(cropped, original)
        let viewCrop = centralError(DecoderView(zoom: 1 / 0.9, degrees: 0).apply(to: cropped, aspect: aspect), original)
        XCTAssertLessThan(viewCrop, 0.25 * plainCrop, "crop: plain \(plainCrop), zoomed-out view \(viewCrop)")
        XCTAssertLessThan(viewCrop, 0.01)

        // Turned by +2 degrees (clockwise on screen, as Distortion.rotate draws it): the +2 view
        // undoes it, the -2 view does not.
        let a = 2.0 * Double.pi / 180, (cx, cy) = (Double(w) / 2, Double(h) / 2)
        let corners = [(0.0, 0.0), (Double(w), 0), (Double(w), Double(h)), (0, Double(h))].map { p in
            (cx + (p.0 - cx) * cos(a) - (p.1 - cy) * sin(a), cy + (p.0 - cx) * sin(a) + (p.1 - cy) * cos(a))
        }
        let turned = input(Distortion.warp(photo, corners: corners))
        let plainTurn = centralError(turned, original)
        let right = centralError(DecoderView(zoom: 1, degrees: 2).apply(to: turned, aspect: aspect), original)
        let wrong = centralError(DecoderView(zoom: 1, degrees: -2).apply(to: turned, aspect: aspect), original)
        XCTAssertLessThan(right, 0.25 * plainTurn, "turn: plain \(plainTurn), +2 view \(right)")
        XCTAssertGreaterThan(wrong, plainTurn, "the -2 view should turn it further away")

        // Moved 1.5 % to the right and up (as a perspective warp's corners shift it): the view
        // moved the same way lines it up, the opposite one does not.
        let (dx, dy) = (0.015 * Double(w), -0.015 * Double(h))
        let moved = input(Distortion.warp(photo, corners: [(dx, dy), (Double(w) + dx, dy), (Double(w) + dx, Double(h) + dy), (dx, Double(h) + dy)]))
        let plainMove = centralError(moved, original)
        let along = centralError(DecoderView(zoom: 1, degrees: 0, shiftX: 0.015, shiftY: -0.015).apply(to: moved, aspect: aspect), original)
        let against = centralError(DecoderView(zoom: 1, degrees: 0, shiftX: -0.015, shiftY: 0.015).apply(to: moved, aspect: aspect), original)
        XCTAssertLessThan(along, 0.25 * plainMove, "move: plain \(plainMove), view moved along \(along)")
        XCTAssertGreaterThan(against, plainMove, "the opposite move should take it further away")
        XCTAssertEqual(DecoderView.search.first, .plain)
        XCTAssertEqual(Set(DecoderView.search.map(\.description)).count, DecoderView.search.count)
    }

    /// `read` with the plain view alone is `decodeBits`; on a marked photo it returns the message
    /// from the plain view; on a photo without a message it says so (no message from any view).
    func testReadTakesThePlainViewFirstAndFindsNothingInAnUnmarkedPhoto() throws {
        let m = try WatermarkModel(path: try ShippedModel.path())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("views-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let photo = try ImageIO.read(path: try SyntheticImages.writePhotos(directory: dir, count: 1, width: 256, height: 192, seed: 5)[0])
        XCTAssertEqual(try m.read(photo, views: [.plain]).bits, try m.decodeBits([photo])[0])
        let unmarked = try m.read(photo)
        XCTAssertNil(unmarked.data, "a message found in a photo that carries none")
        XCTAssertEqual(unmarked.view, .plain)
        let bits = try SecretCodec.standard.encode("Views")
        let encoded = try m.encode([photo], bits: bits, strength: 3)[0]
        let r = try m.read(encoded)
        XCTAssertTrue(r.data == nil || r.data! == Array("Views  ".utf8), "a wrong message came back: \(r.data!)")
        if r.view == .plain { XCTAssertEqual(r.bits, try m.decodeBits([encoded])[0]) } else { XCTAssertNotNil(r.data) }
    }
}
