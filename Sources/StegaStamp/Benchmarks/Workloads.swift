import GraphAutodiff
import GraphIR
import GraphRuntime

/// The peer benchmark workloads of ../shared/peers/README.md, as graphs:
/// W1 encoder forward, W2 decoder forward (with the STN), W3 the training-step core (encoder ->
/// + residual -> + N(0, 0.02) -> decoder -> 1.5 BCE + 2 MSE -> backward -> Adam lr 1e-4 on every
/// encoder and decoder parameter), at batch 4; `encode` / `decode` are W1 / W2 at batch 1.
public enum BenchWorkload: String, CaseIterable, Sendable {
    case w1 = "W1", w2 = "W2", w3 = "W3", encode, decode

    public var batch: Int { self == .encode || self == .decode ? 1 : 4 }

    public struct Built {
        public var graph: Graph
        public var feeds: [String: Tensor]
        public var output: String
    }

    public func build(size: Int) throws -> Built {
        var c = StegaStampConfig()
        (c.height, c.width, c.batch) = (size, size, batch)
        try c.validate()
        let image = SyntheticImages.batch(count: batch, height: size, width: size, seed: 1)
        let secret = SyntheticImages.secrets(count: batch, bits: 100, seed: 1)
        switch self {
        case .w1, .encode:
            return Built(graph: try StegaStampGraphs.encoder(c), feeds: ["secret": secret, "image": image], output: "residual")
        case .w2, .decode:
            return Built(graph: try StegaStampGraphs.decoder(c), feeds: ["image": image], output: "logits")
        case .w3:
            let b = GraphBuilder(name: "w3_train_step")
            let s = b.input("secret", [batch, 100]), im = b.input("image", [batch, size, size, 3]), seed = b.input("seed", [])
            let residual = StegaStampNetworks.encoder(b, secret: s, image: im, prefix: "encoder.")
            let encoded = b.add(im, residual)
            let noised = b.add(encoded, b.mul(b.apply(.randomNormal(shape: [batch, size, size, 3], key: 1), [seed]), 0.02))
            let logits = StegaStampNetworks.decoder(b, image: noised, bits: 100, prefix: "decoder.").logits
            let loss = b.add(b.mul(ImageOps.secretLoss(b, logits: logits, labels: s), 1.5), b.mul(b.mean(b.square(residual)), 2), name: "loss")
            b.output("loss", loss)
            let forward = try b.finish()
            let params = forward.parameters.map { forward[$0].name }.filter { !$0.hasPrefix("encoder.conv10.") }
            let g = try Optimizers.trainingStep(forward, loss: "loss", parameters: params, optimizer: .adam(AdamConfig()))
            return Built(graph: g, feeds: ["secret": secret, "image": image, "seed": Tensor(1), "learning_rate": Tensor(1e-4), "step": Tensor(1)],
                         output: "loss")
        }
    }

    /// The peers' analytic FLOPs (2 x multiply-adds of convs and dense layers, dead conv10 excluded).
    public func flops(size h: Int) -> Double {
        func cdiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        let b = batch
        var enc = 0
        var s = h
        for (name, k, ci, co, st) in [("conv1", 3, 6, 32, 1), ("conv2", 3, 32, 32, 2), ("conv3", 3, 32, 64, 2), ("conv4", 3, 64, 128, 2),
                                      ("conv5", 3, 128, 256, 2), ("up6", 2, 256, 128, 1), ("conv6", 3, 256, 128, 1), ("up7", 2, 128, 64, 1),
                                      ("conv7", 3, 128, 64, 1), ("up8", 2, 64, 32, 1), ("conv8", 3, 64, 32, 1), ("up9", 2, 32, 32, 1),
                                      ("conv9", 3, 70, 32, 1)] {
            if name.hasPrefix("up") { s *= 2 }
            s = cdiv(s, st)
            enc += 2 * b * s * s * k * k * ci * co
        }
        enc += 2 * b * h * h * 32 * 3 + 2 * b * 100 * 3 * (h / 8) * (h / 8)
        var dec = 0
        s = h
        for (k, ci, co, st) in [(3, 3, 32, 2), (3, 32, 64, 2), (3, 64, 128, 2)] { s = cdiv(s, st); dec += 2 * b * s * s * k * k * ci * co }
        let stn = cdiv(h, 8)
        s = h
        for (k, ci, co, st) in [(3, 3, 32, 2), (3, 32, 32, 1), (3, 32, 64, 2), (3, 64, 64, 1), (3, 64, 64, 2), (3, 64, 128, 2), (3, 128, 128, 2)] {
            s = cdiv(s, st)
            dec += 2 * b * s * s * k * k * ci * co
        }
        dec += 2 * b * (stn * stn * 128 * 128 + 128 * 6 + s * s * 128 * 512 + 512 * 100)
        switch self {
        case .w1, .encode: return Double(enc)
        case .w2, .decode: return Double(dec)
        case .w3: return Double(3 * (enc + dec))
        }
    }
}
