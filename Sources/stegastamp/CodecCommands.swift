import ArgumentParser
import Foundation
import GraphRuntime
import StegaStamp

/// Image files of a directory (by extension), sorted; or the path itself when it is a file.
func imagePaths(_ path: String) throws -> (files: [String], isDirectory: Bool) {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("\(path): no such file or directory") }
    if !isDir.boolValue { return ([path], false) }
    let names = try FileManager.default.contentsOfDirectory(atPath: path).filter {
        ["png", "jpg", "jpeg"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased())
    }.sorted()
    if names.isEmpty { throw CLIError("\(path): no .png, .jpg or .jpeg files") }
    return (names.map { URL(fileURLWithPath: path).appendingPathComponent($0).path }, true)
}

func loadModel(_ path: String, backend: Backend) throws -> WatermarkModel {
    do {
        let m = try WatermarkModel(path: path)
        m.backend = backend
        return m
    } catch {
        throw CLIError("\(error)")
    }
}

/// Images are processed in batches of at most this many (one compiled executable per batch size).
let codecBatch = 8

struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode", abstract: "Hide a secret (at most 7 bytes of text) in a photo or a directory of photos.",
        discussion: "The output keeps each input's resolution; --out is a file for one image, a directory for a directory.")
    @Option(help: "Model checkpoint (from `stegastamp train-small --out`).") var model: String
    @Option(help: "Input image (PNG or JPEG) or directory.") var image: String
    @Option(help: "The secret text.") var secret: String
    @Option(help: "Output image (.png, .jpg) or directory.") var out: String
    @Option(help: "Also write the residual, shifted to mid-grey and magnified x10 (file or directory).") var residual: String?
    @Option(help: "Residual strength: above 1 is more robust and more visible.") var strength: Float = 1
    @Option(help: "JPEG quality for .jpg outputs.") var jpegQuality = 95
    @Option(help: "interpreter or cpu.") var backend: Backend = .cpu

    func run() throws {
        let bits: [UInt8]
        do { bits = try SecretCodec.standard.encode(secret) } catch { throw CLIError("\(error)") }
        let m = try loadModel(model, backend: backend)
        guard m.config.bits == SecretCodec.standard.totalBits else {
            throw CLIError("\(model): the model hides \(m.config.bits) bits; text secrets need \(SecretCodec.standard.totalBits)")
        }
        guard strength > 0, strength.isFinite else { throw CLIError("--strength must be positive") }
        let (files, isDir) = try imagePaths(image)
        if isDir {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            if let residual { try FileManager.default.createDirectory(atPath: residual, withIntermediateDirectories: true) }
        }
        for start in stride(from: 0, to: files.count, by: codecBatch) {
            let chunk = Array(files[start..<min(start + codecBatch, files.count)])
            let images = try chunk.map { p -> RGBImage in
                do { return try ImageIO.read(path: p) } catch { throw CLIError("\(error)") }
            }
            let encoded = try m.encode(images, bits: bits, strength: strength)
            for (p, e) in zip(chunk, encoded) {
                let name = URL(fileURLWithPath: p).deletingPathExtension().lastPathComponent
                let target = isDir ? URL(fileURLWithPath: out).appendingPathComponent(name + ".png").path : out
                do { try ImageIO.write(e.image, path: target, jpegQuality: jpegQuality) } catch { throw CLIError("\(error)") }
                if let residual {
                    let vis = RGBImage(width: e.residual.width, height: e.residual.height, pixels: e.residual.pixels.map { $0 * 10 + 0.5 }).clamped()
                    let rpath = isDir ? URL(fileURLWithPath: residual).appendingPathComponent(name + ".png").path : residual
                    do { try ImageIO.write(vis, path: rpath) } catch { throw CLIError("\(error)") }
                }
                let psnr = PSNR.between(e.image, images[chunk.firstIndex(of: p)!])
                print(String(format: "%@ -> %@ (%dx%d, PSNR %.1f dB)", p, target, e.image.width, e.image.height, psnr))
            }
        }
    }
}

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode", abstract: "Read the secret from a photo or each photo of a directory.",
        discussion: "Exits non-zero when no message could be recovered (from any image).")
    @Option(help: "Model checkpoint.") var model: String
    @Option(help: "Image (PNG or JPEG) or directory.") var image: String
    @Option(help: "interpreter or cpu.") var backend: Backend = .cpu

    func run() throws {
        let m = try loadModel(model, backend: backend)
        guard m.config.bits == SecretCodec.standard.totalBits else {
            throw CLIError("\(model): the model reads \(m.config.bits) bits; text secrets need \(SecretCodec.standard.totalBits)")
        }
        let (files, isDir) = try imagePaths(image)
        var failures = 0
        for start in stride(from: 0, to: files.count, by: codecBatch) {
            let chunk = Array(files[start..<min(start + codecBatch, files.count)])
            let images = try chunk.map { p -> RGBImage in
                do { return try ImageIO.read(path: p) } catch { throw CLIError("\(error)") }
            }
            for (p, bits) in zip(chunk, try m.decodeBits(images)) {
                let prefix = isDir ? "\(p): " : ""
                do {
                    let d = try SecretCodec.standard.decode(bits)
                    print("\(prefix)\(d.text)\t(corrected \(d.corrected) bit\(d.corrected == 1 ? "" : "s"))")
                } catch {
                    failures += 1
                    let reason = (error as? SecretCodec.CodecError) == .uncorrectable ? "\(error)" : "no message could be recovered: \(error)"
                    print(prefix + reason)
                }
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// Peak signal-to-noise ratio of two images in [0, 1].
enum PSNR {
    static func between(_ a: RGBImage, _ b: RGBImage) -> Double {
        let mse = zip(a.pixels, b.pixels).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.pixels.count)
        return mse == 0 ? .infinity : 10 * log10(1 / mse)
    }
}
