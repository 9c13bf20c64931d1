import GraphIR

/// One op with operands to run it on, and what its gradient should be.
public struct OpSample: CustomStringConvertible {
    public enum Gradient {
        /// Finite differences with respect to the operands marked true (the others enter as constants).
        case checked([Bool], eps: Float)
        /// No gradient flows: autodiff says so (an error) or gives zeros.
        case none
        /// Differentiable, but by a rule finite differences do not reproduce (TF's approximate warp gradient).
        case notChecked(String)
    }

    public let op: Op
    public let operands: [Tensor]
    public let gradient: Gradient
    public var description: String { "\(op.name) \(op.attributes.map { "\($0.0)=\($0.1)" }.joined(separator: " ")) on \(operands.map { Shape.describe($0.shape) })" }
}

/// Samples of every op kind: the exhaustive switch over `OpKind` fails to compile when an op is
/// added, and the tests that walk `OpSamples.all` (text round trip, the CPU backend against the
/// interpreter, gradients) then fail until every layer handles it.
public enum OpSamples {
    public static var all: [OpSample] { OpKind.allCases.flatMap(samples) }

    /// Values in [-1, -0.15] U [0.15, 1]: away from the kinks of relu, abs, sign and friends.
    static func awayFromZero(_ shape: [Int], seed: UInt64) -> Tensor {
        var t = randomTensor(shape, seed: seed)
        t.scalars = t.scalars.map { $0 < 0 ? $0 * 0.85 - 0.15 : $0 * 0.85 + 0.15 }
        return t
    }

    /// Pixel coordinates with fractional parts in [0.25, 0.75] (away from the sampler's kinks), some outside the image.
    static func coords(_ shape: [Int], w: Int, h: Int, seed: UInt64) -> Tensor {
        var t = randomTensor(shape, seed: seed, lo: 0, hi: 1)
        for i in 0..<t.count {
            let limit = Float(i % 2 == 0 ? w : h) + 1
            t.scalars[i] = (t.scalars[i] * (limit + 1)).rounded(.down) - 1 + 0.25 + 0.5 * CounterRandom.uniform(seed: seed, key: 3, counter: UInt64(i))
        }
        return t
    }

    static func sample(_ op: Op, _ operands: [Tensor], _ gradient: OpSample.Gradient) -> OpSample {
        OpSample(op: op, operands: operands, gradient: gradient)
    }

    static func all(_ n: Int, eps: Float = 1e-2) -> OpSample.Gradient { .checked([Bool](repeating: true, count: n), eps: eps) }

    public static func samples(_ kind: OpKind) -> [OpSample] {
        let x = awayFromZero([2, 3, 4], seed: 1)
        let image = randomTensor([2, 5, 6, 3], seed: 2)
        switch kind {
        case .unary:
            return UnaryOp.allCases.map { u in
                switch u {
                case .log, .sqrt: return sample(.unary(u), [randomTensor([3, 4], seed: 3, lo: 0.5, hi: 2)], all(1))
                case .floor, .round, .sign, .stopGradient: return sample(.unary(u), [x], .none)
                default: return sample(.unary(u), [x], all(1))
                }
            }
        case .binary:
            let y = awayFromZero([3, 1], seed: 4)
            return BinaryOp.allCases.map { op in
                switch op {
                case .less, .greater, .equal: return sample(.binary(op), [x, y], .none)
                // |x - y| > eps everywhere: x is >= 0.15 away from 0, y within 0.05 of it.
                case .maximum, .minimum: return sample(.binary(op), [x, Tensor(shape: [3, 1], scalars: [0, 0.04, -0.05])], all(2))
                case .pow: return sample(.binary(op), [randomTensor([2, 3], seed: 5, lo: 0.5, hi: 2), randomTensor([3], seed: 6, lo: -1.5, hi: 2)], all(2))
                default: return sample(.binary(op), [x, y], all(2))
                }
            }
        case .select:
            return [sample(.select, [Tensor(shape: [2, 3], scalars: [1, 0, 1, 0, 0, 1]), awayFromZero([2, 3], seed: 7), awayFromZero([3], seed: 8)],
                           .checked([false, true, true], eps: 1e-2))]
        case .reduce:
            return ReduceOp.allCases.flatMap { r in [false, true].map { sample(.reduce(r, axes: [0, 2], keepDims: $0), [x], all(1)) } }
        case .reshape: return [sample(.reshape(shape: [4, 6]), [x], all(1))]
        case .transpose: return [sample(.transpose(perm: [2, 0, 1]), [x], all(1))]
        case .broadcast: return [sample(.broadcast(shape: [2, 3, 4]), [randomTensor([3, 1], seed: 9)], all(1))]
        case .concat: return [sample(.concat(axis: 1), [x, randomTensor([2, 2, 4], seed: 10), x], all(3))]
        case .slice: return [sample(.slice(begin: [1, 0, 1], end: [2, 2, 4]), [x], all(1))]
        case .pad: return PadMode.allCases.map { sample(.pad(before: [1, 2, 0], after: [0, 2, 3], mode: $0, value: 0.5), [x], all(1)) }
        case .reverse: return [sample(.reverse(axes: [0, 2]), [x], all(1))]
        case .matmul:
            return [false, true].flatMap { ta in [false, true].map { tb in
                sample(.matmul(transposeA: ta, transposeB: tb), [randomTensor(ta ? [2, 4, 3] : [2, 3, 4], seed: 11), randomTensor(tb ? [2, 5, 4] : [2, 4, 5], seed: 12)], all(2))
            } }
        case .conv2d:
            let k = randomTensor([3, 3, 3, 4], seed: 13)
            return [sample(.conv2d(ConvAttributes(strides: [1, 1], padding: [1, 1, 1, 1])), [image, k], all(2)),
                    sample(.conv2d(ConvAttributes(strides: [2, 2], padding: [0, 1, 0, 1])), [image, k], all(2))]
        case .conv2dBackpropInput:
            let c = ConvAttributes(strides: [2, 2], padding: [0, 1, 0, 1])
            return [sample(.conv2dBackpropInput(c, inputShape: [2, 5, 6, 3]), [randomTensor([2, 2, 3, 4], seed: 14), randomTensor([3, 3, 3, 4], seed: 15)], all(2))]
        case .conv2dBackpropFilter:
            let c = ConvAttributes(strides: [1, 1], padding: [1, 1, 1, 1])
            return [sample(.conv2dBackpropFilter(c, filterShape: [3, 3, 3, 4]), [image, randomTensor([2, 5, 6, 4], seed: 16)], all(2))]
        case .upsampleNearest: return [sample(.upsampleNearest(factors: [2, 3]), [randomTensor([1, 3, 4, 2], seed: 17)], all(1))]
        case .avgPool: return [sample(.avgPool(window: [2, 3], strides: [2, 2]), [image], all(1))]
        case .avgPoolBackprop:
            return [sample(.avgPoolBackprop(window: [2, 3], strides: [2, 2], inputShape: [2, 5, 6, 3]), [randomTensor([2, 2, 2, 3], seed: 18)], all(1))]
        case .maxPool: return [sample(.maxPool(window: [3, 3], strides: [1, 2]), [image], all(1))]
        case .maxPoolBackprop:
            return [sample(.maxPoolBackprop(window: [3, 3], strides: [1, 2]), [image, randomTensor([2, 3, 2, 3], seed: 19)], .none)]
        case .bilinearSample:
            let xy = coords([2, 3, 4, 2], w: 6, h: 5, seed: 21)
            return SampleMode.allCases.map { sample(.bilinearSample(mode: $0), [image, xy], all(2, eps: 1e-3)) }
        case .bilinearSampleGradImage:
            let xy = coords([2, 3, 4, 2], w: 6, h: 5, seed: 22)
            return SampleMode.allCases.map { sample(.bilinearSampleGradImage(mode: $0, size: [5, 6]), [randomTensor([2, 3, 4, 3], seed: 23), xy], .none) }
        case .bilinearSampleGradCoords:
            let xy = coords([2, 3, 4, 2], w: 6, h: 5, seed: 24)
            return SampleMode.allCases.map { sample(.bilinearSampleGradCoords(mode: $0), [image, xy, randomTensor([2, 3, 4, 3], seed: 25)], .none) }
        case .projectiveWarp, .projectiveWarpTranspose:
            let t = Tensor(shape: [2, 8], scalars: [1.05, 0.1, -0.4, -0.05, 0.95, 0.3, 0.01, -0.02, 0.9, -0.1, 0.5, 0.08, 1.1, -0.2, -0.015, 0.02])
            if kind == .projectiveWarpTranspose {
                return [false, true].map { sample(.projectiveWarpTranspose(inverse: $0), [image, t], .checked([true, false], eps: 1e-2)) }
            }
            return [false, true].flatMap { inv in
                [sample(.projectiveWarp(inverse: inv, gradient: .exact), [image, t], .checked([true, false], eps: 1e-2)),
                 sample(.projectiveWarp(inverse: inv, gradient: .tf), [image, t], .notChecked("TF's gradient warps back with the inverse transform: an approximation"))]
            }
        case .randomUniform: return [sample(.randomUniform(shape: [3, 5], key: 7), [Tensor(3)], .none)]
        case .randomNormal: return [sample(.randomNormal(shape: [4, 3], key: 8), [Tensor(5)], .none)]
        case .allReduce:
            // One rank: the identity, which the single-rank pass removes before the CPU backend sees it.
            return AllReduceOp.allCases.map { sample(.allReduce($0), [x], all(1)) }
        case .fused:
            let b = GraphBuilder(name: "body")
            let a0 = b.input("arg0", [2, 3, 4]), a1 = b.input("arg1", [3, 1])
            b.output("out", b.unary(.tanh, b.add(b.mul(a0, a1), 0.5)))
            return [sample(.fused(FusedKernel(kind: .loop, body: try! b.finish())), [x, awayFromZero([3, 1], seed: 26)], .none)]
        }
    }
}
