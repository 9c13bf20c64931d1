import Foundation
import GraphIR

public struct SafetensorsError: Error, CustomStringConvertible {
    public var description: String
    public init(_ path: String?, _ m: String) { description = (path.map { "\($0): " } ?? "") + m }
}

/// The safetensors format (readable by numpy, PyTorch, JAX): an 8-byte little-endian header
/// length, a JSON header of name -> {dtype, shape, data_offsets}, then the raw data. Tensors are
/// float32 in memory; on disk F32, or F16 for the names in `float16` (shipped models: half the size).
public struct SafetensorsFile {
    public var tensors: [String: Tensor]
    public var metadata: [String: String]
    /// Tensors stored as IEEE half precision (read back as float32; their names are filled in on read).
    public var float16: Set<String> = []

    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public static func read(path: String) throws -> SafetensorsFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafetensorsError(path, "cannot read file")
        }
        return try decode(data, path: path)
    }

    /// The `__metadata__` of a file, reading only its header (a checkpoint's configuration
    /// without its tensors).
    public static func readMetadata(path: String) throws -> [String: String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw SafetensorsError(path, "cannot read file") }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: 0)
        guard let lengthBytes = try? handle.read(upToCount: 8), lengthBytes.count == 8 else {
            throw SafetensorsError(path, "truncated: \(size) bytes, no header length")
        }
        var headerLength: UInt64 = 0
        for (i, b) in lengthBytes.enumerated() { headerLength |= UInt64(b) << (8 * UInt64(i)) }
        guard headerLength <= size - 8 else {
            throw SafetensorsError(path, "truncated or corrupt: header length \(headerLength) exceeds the \(size - 8) bytes left")
        }
        let header = (try? handle.read(upToCount: Int(headerLength))) ?? Data()
        guard header.count == Int(headerLength), let json = try? JSONSerialization.jsonObject(with: header),
              let object = json as? [String: Any] else {
            throw SafetensorsError(path, "corrupt: header is not a JSON object")
        }
        guard let m = object["__metadata__"] else { return [:] }
        guard let entries = m as? [String: Any] else { throw SafetensorsError(path, "corrupt: __metadata__ is not an object") }
        var out: [String: String] = [:]
        for (k, v) in entries {
            guard let s = v as? String else { throw SafetensorsError(path, "corrupt: metadata '\(k)' is not a string") }
            out[k] = s
        }
        return out
    }

    public static func decode(_ data: Data, path: String? = nil) throws -> SafetensorsFile {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw SafetensorsError(path, "truncated: \(bytes.count) bytes, no header length") }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw SafetensorsError(path, "truncated or corrupt: header length \(headerLength) exceeds the \(bytes.count - 8) bytes left")
        }
        let dataStart = 8 + Int(headerLength)
        let headerBytes = Data(bytes[8..<dataStart])
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let header = json as? [String: Any] else {
            throw SafetensorsError(path, "corrupt: header is not a JSON object")
        }
        var file = SafetensorsFile()
        let dataCount = bytes.count - dataStart
        for (name, entry) in header {
            if name == "__metadata__" {
                guard let m = entry as? [String: Any] else { throw SafetensorsError(path, "corrupt: __metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw SafetensorsError(path, "corrupt: metadata '\(k)' is not a string") }
                    file.metadata[k] = s
                }
                continue
            }
            guard let e = entry as? [String: Any], let dtype = e["dtype"] as? String,
                  let shapeAny = e["shape"] as? [Any], let offsAny = e["data_offsets"] as? [Any], offsAny.count == 2 else {
                throw SafetensorsError(path, "corrupt: entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard dtype == "F32" || dtype == "F16" else { throw SafetensorsError(path, "tensor '\(name)' has dtype \(dtype); only F32 and F16 are supported") }
            let width = dtype == "F16" ? 2 : 4
            var shape: [Int] = []
            var count = 1
            for d in shapeAny {
                guard let n = (d as? NSNumber)?.intValue, n >= 0 else { throw SafetensorsError(path, "corrupt: bad shape for '\(name)'") }
                let (p, o) = count.multipliedReportingOverflow(by: n)
                if o { throw SafetensorsError(path, "corrupt: shape of '\(name)' overflows") }
                count = p
                shape.append(n)
            }
            guard let begin = (offsAny[0] as? NSNumber)?.intValue, let end = (offsAny[1] as? NSNumber)?.intValue,
                  begin >= 0, end >= begin else {
                throw SafetensorsError(path, "corrupt: bad data_offsets for '\(name)'")
            }
            guard end <= dataCount else {
                throw SafetensorsError(path, "truncated: '\(name)' ends at byte \(end) of a \(dataCount)-byte data section")
            }
            guard end - begin == count * width else {
                throw SafetensorsError(path, "corrupt: '\(name)' has \(end - begin) bytes for shape \(Shape.describe(shape)) (\(count * width) expected)")
            }
            var scalars = [Float](repeating: 0, count: count)
            if width == 4 {
                scalars.withUnsafeMutableBytes { dst in
                    bytes.withUnsafeBytes { src in
                        dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(dataStart + begin)..<(dataStart + end)]))
                    }
                }
            } else {
                let o = dataStart + begin
                for i in 0..<count {
                    scalars[i] = Float(Float16(bitPattern: UInt16(bytes[o + 2 * i]) | UInt16(bytes[o + 2 * i + 1]) << 8))
                }
                file.float16.insert(name)
            }
            file.tensors[name] = Tensor(shape: shape, scalars: scalars)
        }
        return file
    }

    public func encode() -> Data {
        let names = tensors.keys.sorted()
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(m)}")
        }
        var offset = 0
        for name in names {
            let t = tensors[name]!
            let half = float16.contains(name)
            let size = t.count * (half ? 2 : 4)
            parts.append("\(jsonString(name)):{\"dtype\":\"\(half ? "F16" : "F32")\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while (headerBytes.count + 8) % 8 != 0 { headerBytes.append(0x20) }
        var out = Data()
        var len = UInt64(headerBytes.count)
        for _ in 0..<8 { out.append(UInt8(len & 0xFF)); len >>= 8 }
        out.append(contentsOf: headerBytes)
        for name in names {
            if float16.contains(name) {
                let halves = tensors[name]!.scalars.map { Float16($0).bitPattern }
                halves.withUnsafeBytes { out.append(contentsOf: $0) }  // little-endian, as the format says
            } else {
                tensors[name]!.scalars.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    /// Writes to a temporary file beside `path`, then renames it over `path`: a crash never
    /// leaves a half-written file. With `sync`, the data and then the folder are flushed to disk
    /// (fsync) so that the file survives a power cut too, not only a killed process.
    public func write(path: String, sync: Bool = false) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            let data = encode()
            guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
                throw SafetensorsError(path, "cannot create \(tmp.path)")
            }
            let handle = try FileHandle(forWritingTo: tmp)
            do {
                try handle.write(contentsOf: data)
                if sync { try handle.synchronize() }
                try handle.close()
            } catch {
                try? handle.close()
                throw error
            }
            // rename(2) replaces the target atomically.
            if rename(tmp.path, path) != 0 {
                throw SafetensorsError(path, "cannot rename temporary file: \(String(cString: strerror(errno)))")
            }
            if sync {
                let fd = open(dir.path, O_RDONLY)
                if fd >= 0 { fsync(fd); close(fd) }
            }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw SafetensorsError(path, "cannot write: \(error)")
        }
    }
}

private func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
