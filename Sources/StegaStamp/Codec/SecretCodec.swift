/// The original StegaStamp payload (`encode_image.py` / `decode_image.py`): up to 7 bytes of UTF-8
/// text padded with spaces to 7 bytes, BCH(t = 5, GF(2^7), polynomial 137) parity in 5 bytes, the
/// 96 bits of data + parity most significant first, then 4 zero bits: 100 bits. The layout is
/// parameterised so other payload sizes and code strengths fit the same code.
public struct SecretCodec: Sendable {
    public let code: BCHCode
    public let dataBytes: Int
    public let totalBits: Int
    public var eccBytes: Int { (code.eccBits + 7) / 8 }
    public var packetBits: Int { 8 * (dataBytes + eccBytes) }

    /// The original's codec: 7 data bytes, BCH t = 5, 100 bits.
    public static let standard = SecretCodec(code: BCHCode(m: 7, t: 5, primitivePolynomial: 137), dataBytes: 7, totalBits: 100)

    public init(code: BCHCode, dataBytes: Int, totalBits: Int) {
        self.code = code
        self.dataBytes = dataBytes
        self.totalBits = totalBits
        precondition(8 * dataBytes + code.eccBits <= code.n, "payload too long for the code")
        precondition(8 * (dataBytes + (code.eccBits + 7) / 8) <= totalBits, "too few bits for the packet")
    }

    public struct Decoded: Sendable, Equatable {
        /// The data bytes after correction.
        public var data: [UInt8]
        /// The text (UTF-8) without the trailing space padding.
        public var text: String
        /// Number of bit errors corrected.
        public var corrected: Int
    }

    public enum CodecError: Error, CustomStringConvertible, Equatable {
        case tooLong(bytes: Int, max: Int)
        case wrongBitCount(got: Int, need: Int)
        case uncorrectable
        case notText([UInt8])

        public var description: String {
            switch self {
            case .tooLong(let b, let m): return "the secret is \(b) bytes of UTF-8; at most \(m) fit"
            case .wrongBitCount(let g, let n): return "need at least \(n) bits, got \(g)"
            case .uncorrectable: return "no message could be recovered: more bit errors than the code corrects"
            case .notText(let d): return "the corrected data is not UTF-8 text: " + d.map { String($0, radix: 16) }.joined(separator: " ")
            }
        }
    }

    static func bits(_ bytes: [UInt8]) -> [UInt8] { bytes.flatMap { byte in (0..<8).map { (byte >> (7 - $0)) & 1 } } }

    static func bytes(_ bits: ArraySlice<UInt8>) -> [UInt8] {
        stride(from: bits.startIndex, to: bits.endIndex, by: 8).map { s in
            bits[s..<min(s + 8, bits.endIndex)].reduce(0) { ($0 << 1) | $1 }
        }
    }

    /// The parity bytes of `data` (dataBytes bytes): the parity bits then zero bits to a byte.
    public func ecc(_ data: [UInt8]) -> [UInt8] {
        let p = code.parity(Self.bits(data))
        return Self.bytes(ArraySlice(p + [UInt8](repeating: 0, count: 8 * eccBytes - p.count)))
    }

    /// The bits of `text`: throws when it does not fit.
    public func encode(_ text: String) throws -> [UInt8] {
        var data = Array(text.utf8)
        if data.count > dataBytes { throw CodecError.tooLong(bytes: data.count, max: dataBytes) }
        data += [UInt8](repeating: 0x20, count: dataBytes - data.count)
        return encode(data: data)
    }

    public func encode(data: [UInt8]) -> [UInt8] {
        let packet = data + ecc(data)
        return Self.bits(packet) + [UInt8](repeating: 0, count: totalBits - packetBits)
    }

    /// Corrects the data bytes: the first 8 * dataBytes + eccBits bits are the codeword; the
    /// parity's padding bits and the trailing bits are ignored (as bchlib does).
    public func decodeData(_ bits: [UInt8]) throws -> (data: [UInt8], corrected: Int) {
        guard bits.count >= packetBits else { throw CodecError.wrongBitCount(got: bits.count, need: packetBits) }
        var codeword = Array(bits[0..<(8 * dataBytes + code.eccBits)]).map { $0 & 1 }
        guard let corrected = code.correct(&codeword) else { throw CodecError.uncorrectable }
        return (Self.bytes(codeword[0..<(8 * dataBytes)]), corrected)
    }

    /// Corrects and decodes text.
    public func decode(_ bits: [UInt8]) throws -> Decoded {
        let (data, corrected) = try decodeData(bits)
        return try text(data: data, corrected: corrected)
    }

    /// The text of corrected data bytes (a soft decision's, say).
    public func text(data: [UInt8], corrected: Int) throws -> Decoded {
        guard let text = String(validating: data, as: UTF8.self) else { throw CodecError.notText(data) }
        var trimmed = Substring(text)
        while trimmed.last == " " { trimmed = trimmed.dropLast() }
        return Decoded(data: data, text: String(trimmed), corrected: corrected)
    }
}
