import ArgumentParser
import Foundation
import GraphIR
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

/// Reads images, turning I/O errors into command-line errors.
func readImages(_ paths: [String]) throws -> [RGBImage] {
    try paths.map { p in
        do { return try ImageIO.read(path: p) } catch { throw CLIError("\(error)") }
    }
}

/// Images are processed in batches of at most this many (one compiled executable per batch size).
let codecBatch = 8

struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode", abstract: "Hide a secret (at most 7 bytes of text) in a photo or a directory of photos.",
        discussion: "The output keeps each input's resolution; --out is a file for one image, a directory for a directory.")
    @Option(help: "Model checkpoint (a `stegastamp train` checkpoint, or an exported small model).") var model: String
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
        guard m.bits == SecretCodec.standard.totalBits else {
            throw CLIError("\(model): the model hides \(m.bits) bits; text secrets need \(SecretCodec.standard.totalBits)")
        }
        guard strength > 0, strength.isFinite else { throw CLIError("--strength must be positive") }
        let (files, isDir) = try imagePaths(image)
        if isDir {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            if let residual { try FileManager.default.createDirectory(atPath: residual, withIntermediateDirectories: true) }
        }
        for start in stride(from: 0, to: files.count, by: codecBatch) {
            let chunk = Array(files[start..<min(start + codecBatch, files.count)])
            let images = try readImages(chunk)
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
                let psnr = Quality.psnr(e.image, images[chunk.firstIndex(of: p)!])
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
        guard m.bits == SecretCodec.standard.totalBits else {
            throw CLIError("\(model): the model reads \(m.bits) bits; text secrets need \(SecretCodec.standard.totalBits)")
        }
        let (files, isDir) = try imagePaths(image)
        var failures = 0
        for start in stride(from: 0, to: files.count, by: codecBatch) {
            let chunk = Array(files[start..<min(start + codecBatch, files.count)])
            let images = try readImages(chunk)
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


struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Encode every photo of a directory, distort it with a fixed suite, decode, and report.",
        discussion: """
            Prints PSNR and SSIM of the encoded images, then bit accuracy and the rate of messages decoded \\
            exactly after each distortion (secrets: 7 uniformly random bytes per photo): none, real JPEG at quality 90/70/50, Gaussian blur, Gaussian noise, \\
            brightness/contrast up and down, downscale then upscale, a small perspective warp. Writes the \\
            same as JSON to --out.
            """)
    @Option(help: "Model checkpoint.") var model: String
    @Option(help: "Directory of photos (PNG or JPEG).") var images: String
    @Option(help: "Residual strength.") var strength: Float = 1
    @Option(help: "JSON results file.") var out = "eval.json"
    @Option(help: "Use at most this many photos.") var limit: Int?
    @Option(help: "interpreter or cpu.") var backend: Backend = .cpu

    /// A deterministic secret for photo i: 7 uniformly random bytes (text secrets would bias the
    /// bits: ASCII letters share their high bits).
    static func secret(_ i: Int) -> [UInt8] {
        (0..<SecretCodec.standard.dataBytes).map { k in UInt8(truncatingIfNeeded: CounterRandom.bits(seed: 77, key: UInt64(i), counter: UInt64(k))) }
    }

    func run() throws {
        let m = try loadModel(model, backend: backend)
        guard m.bits == SecretCodec.standard.totalBits else { throw CLIError("\(model): the model carries \(m.bits) bits, not 100") }
        var (files, isDir) = try imagePaths(images)
        guard isDir else { throw CLIError("--images must be a directory") }
        if let limit { files = Array(files.prefix(max(limit, 1))) }
        let distortions = Distortion.allCases
        var bitCorrect = [Int](repeating: 0, count: distortions.count), decodedOK = [Int](repeating: 0, count: distortions.count)
        var psnrs: [Double] = [], ssims: [Double] = []
        var perImage: [String] = []
        let t0 = Date()
        for start in stride(from: 0, to: files.count, by: codecBatch) {
            let chunk = Array(files[start..<min(start + codecBatch, files.count)])
            let originals = try readImages(chunk)
            var encoded: [RGBImage] = []
            var secrets: [[UInt8]] = []
            for (k, img) in originals.enumerated() {
                let bits = SecretCodec.standard.encode(data: Self.secret(start + k))
                secrets.append(bits)
                encoded.append(try m.encode([img], bits: bits, strength: strength)[0].image)
            }
            for (k, (a, b)) in zip(originals, encoded).enumerated() {
                psnrs.append(Quality.psnr(b, a))
                ssims.append(try Quality.ssim(b, a))
                var results: [String] = []
                for (d, distortion) in distortions.enumerated() {
                    let damaged = try distortion.apply(b, seed: UInt64(start + k))
                    let bits = try m.decodeBits([damaged])[0]
                    let correct = zip(bits, secrets[k]).filter { $0 == $1 }.count
                    bitCorrect[d] += correct
                    let ok = (try? SecretCodec.standard.decodeData(bits))?.data == Self.secret(start + k)
                    if ok { decodedOK[d] += 1 }
                    results.append("{\"distortion\": \"\(distortion.name)\", \"bits_correct\": \(correct), \"decoded\": \(ok)}")
                }
                let name = URL(fileURLWithPath: chunk[k]).lastPathComponent.replacingOccurrences(of: "\"", with: "\\\"")
                perImage.append("{\"image\": \"\(name)\", \"width\": \(a.width), \"height\": \(a.height), \"psnr\": \(psnrs.last!), \"ssim\": \(ssims.last!), \"results\": [\(results.joined(separator: ", "))]}")
                FileHandle.standardError.write("evaluated \(psnrs.count)/\(files.count): \(name)\n".data(using: .utf8)!)
            }
        }
        let n = files.count
        let meanPSNR = psnrs.reduce(0, +) / Double(n), meanSSIM = ssims.reduce(0, +) / Double(n)
        print(String(format: "%d photos, strength %.2f: PSNR %.2f dB, SSIM %.4f (mean), %.1f s", n, strength, meanPSNR, meanSSIM, Date().timeIntervalSince(t0)))
        print("distortion                  bit accuracy   decoded")
        var rows: [String] = []
        for (d, distortion) in distortions.enumerated() {
            let acc = Double(bitCorrect[d]) / Double(n * 100), rate = Double(decodedOK[d]) / Double(n)
            print(distortion.name.padding(toLength: 27, withPad: " ", startingAt: 0) + String(format: " %12.4f %6d/%d", acc, decodedOK[d], n))
            rows.append("{\"distortion\": \"\(distortion.name)\", \"bit_accuracy\": \(acc), \"decoded_rate\": \(rate)}")
        }
        let json = """
            {"model": "\(model)", "images": \(n), "strength": \(strength), "psnr_mean": \(meanPSNR), "ssim_mean": \(meanSSIM),
             "summary": [\(rows.joined(separator: ",\n  "))],
             "per_image": [\(perImage.joined(separator: ",\n  "))]}

            """
        do { try json.write(toFile: out, atomically: true, encoding: .utf8) } catch { throw CLIError("\(out): cannot write: \(error.localizedDescription)") }
        print("wrote \(out)")
    }
}
