import GraphIR

/// The two networks a message needs, encoder (secret + image -> residual) and decoder (image ->
/// logits), of either architecture, as graphs at any batch. The trainer's evaluation and
/// `WatermarkModel` build them here, with the training step's parameter names.
public enum WatermarkNetworks: Sendable {
    case small(SmallModelConfig)
    case stegastamp(StegaStampConfig)

    public var height: Int { switch self { case .small(let c): c.height; case .stegastamp(let c): c.height } }
    public var width: Int { switch self { case .small(let c): c.width; case .stegastamp(let c): c.width } }
    public var bits: Int { switch self { case .small(let c): c.bits; case .stegastamp(let c): c.bits } }

    public func encoder(batch: Int) throws -> Graph {
        let b = GraphBuilder(name: "watermark_encoder")
        let secret = b.input("secret", [batch, bits]), image = b.input("image", [batch, height, width, 3])
        switch self {
        case .small(var c):
            c.batch = batch
            b.output("residual", SmallModel.encoder(b, c, secret: secret, image: image))
        case .stegastamp(let c):
            b.output("residual", StegaStampNetworks.encoder(b, secret: secret, image: image, prefix: "encoder.", seed: c.seed, includeDeadCode: false))
        }
        return try b.finish()
    }

    public func decoder(batch: Int) throws -> Graph {
        let b = GraphBuilder(name: "watermark_decoder")
        let image = b.input("image", [batch, height, width, 3])
        switch self {
        case .small(var c):
            c.batch = batch
            b.output("logits", SmallModel.decoder(b, c, image: image))
        case .stegastamp(let c):
            b.output("logits", StegaStampNetworks.decoder(b, image: image, bits: c.bits, prefix: "decoder.", seed: c.seed + 1).logits)
        }
        return try b.finish()
    }
}

extension TrainingConfig {
    /// The encoder and decoder this configuration trains.
    public var networks: WatermarkNetworks {
        switch architecture {
        case .small: return .small(smallModel)
        case .stegastamp: return .stegastamp(model)
        }
    }
}
