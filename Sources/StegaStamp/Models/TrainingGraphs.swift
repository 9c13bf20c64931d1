import GraphAutodiff
import GraphIR

/// What a StegaStamp training run is built for. Defaults: the paper configuration of
/// `scripts/base.sh` (400 x 400, 100 bits, batch 4, white borders, YUV scales 1/100/100).
public struct StegaStampConfig: Sendable, Equatable {
    public var height = 400
    public var width = 400
    public var bits = 100
    public var batch = 4
    public var borders = BorderMode.white
    public var transform = TransformConfig()
    public var yuvScales: [Float] = [1, 100, 100]
    /// Train the STN's W_fc1 / b_fc1 (the released code did not).
    public var trainSTN = false
    /// The encoder's residual is scaled by this before it is added (1: the original). Below 1 the
    /// decoder trains on residuals as faint as the codec embeds them (`--strength`).
    public var residualScale: Float = 1
    /// Train the encoder (false: only the decoder learns, on the fixed encoder's residuals).
    public var trainEncoder = true
    /// Emit the original's unused conv10 and second conv9 call.
    public var includeDeadCode = true
    public var perceptual = PerceptualLoss.ssim
    public var seed = 1
    /// Data-parallel training: `batch` is this rank's slice (examples rank * batch ..< (rank + 1) *
    /// batch of a global batch of ranks * batch). With ranks > 1 the steps average their gradients
    /// over the ranks (`all_reduce` in buckets of `bucketBytes`) and their reported outputs too.
    public var ranks = 1
    public var rank = 0
    public var bucketBytes = 4 << 20

    /// ssim: weight-free 1 - SSIM; lpips: LPIPS (AlexNet), parameters lpips.* loaded from a file.
    public enum PerceptualLoss: String, CaseIterable, Sendable { case ssim, lpips, none }

    public init() {}

    public func validate() throws {
        guard height >= 16, width >= 16, height % 16 == 0, width % 16 == 0 else {
            throw ModelError("image size \(height)x\(width): height and width must be multiples of 16 (at least 16)")
        }
        guard bits >= 1, bits <= 4096 else { throw ModelError("bits must be in 1...4096, got \(bits)") }
        guard batch >= 1, batch <= 1024 else { throw ModelError("batch must be in 1...1024, got \(batch)") }
        guard height <= 4096, width <= 4096 else { throw ModelError("image size \(height)x\(width) is larger than 4096") }
        guard ranks >= 1, (0..<ranks).contains(rank) else { throw ModelError("rank \(rank) of \(ranks) ranks") }
        if ranks > 1 && borders == .image {
            throw ModelError("borders 'image' fills each example's border from its neighbour in the batch, which data-parallel ranks do not hold; choose another --borders")
        }
    }

    /// The transform net's configuration with this rank's place in the global batch.
    var rankedTransform: TransformConfig {
        var t = transform
        if ranks > 1 { (t.globalBatch, t.batchOffset) = (batch * ranks, batch * rank) }
        return t
    }
}

/// The StegaStamp graphs: each network alone, the transform net, and the two training steps.
/// Every value that changes between steps is an input: the step (which drives every ramp), the
/// random seed, the perspective matrices, each loss scale, the edge gain and the learning rate.
public enum StegaStampGraphs {
    public static func encoder(_ c: StegaStampConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "stegastamp_encoder")
        let secret = b.input("secret", [c.batch, c.bits]), image = b.input("image", [c.batch, c.height, c.width, 3])
        b.output("residual", StegaStampNetworks.encoder(b, secret: secret, image: image, seed: c.seed, includeDeadCode: c.includeDeadCode))
        return try b.finish()
    }

    public static func decoder(_ c: StegaStampConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "stegastamp_decoder")
        let image = b.input("image", [c.batch, c.height, c.width, 3])
        let d = StegaStampNetworks.decoder(b, image: image, bits: c.bits, seed: c.seed + 1)
        b.output("logits", d.logits)
        b.output("theta", d.theta)
        b.output("transformed_image", d.transformed)
        return try b.finish()
    }

    public static func critic(_ c: StegaStampConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "stegastamp_critic")
        let image = b.input("image", [c.batch, c.height, c.width, 3])
        let d = StegaStampNetworks.critic(b, image: image, seed: c.seed + 2)
        b.output("output", d.output)
        b.output("heatmap", d.heatmap)
        return try b.finish()
    }

    public static func transform(_ c: StegaStampConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "stegastamp_transform")
        let image = b.input("image", [c.batch, c.height, c.width, 3])
        let seed = b.input("seed", []), step = b.input("step", [])
        b.output("transformed", TransformNet.apply(b, image, seed: seed, step: step, config: c.transform))
        return try b.finish()
    }

    /// The shared forward part of both steps (`build_model`).
    struct Forward {
        var loss, secretLoss, imageLoss, yuvLoss, perceptualLoss, gLoss, dLoss, bitAccuracy, stringAccuracy: ValueID
        /// mean((encoded - image)^2) (PSNR = -10 log10 mse) and the standard deviation of the
        /// decoder's probabilities over the batch (near 0: the decoder has collapsed to a constant).
        var mse, probabilityStd: ValueID
    }

    static func forward(_ b: GraphBuilder, _ c: StegaStampConfig) -> Forward {
        let secret = b.input("secret", [c.batch, c.bits])
        let image = b.input("image", [c.batch, c.height, c.width, 3])
        let m = b.input("M", [c.batch, 2, 8])
        let seed = b.input("seed", [])
        // The transform net's ramps read their own step (the original's global_step, from 0), apart
        // from Adam's step count (from 1): the trainer can then also scale augmentation strength.
        let step = b.input("augmentation_step", [])
        let l2Scale = b.input("l2_loss_scale", [])
        let perceptualScale = b.input("perceptual_loss_scale", [])
        let secretScale = b.input("secret_loss_scale", [])
        let gScale = b.input("G_loss_scale", [])
        let edgeGain = b.input("l2_edge_gain", [])

        let enc = TransformNet.perspectiveEncode(b, image: image, m: m, seed: seed, borders: c.borders) { warped in
            let r = StegaStampNetworks.encoder(b, secret: secret, image: warped, prefix: "encoder.", seed: c.seed, includeDeadCode: c.includeDeadCode)
            return c.residualScale == 1 ? r : b.mul(r, b.constant(c.residualScale))
        }
        let real = c.borders == .noEdge ? image : enc.inputWarped
        let fake = c.borders == .noEdge ? enc.encoded : enc.encodedWarped
        let dReal = StegaStampNetworks.critic(b, image: real, prefix: "critic.", seed: c.seed + 2).output
        // Second use of the same critic parameters: look them up rather than creating new ones.
        let dFake = criticReusing(b, image: fake)
        let transformed = TransformNet.apply(b, enc.encoded, seed: seed, step: step, config: c.rankedTransform)
        let logits = StegaStampNetworks.decoder(b, image: transformed, bits: c.bits, prefix: "decoder.", seed: c.seed + 1).logits
        let acc = Losses.secretAccuracy(b, logits: logits, secret: secret)
        let secretLoss = ImageOps.secretLoss(b, logits: logits, labels: secret)
        let falloff = ImageOps.edgeFalloff(b, height: c.height, width: c.width)
        let (imageLoss, yuvLoss) = Losses.imageLoss(b, encoded: enc.encoded, image: image, falloff: falloff, gain: edgeGain, yuvScales: c.yuvScales)
        let perceptual: ValueID
        switch c.perceptual {
        case .ssim: perceptual = Losses.ssimLoss(b, image, enc.encoded)
        case .lpips: perceptual = b.mean(LPIPS.distance(b, b.sub(b.mul(image, 2), 1), b.sub(b.mul(enc.encoded, 2), 1)))
        case .none: perceptual = b.constant(0)
        }
        var loss = b.add(b.add(b.mul(l2Scale, imageLoss), b.mul(perceptualScale, perceptual)), b.mul(secretScale, secretLoss))
        loss = b.add(loss, b.mul(gScale, dFake), name: "loss")
        let p = b.sigmoid(logits)
        let pMean = b.mean(p)
        let pStd = b.sqrt(b.binary(.maximum, b.sub(b.mean(b.square(p)), b.square(pMean)), b.constant(0)))
        return Forward(loss: loss, secretLoss: secretLoss, imageLoss: imageLoss, yuvLoss: yuvLoss, perceptualLoss: perceptual,
                       gLoss: dFake, dLoss: b.sub(dReal, dFake), bitAccuracy: acc.bit, stringAccuracy: acc.string,
                       mse: b.mean(b.square(b.sub(enc.encoded, image))), probabilityStd: pStd)
    }

    static func criticReusing(_ b: GraphBuilder, image: ValueID) -> ValueID {
        var x = b.sub(image, 0.5)
        for i in 1...5 {
            let k = b.graph.value(named: "critic.conv\(i).kernel")!, bias = b.graph.value(named: "critic.conv\(i).bias")!
            x = b.add(b.conv2dSame(x, k, stride: i < 5 ? 2 : 1), bias)
            if i < 5 { x = b.relu(x) }
        }
        return b.mean(x)
    }

    /// The generator step: `loss` of build_model, its gradient with respect to the encoder and
    /// decoder, and Adam. Inputs: secret, image, M, seed, augmentation_step, step (Adam's), l2_loss_scale,
    /// perceptual_loss_scale, secret_loss_scale, G_loss_scale, l2_edge_gain, learning_rate.
    public static func generatorStep(_ c: StegaStampConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "stegastamp_train_step")
        let f = forward(b, c)
        b.output("loss", f.loss)
        // What the trainer logs: over the global batch (means of the ranks' means; the
        // probabilities' std is the mean of the ranks' stds).
        let report = { (x: ValueID) in c.ranks > 1 ? b.apply(.allReduce(.mean), [x]) : x }
        if c.ranks > 1 { b.output("reported_loss", report(f.loss)) }
        b.output("secret_loss", report(f.secretLoss))
        b.output("image_loss", report(f.imageLoss))
        b.output("yuv_loss", report(f.yuvLoss))
        b.output("perceptual_loss", report(f.perceptualLoss))
        b.output("G_loss", report(f.gLoss))
        b.output("bit_accuracy", report(f.bitAccuracy))
        b.output("string_accuracy", report(f.stringAccuracy))
        b.output("mse", report(f.mse))
        b.output("probability_std", report(f.probabilityStd))
        let g = try b.finish()
        return try Optimizers.trainingStep(g, loss: "loss", parameters: StegaStampNetworks.trainableParameters(g, trainSTN: c.trainSTN, trainEncoder: c.trainEncoder),
                                           optimizer: .adam(AdamConfig()), bucketBytes: c.ranks > 1 ? c.bucketBytes : nil)
    }

    /// The train step of the `train_step` fixture: encoder -> (image + residual) -> decoder, no
    /// warp, transform net, critic or perceptual loss; loss = l2_loss_scale * image_loss +
    /// secret_loss_scale * secret_loss with the falloff as the input `falloff` [H, W] times the input
    /// `l2_edge_gain`. Outputs the loss, its parts, residual, logits and `grad.<parameter>` for every
    /// encoder and decoder parameter (zeros for the dead conv10), then applies Adam.
    public static func plainStep(_ c: StegaStampConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "stegastamp_plain_train_step")
        let secret = b.input("secret", [c.batch, c.bits])
        let image = b.input("image", [c.batch, c.height, c.width, 3])
        let falloff = b.input("falloff", [c.height, c.width])
        let gain = b.input("l2_edge_gain", [])
        let l2Scale = b.input("l2_loss_scale", [])
        let secretScale = b.input("secret_loss_scale", [])
        let residual = StegaStampNetworks.encoder(b, secret: secret, image: image, prefix: "encoder.", seed: c.seed, includeDeadCode: c.includeDeadCode)
        let encoded = b.add(image, residual)
        let logits = StegaStampNetworks.decoder(b, image: encoded, bits: c.bits, prefix: "decoder.", seed: c.seed + 1).logits
        let secretLoss = ImageOps.secretLoss(b, logits: logits, labels: secret)
        let (imageLoss, yuvLoss) = Losses.imageLoss(b, encoded: encoded, image: image, falloff: falloff, gain: gain, yuvScales: c.yuvScales)
        let loss = b.add(b.mul(l2Scale, imageLoss), b.mul(secretScale, secretLoss), name: "loss")
        for (name, v) in [("loss", loss), ("secret_loss", secretLoss), ("image_loss", imageLoss), ("yuv_loss", yuvLoss),
                          ("residual", residual), ("logits", logits)] { b.output(name, v) }
        let params = b.graph.parameters.filter { b.graph[$0].name.hasPrefix("encoder.") || b.graph[$0].name.hasPrefix("decoder.") }
        let grads = try Autodiff.gradient(in: b, of: loss, wrt: params)
        for (p, g) in zip(params, grads) { b.output("grad." + b.graph[p].name, g) }
        let trainable = Set(StegaStampNetworks.trainableParameters(b.graph, trainSTN: c.trainSTN))
        let pairs = zip(params, grads).filter { trainable.contains(b.graph[$0.0].name) }
        Optimizers.adam(b, parameters: pairs.map(\.0), gradients: pairs.map(\.1), learningRate: b.input("learning_rate", []),
                        step: b.input("step", []))
        return try b.finish()
    }

    /// The critic step: D_loss = D(real) - D(fake), RMSProp (lr from the input) with gradients
    /// clipped to +-0.25 and weights to +-0.01 afterwards.
    public static func criticStep(_ c: StegaStampConfig) throws -> Graph {
        try c.validate()
        let b = GraphBuilder(name: "stegastamp_critic_step")
        let f = forward(b, c)
        b.output("D_loss", f.dLoss)
        if c.ranks > 1 { b.output("reported_D_loss", b.apply(.allReduce(.mean), [f.dLoss])) }
        let g = try b.finish()
        let criticParams = g.parameters.map { g[$0].name }.filter { $0.hasPrefix("critic.") }
        return try Optimizers.trainingStep(g, loss: "D_loss", parameters: criticParams, optimizer: .rmsprop(RMSPropConfig()),
                                           bucketBytes: c.ranks > 1 ? c.bucketBytes : nil)
    }
}
