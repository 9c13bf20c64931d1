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
            XCTAssertEqual(img.eightBitSamples().map(Int.init), pixels.flatMap { $0 }, file)
        }
    }

    /// Means of f x f blocks (partial ones at the right and bottom), rounded half up.
    func blockMeans(_ img: RGBImage, _ f: Int) -> RGBImage {
        let (ow, oh) = ((img.width + f - 1) / f, (img.height + f - 1) / f)
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        let bytes = img.eightBitSamples()
        for by in 0..<oh {
            for bx in 0..<ow {
                for c in 0..<3 {
                    var sum = 0, n = 0
                    for y in (by * f)..<min(img.height, by * f + f) {
                        for x in (bx * f)..<min(img.width, bx * f + f) { sum += Int(bytes[(y * img.width + x) * 3 + c]); n += 1 }
                    }
                    out[(by * ow + bx) * 3 + c] = UInt8((sum + n / 2) / n)
                }
            }
        }
        return RGBImage(width: ow, height: oh, bytes: out)
    }

    /// A decoder's read of a PNG (`read(path:minimumShortSide:)`): grey and RGB, 1 to 16 bits, row
    /// by row into block means equal to those of the whole image; alpha, transparency and
    /// palettes decode whole (as libpng's simplified API converts them); corrupt files still fail.
    func testReducedPNGReadsAreTheBlockMeansOfTheWholeImage() throws {
        var reduced: Set<String> = []
        for file in ["gray1.png", "gray16.png", "gray8.png", "graya8.png", "palette4.png", "palette8.png", "palette_trns.png", "rgb16.png",
                     "rgb8.png", "rgba16.png", "rgba8.png"] {
            let path = dir.appendingPathComponent(file).path
            let whole = try ImageIO.read(path: path)
            let r = try ImageIO.read(path: path, minimumShortSide: 1)
            XCTAssertEqual([r.width, r.height], [whole.width, whole.height], file)
            if r.image.width == whole.width {
                XCTAssertEqual(r.image.eightBitSamples(), whole.eightBitSamples(), file)
            } else {
                XCTAssertEqual(r.image.eightBitSamples(), blockMeans(whole, 2).eightBitSamples(), file)  // 4x3: factor 2, partial blocks
                reduced.insert(file)
            }
        }
        XCTAssertEqual(reduced, ["gray1.png", "gray16.png", "gray8.png", "rgb16.png", "rgb8.png"])
        // A photo-sized image: factors 8, 4 and 2 as the short side allows, and none for a small one.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("reduced-\(getpid()).png")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let img = RGBImage(SyntheticImages.batch(count: 1, height: 151, width: 203, seed: 9))
        try ImageIO.write(img, path: tmp.path)
        for (minimum, factor) in [(18, 8), (20, 4), (60, 2), (100, 1)] {
            let r = try ImageIO.read(path: tmp.path, minimumShortSide: minimum)
            XCTAssertEqual([r.width, r.height], [203, 151])
            XCTAssertEqual(r.image.eightBitSamples(), factor == 1 ? img.eightBitSamples() : blockMeans(img, factor).eightBitSamples(), "factor \(factor)")
            XCTAssertGreaterThanOrEqual(min(r.image.width, r.image.height), minimum)
        }
        for (file, message) in [("truncated.png", "PNG"), ("badcrc.png", "PNG"), ("garbage.png", "PNG")] {
            XCTAssertThrowsError(try ImageIO.read(path: dir.appendingPathComponent(file).path, minimumShortSide: 1), file) { e in
                XCTAssertTrue("\(e)".contains(message) && "\(e)".contains(file), "\(e)")
            }
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
        XCTAssertEqual(back.eightBitSamples(), img.eightBitSamples())
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
