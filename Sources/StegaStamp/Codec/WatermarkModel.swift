import Foundation
import GraphIR
import GraphRuntime

/// A trained model that hides and reads secrets in photos of any size: the encoder runs at the
/// model's size, its residual is upsampled to the photo's resolution and added (scaled by a
/// strength), so the output keeps the input's size; decoding resizes to the model's size.
public final class WatermarkModel {
    /// The networks a model file holds: the small demo model, or the StegaStamp encoder/decoder.
    public let networks: WatermarkNetworks
    /// Size and bits (for both kinds).
    public let height, width, bits: Int
    public let path: String
    var parameters: ParameterStore
    var encoders: [Int: Executable] = [:]
    var decoders: [Int: Executable] = [:]
    var refiners: [String: Executable] = [:]
    public var backend: Backend = .cpu
    /// GraphJIT for the elementwise kernels: off by default here, since LLVM takes about 0.5 s per
    /// network, more than a command spends running it at the model's size (the Swift loops cost
    /// a few ms). Training and benchmarks keep it on.
    public var jit = false
    /// GraphJIT for the refinement step: on, since `encode` runs the step `refine` times (30 by
    /// default) and its fused loops otherwise fall to the reference kernels (measured on the Intel
    /// machine, 2026-12-06: 1.7 s of a 7.4 s encode).
    public var refinementJIT = true
    /// Where the JIT keeps machine code between processes (`CompileOptions.compileCache`); nil:
    /// compiled every time. The CLI sets ~/.cache/stegastamp/jit.
    public var compileCache: String?
    /// Executables are kept per batch size (a convenience cache): every miss compiles, is counted
    /// here and is reported through `log` (standard error by default) with its reason.
    public private(set) var compilations = 0
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
    /// When set, every network run adds its kernels' wall time here (`encode --profile`).
    public var profile: Profile?

    /// The format of a model exported for use (encoder and decoder weights only, float16).
    public static let format = "stegastamp-model"

    /// Writes the encoder and decoder of a training checkpoint as a model file: float16 weights,
    /// the training configuration, the default strength, and `summary` (measured figures) in the
    /// metadata. Atomic, like every file this tool writes.
    /// `checkpoint` may also be a model file exported before: its weights are kept as they are
    /// and its defaults and summary replaced (`refine`: the refinement steps `encode` takes by
    /// default, see `Refinement`).
    public static func export(checkpoint: String, to path: String, strength: Float, refine: Int = 0, summary: [String: String] = [:]) throws {
        guard strength > 0, strength.isFinite else { throw ModelError("strength must be positive, got \(strength)") }
        guard refine >= 0 else { throw ModelError("refine must be 0 or more, got \(refine)") }
        let defaults = ["strength": "\(strength)", "refine": "\(refine)"]
        let source = try SafetensorsFile.read(path: checkpoint)
        if source.metadata["format"] == format {
            _ = try WatermarkModel(path: checkpoint)
            var file = source
            file.metadata = source.metadata.filter { !$0.key.hasPrefix("summary.") }.merging(summary.merging(defaults) { _, new in new }) { _, new in new }
            try file.write(path: path, sync: true)
            return
        }
        let run = try RunCheckpoint.read(path: checkpoint)
        var file = SafetensorsFile(metadata: summary.merging([
            "format": format, "version": "1", "config": run.config.json(), "step": "\(run.step)",
            "bits": "\(run.config.bits)", "size": "\(run.config.size)",
        ].merging(defaults) { _, new in new }) { _, new in new })
        let networks = run.config.networks
        for g in [try networks.encoder(batch: 1), try networks.decoder(batch: 1)] {
            for id in g.parameters {
                let name = g[id].name
                guard let t = run.parameters[name] else { throw ModelError("\(checkpoint): checkpoint lacks parameter '\(name)'") }
                if let bad = t.scalars.first(where: { !Float16($0).isFinite }) {
                    throw ModelError("\(checkpoint): parameter '\(name)' holds \(bad), which float16 cannot store")
                }
                file.tensors["param." + name] = t
                file.float16.insert("param." + name)
            }
        }
        try file.write(path: path, sync: true)
    }

    /// Metadata a checkpoint carries so it can be rebuilt.
    public static func metadata(_ c: SmallModelConfig) -> [String: String] {
        ["model": "small_stegastamp", "height": "\(c.height)", "width": "\(c.width)", "bits": "\(c.bits)",
         "channels": "\(c.channels)", "secret_upsample": "\(c.secretUpsample)", "noise": "\(c.noise)", "seed": "\(c.seed)"]
    }

    /// The strength `encode` uses when none is given: 1 for a training checkpoint, the shipped
    /// model's own setting (metadata `strength`) for an exported model.
    public let defaultStrength: Float
    /// The refinement steps `encode` takes when none are given (metadata `refine`; 0 without).
    public let defaultRefinement: Int
    /// The metadata of the file (a shipped model's training summary, among others).
    public let metadata: [String: String]

    /// Reads a model exported by `stegastamp export` (format `stegastamp-model`), an exported small
    /// model (`model = small_stegastamp`) or a `stegastamp train` run checkpoint of either
    /// architecture (its encoder and decoder; optimizer slots are ignored).
    public init(path: String) throws {
        let file = try SafetensorsFile.read(path: path)
        let m = file.metadata
        var store = ParameterStore()
        for (k, v) in file.tensors where k.hasPrefix("param.") { store[String(k.dropFirst(6))] = v }
        metadata = m
        if let s = m["strength"] {
            guard let v = Float(s), v > 0, v.isFinite else { throw ModelError("\(path): metadata strength '\(s)' is not a positive number") }
            defaultStrength = v
        } else {
            defaultStrength = 1
        }
        if let s = m["refine"] {
            guard let v = Int(s), v >= 0 else { throw ModelError("\(path): metadata refine '\(s)' is not a count of steps") }
            defaultRefinement = v
        } else {
            defaultRefinement = 0
        }
        if m["format"] == RunCheckpoint.format || m["format"] == Self.format {
            guard let json = m["config"] else { throw ModelError("\(path): training checkpoint without its configuration") }
            let config = try TrainingConfig.fromJSON(Data(json.utf8), path: path)
            networks = config.networks
        } else {
            guard m["model"] == "small_stegastamp" else {
                throw ModelError("\(path): not a model of this tool (metadata model = \(m["model"] ?? "none"); train one with `stegastamp train`)")
            }
            func int(_ k: String) throws -> Int {
                guard let s = m[k], let v = Int(s) else { throw ModelError("\(path): checkpoint metadata lacks '\(k)'") }
                return v
            }
            var c = SmallModelConfig()
            (c.height, c.width, c.bits, c.channels, c.secretUpsample) = (try int("height"), try int("width"), try int("bits"), try int("channels"), try int("secret_upsample"))
            c.batch = 1
            try c.validate()
            networks = .small(c)
        }
        (height, width, bits) = (networks.height, networks.width, networks.bits)
        self.path = path
        parameters = store
        // Check every network parameter is there with the right shape now, not at the first call.
        for g in [try networks.encoder(batch: 1), try networks.decoder(batch: 1)] {
            for id in g.parameters {
                let v = g[id]
                guard let t = store[v.name] else { throw ModelError("\(path): checkpoint lacks parameter '\(v.name)'") }
                guard t.shape == v.shape else {
                    throw ModelError("\(path): parameter '\(v.name)' is f32\(Shape.describe(t.shape)), the model needs f32\(Shape.describe(v.shape))")
                }
            }
        }
    }

    /// Compiles `g`, counting and logging the compilation (`what` names it in the log).
    func compileLogged(_ g: Graph, _ what: String, jit: Bool? = nil) throws -> Executable {
        compilations += 1
        let t0 = Date()
        let options = CompileOptions(backend: backend, jit: jit ?? self.jit, compileCache: backend == .cpu ? compileCache : nil)
        let e = try Compiler.compile(g, for: Signature.of(g), options: options)
        log(String(format: "compiled %@ (%dx%d) in %.2f s; compilation %d", what, height, width, Date().timeIntervalSince(t0), compilations))
        return e
    }

    func encoder(batch: Int) throws -> Executable {
        if let e = encoders[batch] { return e }
        let e = try compileLogged(try networks.encoder(batch: batch), "the encoder for batch \(batch)")
        encoders[batch] = e
        return e
    }

    func decoder(batch: Int) throws -> Executable {
        if let d = decoders[batch] { return d }
        let d = try compileLogged(try networks.decoder(batch: batch), "the decoder for batch \(batch)")
        decoders[batch] = d
        return d
    }

    /// Each photo's region at the model's size, as one batch.
    func batchTensor(_ images: [RGBImage]) -> Tensor {
        Tensor(shape: [images.count, height, width, 3],
               scalars: images.flatMap { Embedding.modelInput($0, width: width, height: height).pixels })
    }

    /// What the encoder made of a photo, before it is added at some strength (`Embedding.apply`).
    public struct Residual {
        /// At the model's size, each channel's mean removed.
        public var pixels: RGBImage
    }

    /// The residual that hides `bits` (0/1) in each photo. Adding it at several strengths (the
    /// automatic strength's search) costs no further network run.
    public func residuals(_ images: [RGBImage], bits secretBits: [UInt8]) throws -> [Residual] {
        guard secretBits.count == bits else { throw ModelError("the model hides \(bits) bits, got \(secretBits.count)") }
        if images.isEmpty { return [] }
        let exe = try encoder(batch: images.count)
        let secret = Tensor(shape: [images.count, bits], scalars: (0..<images.count).flatMap { _ in secretBits.map(Float.init) })
        let covers = batchTensor(images)
        var store = parameters
        let raw = try exe.run(["secret": secret, "image": covers], parameters: &store, profile: profile)["residual"]!
        return (0..<images.count).map { Residual(pixels: Embedding.residual(raw: RGBImage(raw, index: $0), cover: RGBImage(covers, index: $0))) }
    }

    /// Hides `bits` in each photo, at the photo's own size; `strength` nil is the model's default.
    /// `refine` nil is the model's default number of refinement steps (0: none).
    public func encode(_ images: [RGBImage], bits secretBits: [UInt8], strength: Float? = nil, refine: Int? = nil) throws -> [RGBImage] {
        let s = strength ?? defaultStrength
        let steps = refine ?? defaultRefinement
        return try zip(images, try residuals(images, bits: secretBits)).map { image, r in
            let used = steps > 0 ? try self.refine(r, image: image, bits: secretBits, strength: s, Refinement(steps: steps)).residual : r
            return Embedding.apply(used.pixels, to: image, strength: s)
        }
    }

    /// The decoder's logits for each photo (bit = logit > 0).
    public func decodeLogits(_ images: [RGBImage]) throws -> [[Float]] {
        try logits(batchTensor(images), count: images.count)
    }

    func logits(_ inputs: Tensor, count: Int) throws -> [[Float]] {
        if count == 0 { return [] }
        let exe = try decoder(batch: count)
        var store = parameters
        let logits = try exe.run(["image": inputs], parameters: &store, profile: profile)["logits"]!
        return (0..<count).map { i in Array(logits.scalars[(i * bits)..<((i + 1) * bits)]) }
    }

    /// Logits to bits (bit = logit > 0).
    static func bits(_ logits: [Float]) -> [UInt8] { logits.map { $0 > 0 ? 1 : 0 } }

    /// What `read` found in a photo: the bits of the view it settled on, and the message when
    /// BCH corrected them (`soft`: the distance of a soft decision's codeword, nil when the hard
    /// bits corrected).
    public struct Reading: Sendable {
        public var bits: [UInt8]
        public var data: [UInt8]?
        public var corrected: Int
        public var view: DecoderView
        public var soft: Float? = nil
    }

    /// Reads the message of a photo, as `decode` does: the plain view first, then (100-bit models,
    /// when BCH cannot correct the plain view) the other `views` in one batch, the first that
    /// corrects winning; when no view's hard bits correct, the `soft` decision over every view,
    /// the closest codeword winning. Without a message, the plain view's bits.
    public func read(_ image: RGBImage, views: [DecoderView] = DecoderView.search, soft: SoftDecision? = .standard) throws -> Reading {
        let plain = Embedding.modelInput(image, width: width, height: height)
        let firstLogits = try logits(Tensor(shape: [1, height, width, 3], scalars: plain.pixels), count: 1)[0]
        let first = Self.bits(firstLogits)
        let codec = SecretCodec.standard
        guard bits == codec.totalBits else { return Reading(bits: first, data: nil, corrected: 0, view: .plain) }
        // A soft decision also vets what the hard bits give: their padding must read as 0.
        func believed(_ l: [Float]) -> Bool { soft?.believesHard(l, codec: codec) ?? true }
        if let d = try? codec.decodeData(first), believed(firstLogits) { return Reading(bits: first, data: d.data, corrected: d.corrected, view: .plain) }
        var seen: [(DecoderView, [Float])] = [(.plain, firstLogits)]
        for (view, l) in try viewLogits(plain, aspectOf: image, views: views.filter { $0 != .plain }) {
            let b = Self.bits(l)
            if let d = try? codec.decodeData(b), believed(l) { return Reading(bits: b, data: d.data, corrected: d.corrected, view: view) }
            seen.append((view, l))
        }
        if let soft {
            var best: (DecoderView, [Float], SoftDecision.Candidate)?
            for (view, l) in seen {
                if let c = soft.decode(l, codec: codec), best == nil || c.cost < best!.2.cost { best = (view, l, c) }
            }
            if let (view, l, c) = best { return Reading(bits: Self.bits(l), data: c.data, corrected: c.changed, view: view, soft: c.cost) }
        }
        return Reading(bits: first, data: nil, corrected: 0, view: .plain)
    }

    /// The decoder's logits for each of `views` of a model input `plain` (of the photo `image`), in one batch.
    func viewLogits(_ plain: RGBImage, aspectOf image: RGBImage, views: [DecoderView]) throws -> [(DecoderView, [Float])] {
        if views.isEmpty { return [] }
        let r = Embedding.region(width: image.width, height: image.height)
        let aspect = Double(r.width) / Double(r.height) * Double(height) / Double(width)
        let inputs = views.flatMap { $0.apply(to: plain, aspect: aspect).pixels }
        return Array(zip(views, try logits(Tensor(shape: [views.count, height, width, 3], scalars: inputs), count: views.count)))
    }

    /// The decoder's logits in each of `views` of a photo (the plain one included when listed).
    public func allViewLogits(_ image: RGBImage, views: [DecoderView] = DecoderView.search) throws -> [[Float]] {
        try viewLogits(Embedding.modelInput(image, width: width, height: height), aspectOf: image, views: views).map(\.1)
    }

    /// The bits each photo carries (logit > 0).
    public func decodeBits(_ images: [RGBImage]) throws -> [[UInt8]] {
        try decodeLogits(images).map(Self.bits)
    }
}
