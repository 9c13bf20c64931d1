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

/// The model a codec command uses: `--model`, else the shipped one.
func loadModel(_ path: String?, backend: Backend) throws -> WatermarkModel {
    do {
        let m = try WatermarkModel(path: try path ?? shippedModelPath())
        m.backend = backend
        m.compileCache = CompileFlags.defaultCompileCache
        return m
    } catch {
        throw CLIError("\(error)")
    }
}

/// The shipped model, or the one `$STEGASTAMP_MODEL` names.
func shippedModelPath() throws -> String {
    try ShippedModel.path(override: ProcessInfo.processInfo.environment[ShippedModel.environmentVariable])
}

/// `--strength`: a positive number, or `auto`.
enum StrengthSetting: ExpressibleByArgument {
    case fixed(Float), auto
    init?(argument: String) {
        if argument == "auto" { self = .auto; return }
        guard let v = Float(argument), v > 0, v.isFinite else { return nil }
        self = .fixed(v)
    }

    /// How the setting reads in tables and messages.
    var label: String {
        switch self {
        case .fixed(let v): return String(format: "%.3g", v)
        case .auto: return "auto"
        }
    }
}

/// The options of `--strength auto` (encode and eval).
struct AutoStrengthOptions: ParsableArguments {
    @Option(help: "With --strength auto: the damages to survive, chains of eval's damages joined by + and separated by commas, e.g. downscale+jpeg50,perspective (keys: \(Distortion.allCases.map(\.rawValue).joined(separator: ", "))).")
    var survive = "downscale+jpeg50"
    @Option(help: "With --strength auto: the factor on the lowest strength that survived (a margin for damage a little worse than the search's).")
    var autoMargin: Float = 1.15
    @Option(help: "With --strength auto: seeds each random damage must pass.") var autoSeeds = 2
    @Option(help: "With --strength auto and refinement: the strength the residual is refined at before the search scales it (default: the model's).")
    var refineAt: Float?

    func search() throws -> StrengthSearch {
        if let refineAt, !(refineAt > 0 && refineAt.isFinite) { throw CLIError("--refine-at must be positive, got \(refineAt)") }
        guard autoMargin >= 1, autoMargin.isFinite else { throw CLIError("--auto-margin must be 1 or more, got \(autoMargin)") }
        var s: StrengthSearch
        do { s = StrengthSearch(survive: try Distortion.chains(survive)) } catch { throw CLIError("--survive: \(error)") }
        s.margin = autoMargin
        guard (1...16).contains(autoSeeds) else { throw CLIError("--auto-seeds must be in 1...16, got \(autoSeeds)") }
        s.seeds = StrengthSearch.seeds(autoSeeds)
        return s
    }
}

/// Reads the next photo on a background thread while the current one is processed, and writes
/// each result on another: JPEG and PNG coding are single-threaded, so a directory of photos keeps
/// both cores busy.
final class PhotoPipeline: @unchecked Sendable {
    let files: [String]
    private let readQueue = DispatchQueue(label: "stegastamp.read"), writeQueue = DispatchQueue(label: "stegastamp.write")
    private var pending: (index: Int, box: ResultBox, group: DispatchGroup)?
    private var writeError: Error?
    private let lock = NSLock()
    private let writes = DispatchGroup()

    init(_ files: [String]) { self.files = files }

    private func prefetch(_ i: Int) {
        guard i < files.count else { pending = nil; return }
        let group = DispatchGroup()
        let box = ResultBox()
        group.enter()
        readQueue.async { [files] in
            box.result = Result { do { return try ImageIO.read(path: files[i]) } catch { throw CLIError("\(error)") } }
            group.leave()
        }
        pending = (i, box, group)
    }
    fileprivate final class ResultBox: @unchecked Sendable { var result: Result<RGBImage, Error> = .failure(CLIError("not read")) }

    /// A photo being read on the read thread.
    struct Pending {
        fileprivate let box: ResultBox, group: DispatchGroup
        /// Waits for the photo; the image is the caller's alone (no other reference), so changing
        /// it in place copies nothing. Once only.
        func take() throws -> RGBImage {
            group.wait()
            let img = try box.result.get()
            box.result = .failure(CLIError("taken"))
            return img
        }
    }

    /// Calls body(index, photo) for each file in order, the next photo's read queued behind the
    /// current one's; the body may work on other things (a reduced decode) before it takes it.
    func forEach(_ body: (Int, Pending) throws -> Void) throws {
        prefetch(0)
        while let p = pending {
            prefetch(p.index + 1)  // the read queue is serial: it starts once this photo is read
            try body(p.index, Pending(box: p.box, group: p.group))
            p.group.wait()
            p.box.result = .failure(CLIError("taken"))
            try checkWrites()
        }
        writes.wait()
        try checkWrites()
    }

    /// Writes in the background (atomically, as ImageIO does); errors surface at the next photo.
    func write(_ img: RGBImage, path: String, jpegQuality: Int) {
        writes.enter()
        writeQueue.async { [self] in
            do { try ImageIO.write(img, path: path, jpegQuality: jpegQuality) } catch {
                lock.lock(); writeError = writeError ?? CLIError("\(error)"); lock.unlock()
            }
            writes.leave()
        }
    }

    private func checkWrites() throws {
        lock.lock(); defer { lock.unlock() }
        if let e = writeError { throw e }
    }
}

struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode", abstract: "Hide a secret (at most 7 bytes of text) in a photo or a directory of photos.",
        discussion: """
            The output keeps each input's resolution; --out is a file for one image, a directory for a directory. \
            Without --model the shipped model (Models/) is used. --strength auto finds, per photo, the lowest strength \
            at which the message still decodes after each --survive damage (chains of eval's damages joined by +, separated \
            by commas; each random damage with --auto-seeds seeds; then --auto-margin times that strength).
            """)
    @Option(help: "Model (exported with `stegastamp export`, or a `stegastamp train` checkpoint); default: the shipped model.") var model: String?
    @Option(help: "Input image (PNG or JPEG) or directory.") var image: String
    @Option(help: "The secret text.") var secret: String
    @Option(help: "Output image (.png, .jpg) or directory.") var out: String
    @Option(help: "Also write the residual, shifted to mid-grey and magnified x10 (file or directory).") var residual: String?
    @Option(help: "Residual strength, or 'auto'; higher is more robust and more visible (default: the model's).") var strength: StrengthSetting?
    @OptionGroup var auto: AutoStrengthOptions
    @Option(help: "JPEG quality for .jpg outputs.") var jpegQuality = 95
    @Option(help: "Refine each residual with this many gradient steps through the decoder (0: off; default: the model's): the same PSNR, decoded more robustly; with --strength auto it refines at --refine-at, else the model's strength.") var refine: Int?
    @Option(help: "interpreter or cpu.") var backend: Backend = .cpu
    @Flag(help: "At the end, the networks' time by op kind and kernel, summed over every photo (standard error).") var profile = false

    func run() throws {
        if let refine, refine < 0 { throw CLIError("--refine must be 0 or more, got \(refine)") }
        let bits: [UInt8]
        do { bits = try SecretCodec.standard.encode(secret) } catch { throw CLIError("\(error)") }
        guard (1...100).contains(jpegQuality) else { throw CLIError("--jpeg-quality must be in 1...100, got \(jpegQuality)") }
        let search: StrengthSearch?
        if case .auto = strength {
            search = try auto.search()
        } else {
            search = nil
        }
        let m = try loadModel(model, backend: backend)
        if profile { m.profile = Profile() }
        guard m.bits == SecretCodec.standard.totalBits else {
            throw CLIError("\(m.path): the model hides \(m.bits) bits; text secrets need \(SecretCodec.standard.totalBits)")
        }
        let (files, isDir) = try imagePaths(image)
        if isDir {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            if let residual { try FileManager.default.createDirectory(atPath: residual, withIntermediateDirectories: true) }
        }
        let pipeline = PhotoPipeline(files)
        try pipeline.forEach { i, pending in
            let p = files[i]
            let name = URL(fileURLWithPath: p).deletingPathExtension().lastPathComponent
            let target = isDir ? URL(fileURLWithPath: out).appendingPathComponent(name + ".png").path : out
            let residualPath = residual.map { isDir ? URL(fileURLWithPath: $0).appendingPathComponent(name + ".png").path : $0 }
            let steps = refine ?? m.defaultRefinement
            var at = m.defaultStrength
            switch strength {
            case .fixed(let v): at = v
            case .auto: at = auto.refineAt ?? at
            case nil: break
            }
            func residualFor(_ image: RGBImage, photoSize: (width: Int, height: Int)) throws -> WatermarkModel.Residual {
                let r = try m.residuals([image], bits: bits)[0]
                guard steps > 0 else { return r }
                return try m.refine(r, image: image, photoSize: photoSize, bits: bits, strength: at, Refinement(steps: steps)).residual
            }
            // The residual needs only the photo's model-size view: a large JPEG's comes from a
            // decode at a reduced DCT scale (as `decode` reads), and the encoder and refinement
            // run while the read thread decodes the full photo.
            let r: WatermarkModel.Residual
            var photo: RGBImage
            let reduced: (image: RGBImage, width: Int, height: Int)?
            do { reduced = try ImageIO.readReducedJPEG(path: p, minimumShortSide: 2 * max(m.width, m.height)) } catch { throw CLIError("\(error)") }
            if let quick = reduced {
                r = try residualFor(quick.image, photoSize: (quick.width, quick.height))
                photo = try pending.take()
            } else {
                photo = try pending.take()
                r = try residualFor(photo, photoSize: (photo.width, photo.height))
            }
            let (width, height) = (photo.width, photo.height)
            var original: RGBImage? = nil, used: Float, note: String, psnr: Double
            if let search {
                let found = try search.run(model: m, cover: photo, residual: r, expected: bits)
                original = residualPath == nil ? nil : photo
                (used, psnr) = (found.strength, Quality.psnr(found.image, photo))
                photo = found.image
                note = found.survived ? String(format: ", auto strength %.3f after %d trials", used, found.trials)
                    : String(format: ", auto strength: did not survive %@ at any strength up to %.1f (used %.3g, which survived the most)", auto.survive, search.maximum, used)
            } else {
                if case .fixed(let v) = strength { used = v } else { used = m.defaultStrength }
                // In place: the cover's float copy is kept only when --residual needs it.
                if residualPath != nil { original = photo }
                let sse = Embedding.apply(r.pixels, into: &photo, strength: used)
                psnr = sse == 0 ? .infinity : 10 * log10(Double(photo.pixels.count) / sse)
                note = String(format: ", strength %.3g", used) + (steps > 0 ? ", \(steps) refinement steps" : "")
            }
            pipeline.write(photo, path: target, jpegQuality: jpegQuality)
            if let original, let residualPath {
                let vis = RGBImage(width: width, height: height, pixels: zip(photo.pixels, original.pixels).map { ($0 - $1) * 10 + 0.5 }).clamped()
                pipeline.write(vis, path: residualPath, jpegQuality: 95)
            }
            print(String(format: "%@ -> %@ (%dx%d, PSNR %.1f dB%@)", p, target, width, height, psnr, note))
        }
        if let p = m.profile {
            m.log("time by op kind and kernel (networks only):\n" + p.lines(limit: 30).joined(separator: "\n"))
        }
    }
}

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode", abstract: "Read the secret from a photo or each photo of a directory.",
        discussion: """
            Exits non-zero when no message could be recovered (from any image). Without --model the shipped model is used. \
            When the photo as it is gives no message, the decoder also looks through views of it zoomed out (crops of 2.5 and \
            5 % per border), turned by 2 degrees and moved by 1.5 %; BCH judges, and the view that gave the message is named. When no view's \
            bits correct, a soft decision flips combinations of the 8 least reliable bits and takes the closest codeword \
            if it is close enough to believe (the distance is printed).
            """)
    @Option(help: "Model; default: the shipped model.") var model: String?
    @Option(help: "Image (PNG or JPEG) or directory.") var image: String
    @Option(help: "interpreter or cpu.") var backend: Backend = .cpu
    @Flag(help: "Decode the photo as it is only (no search over cropped, turned and moved views).") var plainView = false
    @Flag(help: "BCH on the hard bits only (no soft decision over the least reliable bits).") var hardDecision = false

    func run() throws {
        let m = try loadModel(model, backend: backend)
        guard m.bits == SecretCodec.standard.totalBits else {
            throw CLIError("\(m.path): the model reads \(m.bits) bits; text secrets need \(SecretCodec.standard.totalBits)")
        }
        let (files, isDir) = try imagePaths(image)
        var failures = 0
        for p in files {
            // The decoder sees the photo at the model's size: a JPEG decodes at a reduced DCT scale
            // that still leaves twice that (then an antialiased resize).
            let img: RGBImage
            do { img = try ImageIO.read(path: p, minimumShortSide: 2 * max(m.width, m.height)).image } catch { throw CLIError("\(error)") }
            let reading = try m.read(img, views: plainView ? [.plain] : DecoderView.search, soft: hardDecision ? nil : .standard)
            let prefix = isDir ? "\(p): " : ""
            do {
                guard let data = reading.data else { throw SecretCodec.CodecError.uncorrectable }
                let d = try SecretCodec.standard.text(data: data, corrected: reading.corrected)
                let view = reading.view == .plain ? "" : "; view: \(reading.view)"
                let soft = reading.soft.map { String(format: "; soft decision, distance %.2f", $0) } ?? ""
                print("\(prefix)\(d.text)\t(corrected \(d.corrected) bit\(d.corrected == 1 ? "" : "s")\(view)\(soft))")
            } catch {
                failures += 1
                let reason = (error as? SecretCodec.CodecError) == .uncorrectable ? "\(error)" : "no message could be recovered: \(error)"
                print(prefix + reason)
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a training checkpoint's encoder and decoder as a model file (float16) for encode/decode/eval.",
        discussion: "What `Models/stegastamp.safetensors` is made with: stegastamp export --checkpoint RUN/checkpoint.safetensors --out Models/stegastamp.safetensors --strength S")
    @Option(help: "A `stegastamp train` checkpoint (RUN/checkpoint.safetensors), or a model file to re-export with new defaults.") var checkpoint: String
    @Option(help: "The model file to write.") var out: String
    @Option(help: "The strength encode uses by default with this model.") var strength: Float = 1
    @Option(help: "The refinement steps encode takes by default with this model (0: none).") var refine = 0
    @Option(help: "A JSON object of figures to store in the metadata (e.g. eval's summary).") var summary: String?

    func run() throws {
        var meta: [String: String] = [:]
        if let summary {
            guard let data = FileManager.default.contents(atPath: summary) else { throw CLIError("\(summary): cannot read") }
            guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw CLIError("\(summary): not a JSON object") }
            for (k, v) in obj { meta["summary." + k] = "\(v)" }
        }
        do { try WatermarkModel.export(checkpoint: checkpoint, to: out, strength: strength, refine: refine, summary: meta) } catch { throw CLIError("\(error)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        print(String(format: "wrote %@ (%.1f MB, float16, default strength %.3g, %d refinement steps)", out, Double(size) / 1e6, strength, refine))
    }
}
