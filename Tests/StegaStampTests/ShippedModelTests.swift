import Foundation
@testable import StegaStamp
import TestSupport
import XCTest

/// The model under `Models/`: it loads as the default, says what it is, and carries a message
/// through its own encoder and decoder on a photo it never saw.
final class ShippedModelTests: XCTestCase {
    func testTheShippedModelLoadsAndReadsBackWhatItHid() throws {
        let path = try ShippedModel.path()
        XCTAssertTrue(path.hasSuffix(ShippedModel.relativePath), path)
        let m = try WatermarkModel(path: path)
        XCTAssertEqual(m.bits, SecretCodec.standard.totalBits)
        XCTAssertEqual([m.width, m.height], [128, 128])
        XCTAssertEqual(m.defaultStrength, Float(try XCTUnwrap(m.metadata["strength"])), "the default strength is the file's")
        XCTAssertTrue((0.25...4).contains(m.defaultStrength), "\(m.defaultStrength)")
        XCTAssertEqual(m.defaultRefinement, Int(try XCTUnwrap(m.metadata["refine"])), "the default refinement is the file's")
        XCTAssertNotNil(m.metadata["summary.psnr_mean"], "the metrics summary travels in the metadata")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shipped-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let photo = try ImageIO.read(path: try SyntheticImages.writePhotos(directory: dir, count: 1, width: 300, height: 200, seed: 11)[0])
        let bits = try SecretCodec.standard.encode("Shipped")
        let encoded = try m.encode([photo], bits: bits)[0]
        let read = try m.decodeBits([encoded])[0]
        let right = Double(zip(read, bits).filter { $0 == $1 }.count) / Double(bits.count)
        XCTAssertGreaterThan(right, 0.8, "bit accuracy \(right): the exported weights are not the trained ones")
        XCTAssertGreaterThan(Quality.psnr(encoded, photo), 15)
    }
}
