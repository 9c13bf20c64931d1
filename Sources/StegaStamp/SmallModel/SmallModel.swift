import GraphAutodiff
import GraphIR

/// A small StegaStamp-like model: a U-Net-ish encoder adds a residual that hides `bits` random
/// bits in an image, Gaussian noise damages the result, a strided-conv decoder reads the bits back.
/// It exercises the whole stack (IR, autodiff, Adam as IR, the compiled executor) in minutes.
public struct SmallModelConfig: Sendable, Equatable {
    public var height = 32
    public var width = 32
    public var bits = 16
    public var batch = 16
    public var channels = 16
    /// Standard deviation of the noise between encoder and decoder (images are in [0, 1]).
    public var noise: Float = 0.02
    public var seed = 1
    /// The secret goes through Dense to (H/f) x (W/f) x 3, then nearest x f (StegaStamp: f = 8).
    public var secretUpsample = 8
    public init() {}

    public func validate() throws {
        guard height >= 8, width >= 8, height % 8 == 0, width % 8 == 0 else {
            throw ModelError("image size \(height)x\(width) must be a multiple of 8, at least 8")
        }
        guard [1, 2, 4, 8].contains(secretUpsample) else { throw ModelError("secretUpsample must be 1, 2, 4 or 8") }
        guard bits >= 1, bits <= 4096 else { throw ModelError("bits must be in 1...4096, got \(bits)") }
        guard batch >= 1, batch <= 4096 else { throw ModelError("batch must be in 1...4096, got \(batch)") }
        guard channels >= 1, channels <= 512 else { throw ModelError("channels must be in 1...512, got \(channels)") }
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

public enum SmallModel {
    /// Encoder: secret [B, bits] + image [B, H, W, 3] in [0, 1] -> residual [B, H, W, 3].
    public static func encoder(_ b: GraphBuilder, _ c: SmallModelConfig, secret: ValueID, image: ValueID) -> ValueID {
        var l = Layers(b, prefix: "encoder.", seed: c.seed)
        let (h, w, n, ch) = (c.height, c.width, c.batch, c.channels)
        let s = b.sub(secret, 0.5)
        let f = c.secretUpsample
        let dense = l.dense(s, units: (h / f) * (w / f) * 3, name: "secret_dense", activation: .relu, initializer: .heNormal)
        let secretUp = b.upsampleNearest(b.reshape(dense, [n, h / f, w / f, 3]), factor: f)
        let inputs = b.concat([secretUp, b.sub(image, 0.5)], axis: 3)
        let conv1 = l.conv(inputs, filters: ch, kernel: 3, name: "conv1", initializer: .heNormal)
        let conv2 = l.conv(conv1, filters: ch, kernel: 3, stride: 2, name: "conv2", initializer: .heNormal)
        let conv3 = l.conv(conv2, filters: ch, kernel: 3, name: "conv3", initializer: .heNormal)
        let up4 = l.conv(b.upsampleNearest(conv3, factor: 2), filters: ch, kernel: 2, name: "up4", initializer: .heNormal)
        let conv4 = l.conv(b.concat([conv1, up4, inputs], axis: 3), filters: ch, kernel: 3, name: "conv4", initializer: .heNormal)
        return l.conv(conv4, filters: 3, kernel: 1, name: "residual", activation: .none, initializer: .heNormal)
    }

    /// Decoder: image [B, H, W, 3] -> bit logits [B, bits].
    public static func decoder(_ b: GraphBuilder, _ c: SmallModelConfig, image: ValueID) -> ValueID {
        var l = Layers(b, prefix: "decoder.", seed: c.seed + 1)
        var x = b.sub(image, 0.5)
        x = l.conv(x, filters: 2 * c.channels, kernel: 3, stride: 2, name: "conv1")
        x = l.conv(x, filters: 4 * c.channels, kernel: 3, stride: 2, name: "conv2")
        x = l.conv(x, filters: 4 * c.channels, kernel: 3, stride: 2, name: "conv3")
        x = l.dense(l.flatten(x), units: 128, name: "fc1", activation: .relu)
        return l.dense(x, units: c.bits, name: "fc2")
    }

    /// Forward graph. Inputs: secret, image, seed, secret_loss_scale, l2_loss_scale (the names the
    /// trainer feeds the StegaStamp graphs). Outputs: loss,
    /// secret_loss, image_loss, bit_accuracy, residual, logits.
    public static func forward(_ c: SmallModelConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "small_stegastamp")
        let secret = b.input("secret", [c.batch, c.bits])
        let image = b.input("image", [c.batch, c.height, c.width, 3])
        let seed = b.input("seed", [])
        let secretScale = b.input("secret_loss_scale", [])
        let imageScale = b.input("l2_loss_scale", [])
        let residual = encoder(b, c, secret: secret, image: image)
        let encoded = b.add(image, residual, name: "encoded")
        let noise = b.mul(b.apply(.randomNormal(shape: [c.batch, c.height, c.width, 3], key: 1), [seed]), c.noise)
        let logits = decoder(b, c, image: b.add(encoded, noise, name: "noised"))
        let secretLoss = ImageOps.secretLoss(b, logits: logits, labels: secret)
        let imageLoss = b.mean(b.square(residual), name: "image_loss")
        let loss = b.add(b.mul(secretScale, secretLoss), b.mul(imageScale, imageLoss), name: "loss")
        b.output("loss", loss)
        b.output("secret_loss", secretLoss)
        b.output("image_loss", imageLoss)
        let acc = Losses.secretAccuracy(b, logits: logits, secret: secret)
        b.output("bit_accuracy", acc.bit)
        b.output("string_accuracy", acc.string)
        b.output("mse", b.mean(b.square(b.sub(encoded, image))))
        b.output("residual", residual)
        b.output("logits", logits)
        return try b.finish()
    }

    /// Training step: forward + gradient + Adam; adds inputs learning_rate and step.
    public static func trainingStep(_ c: SmallModelConfig) throws -> Graph {
        var g = try forward(c)
        g.outputs.removeAll { $0.name == "residual" || $0.name == "logits" }
        return try Optimizers.trainingStep(g, loss: "loss", optimizer: .adam(AdamConfig()))
    }
}
