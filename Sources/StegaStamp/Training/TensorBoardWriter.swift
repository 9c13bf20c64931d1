import Foundation

/// TensorBoard event files (`events.out.tfevents.<time>.<host>`): TFRecord framing (length,
/// masked CRC-32C of the length, the serialised `Event`, masked CRC-32C of it) around hand-encoded
/// protobuf `Event { wall_time = 1; step = 2; file_version = 3; summary = 5; session_log = 7 }`,
/// with `SessionLog { status = 1 }`, `Summary.Value { tag = 1; simple_value = 2; image = 4 }` and
/// `Image { height = 1; width = 2; colorspace = 3; encoded_image_string = 4 }`.
/// `tensorboard --logdir RUN` reads them (checked with its EventAccumulator: scripts/check-tensorboard.py).
public final class TensorBoardWriter {
    public let path: String
    let handle: FileHandle

    /// `resumingAt`: a resumed run first writes `SessionLog { status: START }` at its first step,
    /// so TensorBoard drops the points an interrupted run logged past its checkpoint.
    public init(directory: String, resumingAt step: Int? = nil) throws {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        // time.host.pid.n, n counting up past names already there: a second writer in the same
        // second and process (a resumed run) never truncates the first one's file.
        let base = URL(fileURLWithPath: directory)
            .appendingPathComponent("events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid())").path
        var n = 0
        while FileManager.default.fileExists(atPath: "\(base).\(n)") { n += 1 }
        path = "\(base).\(n)"
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw TrainingError("\(path): cannot create the event file") }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var e = Proto()
        e.double(1, Date().timeIntervalSince1970)
        e.string(3, "brain.Event:2")
        try record(e.bytes)
        if let step {
            var log = Proto()
            log.varint(1, 1)
            var start = Proto()
            start.double(1, Date().timeIntervalSince1970)
            start.varint(2, UInt64(step))
            start.message(7, log)
            try record(start.bytes)
        }
    }

    deinit { try? handle.close() }

    public func scalars(_ values: [(String, Double)], step: Int) throws {
        var summary = Proto()
        for (tag, v) in values where v.isFinite {
            var value = Proto()
            value.string(1, tag)
            value.float(2, Float(v))
            summary.message(1, value)
        }
        try event(summary, step: step)
    }

    /// One PNG image under `tag`.
    public func image(_ tag: String, png: [UInt8], width: Int, height: Int, step: Int) throws {
        var image = Proto()
        image.varint(1, UInt64(height))
        image.varint(2, UInt64(width))
        image.varint(3, 3)
        image.bytes(4, png)
        var value = Proto()
        value.string(1, tag)
        value.message(4, image)
        var summary = Proto()
        summary.message(1, value)
        try event(summary, step: step)
    }

    func event(_ summary: Proto, step: Int) throws {
        var e = Proto()
        e.double(1, Date().timeIntervalSince1970)
        e.varint(2, UInt64(bitPattern: Int64(step)))
        e.message(5, summary)
        try record(e.bytes)
    }

    func record(_ data: [UInt8]) throws {
        var out: [UInt8] = []
        var len = UInt64(data.count)
        var lenBytes: [UInt8] = []
        for _ in 0..<8 { lenBytes.append(UInt8(len & 0xFF)); len >>= 8 }
        out += lenBytes
        out += Self.le32(CRC32C.masked(lenBytes))
        out += data
        out += Self.le32(CRC32C.masked(data))
        try handle.write(contentsOf: out)
    }

    public func flush() { try? handle.synchronize() }

    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * UInt32($0))) & 0xFF) } }

    /// The records of an event file, CRCs checked: the reader the tests use beside TensorBoard's.
    public static func records(path: String) throws -> [[UInt8]] {
        guard let d = FileManager.default.contents(atPath: path) else { throw TrainingError("\(path): cannot read") }
        let b = [UInt8](d)
        var i = 0
        var out: [[UInt8]] = []
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }
        while i < b.count {
            guard i + 12 <= b.count else { throw TrainingError("\(path): truncated record header at byte \(i)") }
            let n = Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(b[i + $1]) << (8 * UInt64($1)) })
            guard CRC32C.masked(Array(b[i..<(i + 8)])) == u32(i + 8) else { throw TrainingError("\(path): bad length CRC at byte \(i)") }
            guard i + 12 + n + 4 <= b.count else { throw TrainingError("\(path): truncated record at byte \(i)") }
            let data = Array(b[(i + 12)..<(i + 12 + n)])
            guard CRC32C.masked(data) == u32(i + 12 + n) else { throw TrainingError("\(path): bad data CRC at byte \(i)") }
            out.append(data)
            i += 12 + n + 4
        }
        return out
    }
}

/// Protobuf wire format, just what the event files need.
struct Proto {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func tag(_ field: Int, _ wire: UInt64) { rawVarint(UInt64(field) << 3 | wire) }
    mutating func varint(_ field: Int, _ v: UInt64) { tag(field, 0); rawVarint(v) }
    mutating func double(_ field: Int, _ v: Double) {
        tag(field, 1)
        let b = v.bitPattern
        for k in 0..<8 { bytes.append(UInt8((b >> (8 * UInt64(k))) & 0xFF)) }
    }
    mutating func float(_ field: Int, _ v: Float) {
        tag(field, 5)
        let b = v.bitPattern
        for k in 0..<4 { bytes.append(UInt8((b >> (8 * UInt32(k))) & 0xFF)) }
    }
    mutating func bytes(_ field: Int, _ v: [UInt8]) { tag(field, 2); rawVarint(UInt64(v.count)); bytes += v }
    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: Proto) { bytes(field, m.bytes) }
}

/// CRC-32C (Castagnoli), as TFRecord frames use it, with TensorFlow's mask.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func masked(_ data: [UInt8]) -> UInt32 {
        let c = checksum(data)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}
