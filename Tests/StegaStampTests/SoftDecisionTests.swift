import Foundation
@testable import StegaStamp
import XCTest

/// Soft-decision decoding: it corrects more errors than the code's t when they sit on the bits
/// the decoder was least sure of, refuses them on bits it was sure of, and accepts words of pure
/// noise no more often than the hard decoder already does.
final class SoftDecisionTests: XCTestCase {
    let codec = SecretCodec.standard
    let data: [UInt8] = Array("Soft 7!".utf8)

    /// Confident logits for the codeword of `data` (+-2, varied), then `errors` bits turned weak
    /// and wrong (|logit| 0.1 ... 0.4) or, with `confident`, wrong at full strength.
    func logits(errors: [Int], confident: Bool = false) -> [Float] {
        let bits = codec.encode(data: data)
        var l = bits.enumerated().map { i, b in (b == 1 ? 1 : -1) * Float(1.5 + Double((i * 37) % 11) / 10) }
        for (k, i) in errors.enumerated() { l[i] = (l[i] > 0 ? -1 : 1) * (confident ? 2 : Float(0.1 + 0.05 * Double(k))) }
        return l
    }

    func testCorrectsSevenWeakErrorsThatHardDecodingCannot() throws {
        let l = logits(errors: [3, 17, 30, 44, 58, 71, 88])
        XCTAssertThrowsError(try codec.decodeData(l.map { $0 > 0 ? 1 : 0 }), "7 errors are beyond t = 5")
        let c = try XCTUnwrap(SoftDecision.standard.decode(l, codec: codec))
        XCTAssertEqual(c.data, data)
        XCTAssertEqual(c.changed, 7)
        XCTAssertLessThan(c.cost, 1)
    }

    func testRefusesErrorsOnConfidentBits() {
        let l = logits(errors: [3, 17, 30, 44, 58, 71, 88], confident: true)
        XCTAssertNil(SoftDecision.standard.decode(l, codec: codec), "7 confident errors were believed")
        // The closest codeword is still found when the weak bits are among the wrong ones...
        let mixed = logits(errors: [3, 17, 30, 44, 58, 71, 88])
        XCTAssertEqual(SoftDecision.standard.closest(mixed, codec: codec)?.data, data)
    }

    func testPaddingReadAsOneCountsAgainstTheWord() throws {
        var l = logits(errors: [3, 17, 30, 44, 58, 71, 88])
        let clean = try XCTUnwrap(SoftDecision.standard.closest(l, codec: codec)).cost
        for i in 91..<100 { l[i] = 2 }
        let padded = try XCTUnwrap(SoftDecision.standard.closest(l, codec: codec)).cost
        XCTAssertGreaterThan(padded, clean + 5, "nine padding bits read as 1 with confidence")
        XCTAssertLessThan(SoftDecision(flips: 8, maxCost: 3.5, countPadding: false).closest(l, codec: codec)?.cost ?? .infinity, padded - 5)
        XCTAssertNil(SoftDecision.standard.decode(l, codec: codec), "the padding vetoes it")
    }

    /// Words of noise: the hard decoder takes any word within 5 bits of a codeword (sum C(91, i <= 5)
    /// / 2^35 = 1.4e-3 of them); vetting its padding, or the soft decision, takes far fewer.
    func testAcceptsNoiseFarLessOftenThanTheHardDecoder() {
        let soft = SoftDecision.standard
        func hard(_ l: [Float]) -> Bool { (try? codec.decodeData(l.map { $0 > 0 ? 1 : 0 })) != nil }
        let hardRate = SoftDecision.noiseRate(codec: codec, trials: 30000, seed: 5, accepts: hard)
        XCTAssertEqual(hardRate, 1.43e-3, accuracy: 0.6e-3, "the hard decoder's rate on noise")
        let vetted = SoftDecision.noiseRate(codec: codec, trials: 30000, seed: 5) { hard($0) && soft.believesHard($0, codec: self.codec) }
        XCTAssertLessThanOrEqual(vetted, hardRate / 10, "hard bits with their padding vetted: \(vetted)")
        let softRate = SoftDecision.noiseRate(codec: codec, trials: 2000, seed: 6) { soft.decode($0, codec: self.codec) != nil }
        XCTAssertLessThanOrEqual(softRate, hardRate / 2, "the soft decision on noise: \(softRate)")
    }

    func testPaddingReadAsOneVetoesAHardDecode() throws {
        var l = logits(errors: [])
        XCTAssertTrue(SoftDecision.standard.believesHard(l, codec: codec))
        l[93] = 2; l[97] = 2
        XCTAssertNoThrow(try codec.decodeData(l.map { $0 > 0 ? 1 : 0 }), "padding is outside the BCH codeword")
        XCTAssertFalse(SoftDecision.standard.believesHard(l, codec: codec))
        XCTAssertNil(SoftDecision.standard.decode(l, codec: codec))
    }
}
