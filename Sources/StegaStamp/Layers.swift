import GraphIR

/// A small Keras-like layer library that emits IR. Parameter names are `<name>.kernel` and
/// `<name>.bias`; kernels are HWIO (conv) or [in, out] (dense), biases start at zero.
public struct Layers {
    public let b: GraphBuilder
    /// Prepended to every parameter name ("encoder." ...).
    public var prefix: String
    /// Seeds are derived from this and a running counter, so a model's initialisation is reproducible.
    public var seed: Int
    private var counter = 0

    public init(_ b: GraphBuilder, prefix: String = "", seed: Int = 0) {
        self.b = b
        self.prefix = prefix
        self.seed = seed
    }

    public enum Init { case heNormal, glorotUniform }
    public enum Activation { case none, relu }

    mutating func kernelInit(_ i: Init) -> Initializer {
        counter += 1
        let s = seed &* 1000 &+ counter
        switch i {
        case .heNormal: return .heNormal(seed: s)
        case .glorotUniform: return .glorotUniform(seed: s)
        }
    }

    func activate(_ x: ValueID, _ a: Activation, _ name: String) -> ValueID {
        switch a {
        case .none: return x
        case .relu: return b.relu(x, name: prefix + name)
        }
    }

    /// y = act(x @ W + b) on [batch, in].
    public mutating func dense(_ x: ValueID, units: Int, name: String, activation: Activation = .none,
                               initializer: Init = .glorotUniform) -> ValueID {
        let inUnits = b.shape(x).last ?? 0
        let w = b.parameter(prefix + name + ".kernel", [inUnits, units], kernelInit(initializer))
        let bias = b.parameter(prefix + name + ".bias", [units], .zeros)
        return activate(b.add(b.matmul(x, w), bias), activation, name)
    }

    /// Conv2D with TF 'SAME' padding, NHWC / HWIO.
    public mutating func conv(_ x: ValueID, filters: Int, kernel: Int, stride: Int = 1, name: String,
                              activation: Activation = .relu, initializer: Init = .glorotUniform) -> ValueID {
        let cin = b.shape(x).last ?? 0
        let k = b.parameter(prefix + name + ".kernel", [kernel, kernel, cin, filters], kernelInit(initializer))
        let bias = b.parameter(prefix + name + ".bias", [filters], .zeros)
        return activate(b.add(b.conv2dSame(x, k, stride: stride), bias), activation, name)
    }

    /// Row-major NHWC flatten: index = (h * W + w) * C + c.
    public func flatten(_ x: ValueID) -> ValueID {
        let s = b.shape(x)
        return b.reshape(x, [s[0], s.dropFirst().reduce(1, *)])
    }
}
