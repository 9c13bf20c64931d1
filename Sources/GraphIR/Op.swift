/// Every operation of the IR, with its attributes. This enum is the op registry: the text name,
/// the attributes live here; the shape rule in `ShapeRules.swift`; the
/// reference kernel in GraphRuntime's `Interpreter`; the gradient in GraphAutodiff's `GradientRules`.
/// Each of those is an exhaustive `switch`, so adding a case makes the compiler list every place
/// that must handle it.
public enum Op: Hashable, Sendable {
    case unary(UnaryOp)
    case binary(BinaryOp)
    /// select(cond, a, b): a where cond != 0, else b; numpy broadcasting of all three.
    case select
    case reduce(ReduceOp, axes: [Int], keepDims: Bool)
    case reshape(shape: [Int])
    case transpose(perm: [Int])
    /// numpy `broadcast_to`.
    case broadcast(shape: [Int])
    case concat(axis: Int)
    /// Elements [begin, end) on every axis, step 1.
    case slice(begin: [Int], end: [Int])
    case pad(before: [Int], after: [Int], mode: PadMode, value: Float)
    case reverse(axes: [Int])
    /// Batched matrix product of a [..., M, K] and b [..., K, N] (after the optional transposes);
    /// batch dimensions must agree.
    case matmul(transposeA: Bool, transposeB: Bool)
    /// NHWC input, HWIO kernel, cross-correlation.
    case conv2d(ConvAttributes)
    /// Gradient of conv2d with respect to its input: (dy, kernel) -> dx of shape `inputShape`.
    case conv2dBackpropInput(ConvAttributes, inputShape: [Int])
    /// Gradient of conv2d with respect to its kernel: (x, dy) -> dk of shape `filterShape`.
    case conv2dBackpropFilter(ConvAttributes, filterShape: [Int])
    /// Nearest-neighbour upsampling of NHWC by integer factors [fh, fw].
    case upsampleNearest(factors: [Int])
    /// Average pooling of NHWC, 'VALID' windows.
    case avgPool(window: [Int], strides: [Int])
    /// Gradient of avgPool: dy -> dx of shape `inputShape`.
    case avgPoolBackprop(window: [Int], strides: [Int], inputShape: [Int])
    /// Max pooling of NHWC, 'VALID' windows.
    case maxPool(window: [Int], strides: [Int])
    /// Gradient of maxPool: (x, dy) -> dx, each window's cotangent to its first maximum.
    case maxPoolBackprop(window: [Int], strides: [Int])
    /// Bilinear sampling of image [N,H,W,C] at pixel coordinates coords [N,Ho,Wo,2] = (x, y).
    case bilinearSample(mode: SampleMode)
    /// Adjoint of bilinearSample in the image: (dy, coords) -> dimage [N, size[0], size[1], C].
    case bilinearSampleGradImage(mode: SampleMode, size: [Int])
    /// Derivative of bilinearSample in the coordinates: (image, coords, dy) -> dcoords.
    case bilinearSampleGradCoords(mode: SampleMode)
    /// TF's ImageProjectiveTransform (bilinear, zero fill) of images [N,H,W,C] with transforms [N,8].
    /// `inverse` uses inv([t; 1]) / its [2,2] entry instead of t.
    case projectiveWarp(inverse: Bool, gradient: WarpGradient)
    /// The exact adjoint of projectiveWarp in the images: (dy, transforms) -> dimages.
    case projectiveWarpTranspose(inverse: Bool)
    /// Counter-based random numbers keyed by a seed input (a scalar) and a per-op stream key.
    case randomUniform(shape: [Int], key: Int)
    case randomNormal(shape: [Int], key: Int)
    /// Data-parallel training's collective: the operand summed (or averaged) over every rank of
    /// the run, elementwise; every rank gets the result. With one rank it is the identity (and a
    /// pass removes it). Opaque to fusion; never folded.
    case allReduce(AllReduceOp)
    /// A fused kernel: a region whose body is a graph with inputs `arg0`, `arg1`, ... (the
    /// operands, in order) and one output. The interpreter runs the body; backends compile it.
    case fused(FusedKernel)
}

/// The cases of `Op` without their attributes, named as the text format names them (unary,
/// binary and reduce ops print their own sub-enum's names).
public enum OpKind: String, CaseIterable, Hashable, Sendable {
    case unary, binary, select, reduce, reshape, transpose, broadcast, concat, slice, pad, reverse, matmul, conv2d
    case conv2dBackpropInput = "conv2d_backprop_input", conv2dBackpropFilter = "conv2d_backprop_filter"
    case upsampleNearest = "upsample_nearest", avgPool = "avg_pool", avgPoolBackprop = "avg_pool_backprop"
    case maxPool = "max_pool", maxPoolBackprop = "max_pool_backprop", bilinearSample = "bilinear_sample"
    case bilinearSampleGradImage = "bilinear_sample_grad_image", bilinearSampleGradCoords = "bilinear_sample_grad_coords"
    case projectiveWarp = "projective_warp", projectiveWarpTranspose = "projective_warp_transpose"
    case randomUniform = "random_uniform", randomNormal = "random_normal", allReduce = "all_reduce", fused
}

/// The legality class a fusion was made under (TVM's pattern lattice, XLA's fusion kinds).
public enum FusionKind: String, CaseIterable, Hashable, Sendable {
    /// Elementwise chains: one loop.
    case loop
    /// conv2d or matmul with an elementwise epilogue (bias, activation, residual add).
    case output
    /// A reduction with its elementwise producers.
    case input
}

public struct FusedKernel: Hashable, Sendable {
    public var kind: FusionKind
    public var body: Graph
    public init(kind: FusionKind, body: Graph) {
        self.kind = kind
        self.body = body
    }
}

public enum UnaryOp: String, CaseIterable, Hashable, Sendable {
    case neg, exp, log, sqrt, abs, relu, sigmoid, tanh, sin, cos, floor, round, sign
    case stopGradient = "stop_gradient"
}

public enum BinaryOp: String, CaseIterable, Hashable, Sendable {
    case add, sub, mul, div, pow, maximum, minimum, less, greater, equal
    /// Numerically stable sigmoid cross-entropy: (logits, labels) ->
    /// max(x, 0) - x z + log(1 + exp(-|x|)), elementwise.
    case sigmoidCrossEntropy = "sigmoid_cross_entropy"
}

public enum ReduceOp: String, CaseIterable, Hashable, Sendable {
    case sum = "reduce_sum", mean = "reduce_mean", max = "reduce_max"
}

public enum AllReduceOp: String, CaseIterable, Hashable, Sendable {
    case sum, mean
}

public enum PadMode: String, CaseIterable, Hashable, Sendable {
    /// Fill with `value`.
    case constant
    /// Mirror including the edge element: [a b c] + 2 -> [a b c c b] (TF 'SYMMETRIC').
    case symmetric
}

public enum SampleMode: String, CaseIterable, Hashable, Sendable {
    /// The `stn` package's sampler: corners clamped into the image, weights from the clamped
    /// corners, so samples outside [0, W-1) x [0, H-1) come out 0.
    case clamp
    /// TF's projective sampler: every tap outside the image reads 0.
    case zero
}

public enum WarpGradient: String, CaseIterable, Hashable, Sendable {
    /// TensorFlow's registered gradient (what the original trained with): the cotangent warped
    /// back with the inverse transform. Not the adjoint of the forward op.
    case tf
    /// The exact vector-Jacobian product.
    case exact
}

public struct ConvAttributes: Hashable, Sendable {
    /// [sh, sw]
    public var strides: [Int]
    /// [top, bottom, left, right], zero padding.
    public var padding: [Int]
    public init(strides: [Int], padding: [Int]) {
        self.strides = strides
        self.padding = padding
    }
}

/// An attribute value as written in the text format.
public enum AttributeValue: Hashable, Sendable, CustomStringConvertible {
    case int(Int)
    case float(Float)
    case bool(Bool)
    case word(String)
    case ints([Int])

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return formatFloat(v)
        case .bool(let v): return v ? "true" : "false"
        case .word(let v): return v
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ",") + "]"
        }
    }
}

/// Shortest text that reads back as the same Float.
public func formatFloat(_ v: Float) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v < 0 ? "-inf" : "inf" }
    return v.description
}

public struct AttributeError: Error, CustomStringConvertible {
    public var description: String
}

extension Op {
    /// The op's name in the text format: the kind's, or for unary, binary and reduce ops their own.
    public var name: String {
        switch self {
        case .unary(let u): return u.rawValue
        case .binary(let b): return b.rawValue
        case .reduce(let r, _, _): return r.rawValue
        default: return kind.rawValue
        }
    }

    /// Which case of the registry this op is (exhaustive: a new case of `Op` is a compile error
    /// here, then in `make` and in the tests' `OpSamples`, until each covers it).
    public var kind: OpKind {
        switch self {
        case .unary: return .unary
        case .binary: return .binary
        case .select: return .select
        case .reduce: return .reduce
        case .reshape: return .reshape
        case .transpose: return .transpose
        case .broadcast: return .broadcast
        case .concat: return .concat
        case .slice: return .slice
        case .pad: return .pad
        case .reverse: return .reverse
        case .matmul: return .matmul
        case .conv2d: return .conv2d
        case .conv2dBackpropInput: return .conv2dBackpropInput
        case .conv2dBackpropFilter: return .conv2dBackpropFilter
        case .upsampleNearest: return .upsampleNearest
        case .avgPool: return .avgPool
        case .avgPoolBackprop: return .avgPoolBackprop
        case .maxPool: return .maxPool
        case .maxPoolBackprop: return .maxPoolBackprop
        case .bilinearSample: return .bilinearSample
        case .bilinearSampleGradImage: return .bilinearSampleGradImage
        case .bilinearSampleGradCoords: return .bilinearSampleGradCoords
        case .projectiveWarp: return .projectiveWarp
        case .projectiveWarpTranspose: return .projectiveWarpTranspose
        case .randomUniform: return .randomUniform
        case .randomNormal: return .randomNormal
        case .allReduce: return .allReduce
        case .fused: return .fused
        }
    }

    /// Number of operands, or nil for variadic ops.
    public var arity: Int? {
        switch self {
        case .unary, .reduce, .reshape, .transpose, .broadcast, .slice, .pad, .reverse,
             .upsampleNearest, .avgPool, .avgPoolBackprop, .maxPool, .randomUniform, .randomNormal, .allReduce:
            return 1
        case .binary, .matmul, .conv2d, .conv2dBackpropInput, .conv2dBackpropFilter, .maxPoolBackprop,
             .bilinearSample, .bilinearSampleGradImage, .projectiveWarp, .projectiveWarpTranspose:
            return 2
        case .select, .bilinearSampleGradCoords:
            return 3
        case .concat, .fused:
            return nil
        }
    }

    /// Attributes in their fixed printing order.
    public var attributes: [(String, AttributeValue)] {
        switch self {
        case .unary, .binary, .select: return []
        case .reduce(_, let axes, let keep): return [("axes", .ints(axes)), ("keep_dims", .bool(keep))]
        case .reshape(let s): return [("shape", .ints(s))]
        case .transpose(let p): return [("perm", .ints(p))]
        case .broadcast(let s): return [("shape", .ints(s))]
        case .concat(let a): return [("axis", .int(a))]
        case .slice(let b, let e): return [("begin", .ints(b)), ("end", .ints(e))]
        case .pad(let b, let a, let m, let v):
            return [("before", .ints(b)), ("after", .ints(a)), ("mode", .word(m.rawValue)), ("value", .float(v))]
        case .reverse(let a): return [("axes", .ints(a))]
        case .matmul(let ta, let tb): return [("transpose_a", .bool(ta)), ("transpose_b", .bool(tb))]
        case .conv2d(let c): return Op.convAttributes(c)
        case .conv2dBackpropInput(let c, let s): return Op.convAttributes(c) + [("input_shape", .ints(s))]
        case .conv2dBackpropFilter(let c, let s): return Op.convAttributes(c) + [("filter_shape", .ints(s))]
        case .upsampleNearest(let f): return [("factors", .ints(f))]
        case .avgPool(let w, let s): return [("window", .ints(w)), ("strides", .ints(s))]
        case .avgPoolBackprop(let w, let s, let i):
            return [("window", .ints(w)), ("strides", .ints(s)), ("input_shape", .ints(i))]
        case .maxPool(let w, let s), .maxPoolBackprop(let w, let s): return [("window", .ints(w)), ("strides", .ints(s))]
        case .bilinearSample(let m): return [("mode", .word(m.rawValue))]
        case .bilinearSampleGradImage(let m, let s): return [("mode", .word(m.rawValue)), ("size", .ints(s))]
        case .bilinearSampleGradCoords(let m): return [("mode", .word(m.rawValue))]
        case .projectiveWarp(let inv, let g): return [("inverse", .bool(inv)), ("gradient", .word(g.rawValue))]
        case .projectiveWarpTranspose(let inv): return [("inverse", .bool(inv))]
        case .randomUniform(let s, let k), .randomNormal(let s, let k): return [("shape", .ints(s)), ("key", .int(k))]
        case .allReduce(let r): return [("reduction", .word(r.rawValue))]
        case .fused(let f): return [("kind", .word(f.kind.rawValue))]
        }
    }

    private static func convAttributes(_ c: ConvAttributes) -> [(String, AttributeValue)] {
        [("strides", .ints(c.strides)), ("padding", .ints(c.padding))]
    }

    /// Rebuilds an op from its text name and attributes; throws on unknown names, missing,
    /// extra or ill-typed attributes.
    public static func make(name: String, attributes given: [String: AttributeValue]) throws -> Op {
        var reader = AttributeReader(op: name, values: given)
        let op: Op
        if let u = UnaryOp(rawValue: name) {
            op = .unary(u)
        } else if let b = BinaryOp(rawValue: name) {
            op = .binary(b)
        } else if let r = ReduceOp(rawValue: name) {
            op = .reduce(r, axes: try reader.ints("axes"), keepDims: try reader.bool("keep_dims"))
        } else {
            guard let kind = OpKind(rawValue: name) else { throw AttributeError(description: "unknown op '\(name)'") }
            switch kind {
            case .unary, .binary, .reduce: throw AttributeError(description: "unknown op '\(name)'")  // named by their sub-enums
            case .fused: throw AttributeError(description: "fused kernels are written as fused blocks, not as an op line")
            case .select: op = .select
            case .reshape: op = .reshape(shape: try reader.ints("shape"))
            case .transpose: op = .transpose(perm: try reader.ints("perm"))
            case .broadcast: op = .broadcast(shape: try reader.ints("shape"))
            case .concat: op = .concat(axis: try reader.int("axis"))
            case .slice: op = .slice(begin: try reader.ints("begin"), end: try reader.ints("end"))
            case .pad:
                op = .pad(before: try reader.ints("before"), after: try reader.ints("after"),
                          mode: try reader.word("mode", PadMode.self), value: try reader.float("value"))
            case .reverse: op = .reverse(axes: try reader.ints("axes"))
            case .matmul: op = .matmul(transposeA: try reader.bool("transpose_a"), transposeB: try reader.bool("transpose_b"))
            case .conv2d: op = .conv2d(try reader.conv())
            case .conv2dBackpropInput: op = .conv2dBackpropInput(try reader.conv(), inputShape: try reader.ints("input_shape"))
            case .conv2dBackpropFilter: op = .conv2dBackpropFilter(try reader.conv(), filterShape: try reader.ints("filter_shape"))
            case .upsampleNearest: op = .upsampleNearest(factors: try reader.ints("factors"))
            case .avgPool: op = .avgPool(window: try reader.ints("window"), strides: try reader.ints("strides"))
            case .avgPoolBackprop:
                op = .avgPoolBackprop(window: try reader.ints("window"), strides: try reader.ints("strides"),
                                      inputShape: try reader.ints("input_shape"))
            case .maxPool: op = .maxPool(window: try reader.ints("window"), strides: try reader.ints("strides"))
            case .maxPoolBackprop: op = .maxPoolBackprop(window: try reader.ints("window"), strides: try reader.ints("strides"))
            case .bilinearSample: op = .bilinearSample(mode: try reader.word("mode", SampleMode.self))
            case .bilinearSampleGradImage:
                op = .bilinearSampleGradImage(mode: try reader.word("mode", SampleMode.self), size: try reader.ints("size"))
            case .bilinearSampleGradCoords: op = .bilinearSampleGradCoords(mode: try reader.word("mode", SampleMode.self))
            case .projectiveWarp:
                op = .projectiveWarp(inverse: try reader.bool("inverse"), gradient: try reader.word("gradient", WarpGradient.self))
            case .projectiveWarpTranspose: op = .projectiveWarpTranspose(inverse: try reader.bool("inverse"))
            case .randomUniform: op = .randomUniform(shape: try reader.ints("shape"), key: try reader.int("key"))
            case .randomNormal: op = .randomNormal(shape: try reader.ints("shape"), key: try reader.int("key"))
            case .allReduce: op = .allReduce(try reader.word("reduction", AllReduceOp.self))
            }
        }
        try reader.finish()
        return op
    }
}

/// Reads typed attributes and remembers which were used, so extra ones are reported.
private struct AttributeReader {
    let op: String
    let values: [String: AttributeValue]
    var used: Set<String> = []

    init(op: String, values: [String: AttributeValue]) {
        self.op = op
        self.values = values
    }

    mutating func get(_ key: String) throws -> AttributeValue {
        guard let v = values[key] else { throw AttributeError(description: "\(op): missing attribute '\(key)'") }
        used.insert(key)
        return v
    }

    func wrong(_ key: String, _ v: AttributeValue, _ expected: String) -> AttributeError {
        AttributeError(description: "\(op): attribute '\(key)' must be \(expected), got \(v)")
    }

    mutating func ints(_ key: String) throws -> [Int] {
        let v = try get(key)
        if case .ints(let x) = v { return x }
        throw wrong(key, v, "a list of integers")
    }

    mutating func int(_ key: String) throws -> Int {
        let v = try get(key)
        if case .int(let x) = v { return x }
        throw wrong(key, v, "an integer")
    }

    mutating func float(_ key: String) throws -> Float {
        let v = try get(key)
        if case .float(let x) = v { return x }
        if case .int(let x) = v { return Float(x) }
        throw wrong(key, v, "a number")
    }

    mutating func bool(_ key: String) throws -> Bool {
        let v = try get(key)
        if case .bool(let x) = v { return x }
        throw wrong(key, v, "true or false")
    }

    mutating func word<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) throws -> E where E.RawValue == String {
        let v = try get(key)
        if case .word(let w) = v, let e = E(rawValue: w) { return e }
        throw wrong(key, v, "one of " + E.allCases.map(\.rawValue).joined(separator: ", "))
    }

    mutating func conv() throws -> ConvAttributes {
        ConvAttributes(strides: try ints("strides"), padding: try ints("padding"))
    }

    func finish() throws {
        let extra = Set(values.keys).subtracting(used).sorted()
        if !extra.isEmpty {
            throw AttributeError(description: "\(op): unknown attribute(s) " + extra.map { "'\($0)'" }.joined(separator: ", "))
        }
    }
}
