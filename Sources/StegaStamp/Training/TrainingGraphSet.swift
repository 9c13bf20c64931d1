import GraphAutodiff
import GraphIR
import GraphRuntime

/// The graphs one run compiles, by architecture: the generator step (forward, gradient, Adam),
/// the critic step (RMSProp; StegaStamp with the GAN only), and for evaluation and the sample
/// grid the encoder, the decoder and the training damage alone, at the training batch. Parameter
/// names are the training step's, so every graph reads the one ParameterStore.
public struct TrainingGraphSet {
    public var generator: Graph
    public var critic: Graph?
    public var encoder: Graph
    public var decoder: Graph
    /// image, seed, step -> transformed (the damage the decoder trains against).
    public var damage: Graph

    /// With `ranks` > 1 the two steps are this rank's part of a data-parallel step (its slice of
    /// the batch, gradients averaged over the ranks); the evaluation graphs stay at the full batch.
    /// `bucketBytes`: the size of the gradient buffers all-reduced together (data-parallel only).
    public init(_ c: TrainingConfig, ranks: Int = 1, rank: Int = 0, bucketBytes: Int = 4 << 20) throws {
        let n = c.batch, s = c.size
        guard ranks >= 1, c.batch % ranks == 0 else {
            throw TrainingError("--batch \(c.batch) is the global batch and must divide evenly over the \(ranks) ranks")
        }
        encoder = try c.networks.encoder(batch: n)
        decoder = try c.networks.decoder(batch: n)
        let b = GraphBuilder(name: "train_damage")
        let image = b.input("image", [n, s, s, 3]), seed = b.input("seed", []), step = b.input("step", [])
        switch c.architecture {
        case .stegastamp:
            var m = c.model
            (m.batch, m.ranks, m.rank, m.bucketBytes) = (c.batch / ranks, ranks, rank, bucketBytes)
            try m.validate()
            generator = try StegaStampGraphs.generatorStep(m)
            critic = c.gan ? try StegaStampGraphs.criticStep(m) : nil
            b.output("transformed", TransformNet.apply(b, image, seed: seed, step: step, config: m.transform))
        case .small:
            guard ranks == 1 else { throw TrainingError("data-parallel training runs the stegastamp architecture; the small model trains in one process") }
            let m = c.smallModel
            try m.validate()
            generator = try SmallModel.trainingStep(m)
            critic = nil
            _ = step
            b.output("transformed", b.add(image, b.mul(b.apply(.randomNormal(shape: [n, s, s, 3], key: 1), [seed]), m.noise)))
        }
        damage = try b.finish()
    }
}

/// Feeds exactly the inputs an executable declares (the trainer computes one superset per step).
extension Executable {
    func run(feeding all: [String: Tensor], parameters: inout ParameterStore) throws -> [String: Tensor] {
        try run(all.filter { signature.inputs[$0.key] != nil }, parameters: &parameters)
    }
}
