/// Analytic floating-point operation counts (a multiply-add counts 2), for reports and GFLOP/s.
extension Op {
    public func flops(operands s: [[Int]], result r: [Int]) -> Int {
        let out = Shape.count(r)
        switch self {
        case .unary, .binary, .select:
            return out
        case .reduce:
            return Shape.count(s[0])
        case .matmul(let ta, _):
            let a = s[0]
            let k = ta ? a[a.count - 2] : a[a.count - 1]
            return 2 * out * k
        case .conv2d:
            let k = s[1]
            return 2 * out * k[0] * k[1] * k[2]
        case .conv2dBackpropInput:
            let k = s[1]
            return 2 * Shape.count(s[0]) * k[0] * k[1] * k[2]
        case .conv2dBackpropFilter:
            return 2 * Shape.count(s[1]) * r[0] * r[1] * r[2]
        case .maxPool(let w, _), .maxPoolBackprop(let w, _):
            return max(out, Shape.count(s[0])) * w[0] * w[1]
        case .avgPool(let w, _), .avgPoolBackprop(let w, _, _):
            return max(out, Shape.count(s[0])) * w[0] * w[1] / max(1, w[0] * w[1]) * 2
        case .bilinearSample, .bilinearSampleGradImage, .bilinearSampleGradCoords, .projectiveWarp, .projectiveWarpTranspose:
            return 8 * max(out, Shape.count(s[0]))
        case .randomUniform, .randomNormal:
            return out
        case .allReduce:
            return 0  // communication, not arithmetic
        case .fused(let f):
            return f.body.flops
        case .reshape, .transpose, .broadcast, .concat, .slice, .pad, .reverse, .upsampleNearest:
            return 0
        }
    }
}

extension Graph {
    /// Total analytic FLOPs of every op value.
    public var flops: Int {
        values.reduce(0) { total, v in
            guard case .op(let op, let operands) = v.definition else { return total }
            return total + op.flops(operands: operands.map { self[$0].shape }, result: v.shape)
        }
    }
}
