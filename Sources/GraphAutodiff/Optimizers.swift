import GraphIR

/// TF1 AdamOptimizer (the StegaStamp generator's).
public struct AdamConfig: Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }
}

/// TF1 RMSPropOptimizer (momentum 0, mean-square slot initialised to 1) with element-wise
/// gradient clipping and weight clipping afterwards: the StegaStamp WGAN critic's optimizer.
public struct RMSPropConfig: Sendable {
    public var decay: Float = 0.9
    public var epsilon: Float = 1e-10
    /// Gradients are clipped to [-gradientClip, gradientClip] (nil: no clipping).
    public var gradientClip: Float? = 0.25
    /// Weights are clipped to [-weightClip, weightClip] after the step (nil: no clipping).
    public var weightClip: Float? = 0.01
    public init(decay: Float = 0.9, epsilon: Float = 1e-10, gradientClip: Float? = 0.25, weightClip: Float? = 0.01) {
        self.decay = decay
        self.epsilon = epsilon
        self.gradientClip = gradientClip
        self.weightClip = weightClip
    }
}

public enum Optimizer: Sendable {
    case adam(AdamConfig)
    case rmsprop(RMSPropConfig)
}

/// Optimizers as IR: each parameter's new value (and its new optimizer state) is a graph value,
/// bound back to the parameter with an `update`. Learning rate and step are graph values too,
/// normally inputs, so changing them never needs a new graph.
public enum Optimizers {
    static func clip(_ b: GraphBuilder, _ x: ValueID, _ c: Float) -> ValueID {
        b.binary(.minimum, b.binary(.maximum, x, b.constant(-c)), b.constant(c))
    }

    /// `step` counts from 1.
    public static func adam(_ b: GraphBuilder, parameters: [ValueID], gradients: [ValueID],
                            learningRate: ValueID, step: ValueID, config: AdamConfig = AdamConfig()) {
        let one = b.constant(1)
        let bias1 = b.sub(one, b.binary(.pow, b.constant(config.beta1), step))
        let bias2 = b.sub(one, b.binary(.pow, b.constant(config.beta2), step))
        let lrT = b.div(b.mul(learningRate, b.sqrt(bias2)), bias1)
        for (p, g) in zip(parameters, gradients) {
            let name = b.graph[p].name
            let shape = b.shape(p)
            let m = b.parameter("adam.m.\(name)", shape, .zeros)
            let v = b.parameter("adam.v.\(name)", shape, .zeros)
            let m1 = b.add(b.mul(m, config.beta1), b.mul(g, 1 - config.beta1))
            let v1 = b.add(b.mul(v, config.beta2), b.mul(b.square(g), 1 - config.beta2))
            let stepValue = b.div(b.mul(lrT, m1), b.add(b.sqrt(v1), config.epsilon))
            let p1 = b.sub(p, stepValue)
            b.update(m, to: m1)
            b.update(v, to: v1)
            b.update(p, to: p1)
        }
    }

    public static func rmsprop(_ b: GraphBuilder, parameters: [ValueID], gradients: [ValueID],
                               learningRate: ValueID, config: RMSPropConfig = RMSPropConfig()) {
        for (p, g0) in zip(parameters, gradients) {
            let name = b.graph[p].name
            let g = config.gradientClip.map { clip(b, g0, $0) } ?? g0
            let ms = b.parameter("rmsprop.ms.\(name)", b.shape(p), .constant(1))
            let ms1 = b.add(b.mul(ms, config.decay), b.mul(b.square(g), 1 - config.decay))
            var p1 = b.sub(p, b.div(b.mul(learningRate, g), b.sqrt(b.add(ms1, config.epsilon))))
            if let c = config.weightClip { p1 = clip(b, p1, c) }
            b.update(ms, to: ms1)
            b.update(p, to: p1)
        }
    }

    /// Data parallelism: the gradients averaged over the ranks, in buckets of at most
    /// `bucketBytes` (several gradients flattened into one buffer, one collective each, as
    /// Horovod's tensor fusion and DDP's buckets do). Gradients are bucketed from the last one
    /// backwards, the order the backward pass finishes them.
    public static func allReduceMean(_ b: GraphBuilder, _ gradients: [ValueID], bucketBytes: Int) -> [ValueID] {
        var result = gradients
        var bucket: [Int] = []
        var bytes = 0
        func flush() {
            defer { bucket = []; bytes = 0 }
            guard !bucket.isEmpty else { return }
            if bucket.count == 1 {
                result[bucket[0]] = b.apply(.allReduce(.mean), [gradients[bucket[0]]])
                return
            }
            let flat = bucket.map { b.reshape(gradients[$0], [Shape.count(b.shape(gradients[$0]))]) }
            let reduced = b.apply(.allReduce(.mean), [b.apply(.concat(axis: 0), flat)])
            var offset = 0
            for i in bucket {
                let shape = b.shape(gradients[i]), n = Shape.count(shape)
                result[i] = b.reshape(b.apply(.slice(begin: [offset], end: [offset + n]), [reduced]), shape)
                offset += n
            }
        }
        for i in gradients.indices.reversed() {
            let n = Shape.count(b.shape(gradients[i])) * 4
            if bytes > 0 && bytes + n > bucketBytes { flush() }
            bucket.append(i)
            bytes += n
        }
        flush()
        return result
    }

    /// A training step: `forward` + the gradient of its scalar output `loss` with respect to
    /// `parameters` (all of the graph's parameters if nil) + the optimizer's updates. Adds the
    /// inputs `learning_rate` and (Adam) `step` unless the graph already has them.
    /// With `bucketBytes` (data-parallel training) the gradients are averaged over the ranks
    /// before the update (`allReduceMean`).
    public static func trainingStep(_ forward: Graph, loss: String, parameters names: [String]? = nil,
                                    optimizer: Optimizer, bucketBytes: Int? = nil) throws -> Graph {
        guard let lossValue = forward.output(named: loss) else {
            throw AutodiffError("graph '\(forward.name)' has no output '\(loss)'")
        }
        let params: [ValueID] = try (names ?? forward.parameters.map { forward[$0].name }).map { n in
            guard let id = forward.value(named: n), case .parameter = forward[id].definition else {
                throw AutodiffError("graph '\(forward.name)' has no parameter '\(n)'")
            }
            return id
        }
        let b = GraphBuilder(extending: forward)
        func scalarInput(_ name: String) -> ValueID {
            if let id = forward.value(named: name), case .input = forward[id].definition { return id }
            return b.input(name, [])
        }
        var grads = try Autodiff.gradient(in: b, of: lossValue, wrt: params)
        if let bucketBytes { grads = allReduceMean(b, grads, bucketBytes: bucketBytes) }
        switch optimizer {
        case .adam(let c):
            adam(b, parameters: params, gradients: grads, learningRate: scalarInput("learning_rate"), step: scalarInput("step"), config: c)
        case .rmsprop(let c):
            rmsprop(b, parameters: params, gradients: grads, learningRate: scalarInput("learning_rate"), config: c)
        }
        return try b.finish()
    }
}
