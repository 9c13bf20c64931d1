import Foundation
import StegaStamp
import TestSupport
import XCTest

final class ImageIOTests: XCTestCase {
    let dir = repositoryRoot.appendingPathComponent("Tests/Fixtures/images")

    func testEveryPNGColourTypeAndDepth() throws {
        let data = try Data(contentsOf: dir.appendingPathComponent("expected.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let expected = json["pixels"] as! [String: [[Int]]]
        XCTAssertEqual(expected.count, 11)
        for (file, pixels) in expected.sorted(by: { $0.key < $1.key }) {
            let img = try ImageIO.read(path: dir.appendingPathComponent(file).path)
            XCTAssertEqual(img.width, json["width"] as! Int, file)
            XCTAssertEqual(img.height, json["height"] as! Int, file)
            XCTAssertEqual(img.bytes.map(Int.init), pixels.flatMap { $0 }, file)
        }
    }

    func testBrokenFilesGiveErrors() {
        for (file, message) in [("truncated.png", "PNG"), ("badcrc.png", "PNG"), ("garbage.png", "PNG"), ("not_an_image.png", "not a PNG or JPEG")] {
            XCTAssertThrowsError(try ImageIO.read(path: dir.appendingPathComponent(file).path), file) { e in
                XCTAssertTrue("\(e)".contains(message) && "\(e)".contains(file), "\(e)")
            }
        }
        XCTAssertThrowsError(try ImageIO.read(path: "/no/such/image.png")) { XCTAssertTrue("\($0)".contains("cannot read")) }
    }

    func sample() -> RGBImage {
        let img = SyntheticImages.batch(count: 1, height: 40, width: 56, seed: 4)
        return RGBImage(img)
    }

    func testPNGRoundTripIsExactIn8Bits() throws {
        let img = sample()
        let back = try ImageIO.decode(try ImageIO.encodePNG(img))
        XCTAssertEqual(back.bytes, img.bytes)
    }

    func testJPEGRoundTripAndQuality() throws {
        let img = sample()
        func error(_ q: Int) throws -> Double {
            let back = try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: q))
            XCTAssertEqual(back.width, img.width)
            return zip(back.pixels, img.pixels).map { Double(abs($0 - $1)) }.reduce(0, +) / Double(img.pixels.count)
        }
        let e95 = try error(95), e30 = try error(30)
        XCTAssertLessThan(e95, 0.03)
        XCTAssertLessThan(e95, e30)
        let jpeg = try ImageIO.encodeJPEG(img, quality: 80)
        for cut in [10, jpeg.count / 2, jpeg.count - 3] {
            XCTAssertThrowsError(try ImageIO.decode(Array(jpeg.prefix(cut))), "cut \(cut)") { XCTAssertTrue("\($0)".contains("JPEG"), "\($0)") }
        }
        XCTAssertThrowsError(try ImageIO.encodeJPEG(img, quality: 0))
    }

    func testWriteByExtensionAtomically() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("img-\(getpid())")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        for name in ["a.png", "b.jpg", "c.JPEG"] {
            try ImageIO.write(sample(), path: tmp.appendingPathComponent(name).path)
            XCTAssertEqual(try ImageIO.read(path: tmp.appendingPathComponent(name).path).height, 40)
        }
        XCTAssertThrowsError(try ImageIO.write(sample(), path: tmp.appendingPathComponent("d.gif").path)) {
            XCTAssertTrue("\($0)".contains("unknown image extension"))
        }
    }
}

final class ResizeTests: XCTestCase {
    func testConstantStaysConstantAndSizesAreRight() {
        let flat = RGBImage(width: 37, height: 23, pixels: [Float](repeating: 0.25, count: 37 * 23 * 3))
        for (w, h) in [(10, 7), (80, 50), (37, 23), (5, 40)] {
            let r = Resize.resize(flat, width: w, height: h)
            XCTAssertEqual(r.width, w)
            XCTAssertEqual(r.height, h)
            XCTAssertTrue(r.pixels.allSatisfy { abs($0 - 0.25) < 1e-6 })
        }
    }

    func testDownscalingAveragesInsteadOfAliasing() {
        // A one-pixel checkerboard shrunk 4x must come out grey, not black or white.
        let w = 64
        let board = RGBImage(width: w, height: w, pixels: (0..<(w * w * 3)).map { Float((($0 / 3) % w + ($0 / 3) / w) % 2) })
        let small = Resize.resize(board, width: 16, height: 16)
        XCTAssertTrue(small.pixels.allSatisfy { abs($0 - 0.5) < 0.05 }, "\(small.pixels.prefix(6))")
    }

    func testFitCropsTheCentreToTheAspectRatio() {
        // Left third red, middle green, right third blue: fitting to a square keeps mostly green.
        let (w, h) = (90, 30)
        var px = [Float]()
        for _ in 0..<h { for x in 0..<w { px += x < 30 ? [1, 0, 0] : (x < 60 ? [0, 1, 0] : [0, 0, 1]) } }
        let square = Resize.fit(RGBImage(width: w, height: h, pixels: px), width: 10, height: 10)
        XCTAssertEqual(square.width, 10)
        XCTAssertGreaterThan(square.pixels[(5 * 10 + 5) * 3 + 1], 0.99)
        XCTAssertLessThan(square.pixels[(5 * 10 + 0) * 3 + 0], 0.01)
    }
}
