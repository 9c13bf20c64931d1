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
    public var backend: Backend = .cpu
    /// Executables are kept per batch size (a convenience cache): every miss compiles, is counted
    /// here and is reported through `log` (standard error by default) with its reason.
    public private(set) var compilations = 0
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }

    /// Metadata a checkpoint carries so it can be rebuilt.
    public static func metadata(_ c: SmallModelConfig) -> [String: String] {
        ["model": "small_stegastamp", "height": "\(c.height)", "width": "\(c.width)", "bits": "\(c.bits)",
         "channels": "\(c.channels)", "secret_upsample": "\(c.secretUpsample)", "noise": "\(c.noise)", "seed": "\(c.seed)"]
    }

    /// Reads an exported small model (`model = small_stegastamp`) or a `stegastamp train` run
    /// checkpoint of either architecture (its encoder and decoder; optimizer slots are ignored).
    public init(path: String) throws {
        let file = try SafetensorsFile.read(path: path)
        let m = file.metadata
        var store = ParameterStore()
        for (k, v) in file.tensors where k.hasPrefix("param.") { store[String(k.dropFirst(6))] = v }
        if m["format"] == RunCheckpoint.format {
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

    func encoder(batch: Int) throws -> Executable {
        if let e = encoders[batch] { return e }
        let g = try networks.encoder(batch: batch)
        compilations += 1
        log("compiling the encoder: no executable yet for batch \(batch) (\(height)x\(width)); compilation \(compilations)")
        let e = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: backend))
        encoders[batch] = e
        return e
    }

    func decoder(batch: Int) throws -> Executable {
        if let d = decoders[batch] { return d }
        let g = try networks.decoder(batch: batch)
        compilations += 1
        log("compiling the decoder: no executable yet for batch \(batch) (\(height)x\(width)); compilation \(compilations)")
        let d = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: backend))
        decoders[batch] = d
        return d
    }

    func batchTensor(_ images: [RGBImage]) -> Tensor {
        Tensor(shape: [images.count, height, width, 3],
               scalars: images.flatMap { Resize.resize($0, width: width, height: height).pixels })
    }

    public struct Encoded {
        public var image: RGBImage
        /// The residual at the photo's resolution (after the strength factor).
        public var residual: RGBImage
    }

    /// Hides `bits` (bits of 0/1) in each photo, at the photo's own size.
    public func encode(_ images: [RGBImage], bits secretBits: [UInt8], strength: Float = 1) throws -> [Encoded] {
        guard secretBits.count == bits else { throw ModelError("the model hides \(bits) bits, got \(secretBits.count)") }
        if images.isEmpty { return [] }
        let exe = try encoder(batch: images.count)
        let secret = Tensor(shape: [images.count, bits], scalars: (0..<images.count).flatMap { _ in secretBits.map(Float.init) })
        var store = parameters
        let residual = try exe.run(["secret": secret, "image": batchTensor(images)], parameters: &store)["residual"]!
        return images.enumerated().map { i, img in
            let r = Resize.resize(RGBImage(residual, index: i), width: img.width, height: img.height)
            let scaled = RGBImage(width: img.width, height: img.height, pixels: r.pixels.map { $0 * strength })
            let out = RGBImage(width: img.width, height: img.height, pixels: zip(img.pixels, scaled.pixels).map { $0 + $1 }).clamped()
            return Encoded(image: out, residual: scaled)
        }
    }

    /// The bits each photo carries (logit > 0).
    public func decodeBits(_ images: [RGBImage]) throws -> [[UInt8]] {
        if images.isEmpty { return [] }
        let exe = try decoder(batch: images.count)
        var store = parameters
        let logits = try exe.run(["image": batchTensor(images)], parameters: &store)["logits"]!
        return (0..<images.count).map { i in logits.scalars[(i * bits)..<((i + 1) * bits)].map { $0 > 0 ? 1 : 0 } }
    }
}
