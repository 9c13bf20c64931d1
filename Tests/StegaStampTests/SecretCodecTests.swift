import Foundation
import StegaStamp
import TestSupport
import XCTest

/// bch_vectors.json (bchlib's BCH(t=5, prim_poly=137), replayed with the version the original used).
final class SecretCodecTests: XCTestCase {
    var vectors: [String: Any] {
        let data = try! Data(contentsOf: repositoryRoot.appendingPathComponent("Tests/Fixtures/bch_vectors.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func hex(_ s: String) -> [UInt8] {
        stride(from: 0, to: s.count, by: 2).map { UInt8(s.dropFirst($0).prefix(2), radix: 16)! }
    }

    func bits(_ any: Any) -> [UInt8] { (any as! [Int]).map { UInt8($0) } }

    func testCodeParameters() {
        let v = vectors
        let code = SecretCodec.standard.code
        XCTAssertEqual(code.eccBits, v["ecc_bits"] as! Int)
        XCTAssertEqual(SecretCodec.standard.eccBytes, v["ecc_bytes"] as! Int)
        XCTAssertEqual(code.n, v["n"] as! Int)
        let g = code.generator.reduce(0) { ($0 << 1) | Int($1) }
        XCTAssertEqual("0x" + String(g, radix: 16), v["generator_poly_hex"] as! String)
    }

    func testEveryMessageAndCorruptionCase() throws {
        let codec = SecretCodec.standard
        var cases = 0
        for m in vectors["messages"] as! [[String: Any]] {
            let data = hex(m["data_hex"] as! String)
            XCTAssertEqual(codec.ecc(data), hex(m["ecc_hex"] as! String))
            XCTAssertEqual(codec.encode(data: data), bits(m["bits"]!))
            if let text = m["text"] as? String {
                XCTAssertEqual(try codec.encode(text), bits(m["bits"]!), text)
                XCTAssertEqual(try codec.decode(bits(m["bits"]!)).text, text)
            }
            for c in m["corrupted"] as! [[String: Any]] {
                cases += 1
                let flips = c["bitflips"] as! Int
                if flips < 0 {
                    XCTAssertThrowsError(try codec.decodeData(bits(c["bits"]!))) { XCTAssertEqual($0 as? SecretCodec.CodecError, .uncorrectable) }
                } else {
                    let d = try codec.decodeData(bits(c["bits"]!))
                    XCTAssertEqual(d.corrected, flips, "\(c["flipped_positions"]!)")
                    XCTAssertEqual(d.data, hex(c["data_hex_after"] as! String))
                }
            }
        }
        XCTAssertEqual(cases, 12 * 7)
    }

    /// Beyond the fixture: every single, double and (sampled) up-to-5-bit error pattern in the
    /// 91 codeword bits is corrected.
    func testCorrectsUpToFiveErrorsAnywhere() throws {
        let codec = SecretCodec.standard
        let clean = try codec.encode("Zürich")
        for i in 0..<91 {
            var b = clean
            b[i] ^= 1
            XCTAssertEqual(try codec.decode(b).corrected, 1)
            for j in (i + 1)..<91 where (i + j) % 7 == 0 {
                var b2 = b
                b2[j] ^= 1
                XCTAssertEqual(try codec.decode(b2).text, "Zürich")
            }
        }
        var state: UInt64 = 7
        for _ in 0..<300 {
            var b = clean
            var flipped = Set<Int>()
            let count = 3 + Int(state % 3)
            while flipped.count < count { state = state &* 6364136223846793005 &+ 1442695040888963407; flipped.insert(Int(state >> 33) % 91) }
            for p in flipped { b[p] ^= 1 }
            let d = try codec.decode(b)
            XCTAssertEqual(d.corrected, count)
            XCTAssertEqual(d.text, "Zürich")
        }
    }

    func testErrors() {
        XCTAssertThrowsError(try SecretCodec.standard.encode("too long!")) { XCTAssertEqual("\($0)", "the secret is 9 bytes of UTF-8; at most 7 fit") }
        XCTAssertThrowsError(try SecretCodec.standard.encode("ééééé")) { XCTAssertTrue("\($0)".contains("10 bytes")) }
        XCTAssertThrowsError(try SecretCodec.standard.decode([UInt8](repeating: 0, count: 50))) { XCTAssertTrue("\($0)".contains("at least 96")) }
    }
}
