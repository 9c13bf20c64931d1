/// The shape rule of every op: result shape from operand shapes and attributes. Errors name the
/// op and the shapes involved.
public struct ShapeError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Op {
    public func resultShape(_ s: [[Int]]) throws -> [Int] {
        func fail(_ why: String) -> ShapeError {
            ShapeError("\(name): \(why) (operand shapes " + s.map(Shape.describe).joined(separator: ", ") + ")")
        }
        if let n = arity, s.count != n { throw fail("expects \(n) operand(s), got \(s.count)") }

        func checkAxes(_ axes: [Int], rank: Int, unique: Bool = true) throws {
            for a in axes where a < 0 || a >= rank { throw fail("axis \(a) out of range for rank \(rank)") }
            if unique && Set(axes).count != axes.count { throw fail("repeated axis in \(axes)") }
        }
        func requireRank(_ shape: [Int], _ r: Int, _ what: String) throws {
            if shape.count != r { throw fail("\(what) must have rank \(r)") }
        }
        func pair(_ v: [Int], _ what: String, positive: Bool = true) throws {
            if v.count != 2 { throw fail("\(what) must have 2 entries, got \(v)") }
            if positive && v.contains(where: { $0 < 1 }) { throw fail("\(what) must be positive, got \(v)") }
        }
        func convOutput(_ x: [Int], _ k: [Int], _ c: ConvAttributes) throws -> [Int] {
            try requireRank(x, 4, "input (NHWC)")
            try requireRank(k, 4, "kernel (HWIO)")
            try pair(c.strides, "strides")
            if c.padding.count != 4 || c.padding.contains(where: { $0 < 0 }) {
                throw fail("padding must be [top, bottom, left, right] >= 0, got \(c.padding)")
            }
            if x[3] != k[2] { throw fail("input has \(x[3]) channels but kernel expects \(k[2])") }
            let h = x[1] + c.padding[0] + c.padding[1] - k[0]
            let w = x[2] + c.padding[2] + c.padding[3] - k[1]
            if h < 0 || w < 0 { throw fail("kernel larger than padded input") }
            return [x[0], h / c.strides[0] + 1, w / c.strides[1] + 1, k[3]]
        }

        switch self {
        case .unary:
            return s[0]
        case .binary:
            guard let r = Shape.broadcast(s) else { throw fail("shapes do not broadcast") }
            return r
        case .select:
            guard let r = Shape.broadcast(s) else { throw fail("shapes do not broadcast") }
            return r
        case .reduce(_, let axes, let keep):
            try checkAxes(axes, rank: s[0].count)
            var out: [Int] = []
            for (i, d) in s[0].enumerated() {
                if axes.contains(i) { if keep { out.append(1) } } else { out.append(d) }
            }
            return out
        case .reshape(let shape):
            if shape.contains(where: { $0 < 0 }) { throw fail("negative dimension in \(shape)") }
            if Shape.count(shape) != Shape.count(s[0]) {
                throw fail("cannot reshape \(Shape.count(s[0])) elements to \(Shape.describe(shape))")
            }
            return shape
        case .transpose(let perm):
            if perm.count != s[0].count || Set(perm) != Set(0..<s[0].count) {
                throw fail("perm \(perm) is not a permutation of 0..<\(s[0].count)")
            }
            return perm.map { s[0][$0] }
        case .broadcast(let shape):
            if shape.contains(where: { $0 < 0 }) { throw fail("negative dimension in \(shape)") }
            guard let r = Shape.broadcast([s[0], shape]), r == shape else {
                throw fail("cannot broadcast to \(Shape.describe(shape))")
            }
            return shape
        case .concat(let axis):
            guard let first = s.first else { throw fail("needs at least one operand") }
            try checkAxes([axis], rank: first.count)
            var total = 0
            for shape in s {
                if shape.count != first.count { throw fail("operands differ in rank") }
                for i in 0..<shape.count where i != axis && shape[i] != first[i] {
                    throw fail("operands differ on axis \(i), which is not the concat axis \(axis)")
                }
                total += shape[axis]
            }
            var out = first
            out[axis] = total
            return out
        case .slice(let begin, let end):
            let x = s[0]
            if begin.count != x.count || end.count != x.count { throw fail("begin/end need \(x.count) entries") }
            for i in 0..<x.count where !(0 <= begin[i] && begin[i] <= end[i] && end[i] <= x[i]) {
                throw fail("slice [\(begin[i]), \(end[i])) out of range on axis \(i)")
            }
            return zip(begin, end).map { $1 - $0 }
        case .pad(let before, let after, let mode, _):
            let x = s[0]
            if before.count != x.count || after.count != x.count { throw fail("before/after need \(x.count) entries") }
            for i in 0..<x.count {
                if before[i] < 0 || after[i] < 0 { throw fail("negative padding on axis \(i)") }
                if mode == .symmetric && (before[i] > x[i] || after[i] > x[i]) {
                    throw fail("symmetric padding larger than the axis \(i) (size \(x[i]))")
                }
            }
            return (0..<x.count).map { x[$0] + before[$0] + after[$0] }
        case .reverse(let axes):
            try checkAxes(axes, rank: s[0].count)
            return s[0]
        case .matmul(let ta, let tb):
            let a = s[0], b = s[1]
            if a.count < 2 || a.count != b.count { throw fail("operands need equal rank >= 2") }
            let r = a.count
            if Array(a[0..<r - 2]) != Array(b[0..<r - 2]) { throw fail("batch dimensions differ") }
            let (m, ka) = ta ? (a[r - 1], a[r - 2]) : (a[r - 2], a[r - 1])
            let (kb, n) = tb ? (b[r - 1], b[r - 2]) : (b[r - 2], b[r - 1])
            if ka != kb { throw fail("contraction sizes differ: \(ka) vs \(kb)") }
            return Array(a[0..<r - 2]) + [m, n]
        case .conv2d(let c):
            return try convOutput(s[0], s[1], c)
        case .conv2dBackpropInput(let c, let inputShape):
            let y = try convOutput(inputShape, s[1], c)
            if y != s[0] { throw fail("gradient shape must be the conv output \(Shape.describe(y))") }
            return inputShape
        case .conv2dBackpropFilter(let c, let filterShape):
            let y = try convOutput(s[0], filterShape, c)
            if y != s[1] { throw fail("gradient shape must be the conv output \(Shape.describe(y))") }
            return filterShape
        case .upsampleNearest(let f):
            try requireRank(s[0], 4, "input (NHWC)")
            try pair(f, "factors")
            return [s[0][0], s[0][1] * f[0], s[0][2] * f[1], s[0][3]]
        case .avgPool(let w, let st), .maxPool(let w, let st):
            try requireRank(s[0], 4, "input (NHWC)")
            try pair(w, "window")
            try pair(st, "strides")
            if s[0][1] < w[0] || s[0][2] < w[1] { throw fail("window larger than input") }
            return [s[0][0], (s[0][1] - w[0]) / st[0] + 1, (s[0][2] - w[1]) / st[1] + 1, s[0][3]]
        case .avgPoolBackprop(let w, let st, let inputShape):
            let y = try Op.avgPool(window: w, strides: st).resultShape([inputShape])
            if y != s[0] { throw fail("gradient shape must be the pooled shape \(Shape.describe(y))") }
            return inputShape
        case .maxPoolBackprop(let w, let st):
            let y = try Op.maxPool(window: w, strides: st).resultShape([s[0]])
            if y != s[1] { throw fail("gradient shape must be the pooled shape \(Shape.describe(y))") }
            return s[0]
        case .bilinearSample:
            try requireRank(s[0], 4, "image (NHWC)")
            try requireRank(s[1], 4, "coords [N,Ho,Wo,2]")
            if s[1][0] != s[0][0] || s[1][3] != 2 { throw fail("coords must be [\(s[0][0]),Ho,Wo,2]") }
            return [s[0][0], s[1][1], s[1][2], s[0][3]]
        case .bilinearSampleGradImage(_, let size):
            try requireRank(s[0], 4, "gradient (NHWC)")
            try requireRank(s[1], 4, "coords [N,Ho,Wo,2]")
            try pair(size, "size")
            if s[1] != [s[0][0], s[0][1], s[0][2], 2] { throw fail("coords must match the gradient's N, Ho, Wo") }
            return [s[0][0], size[0], size[1], s[0][3]]
        case .bilinearSampleGradCoords:
            let y = try Op.bilinearSample(mode: .zero).resultShape([s[0], s[1]])
            if y != s[2] { throw fail("gradient shape must be the sample shape \(Shape.describe(y))") }
            return s[1]
        case .projectiveWarp, .projectiveWarpTranspose:
            try requireRank(s[0], 4, "images (NHWC)")
            if s[1] != [s[0][0], 8] { throw fail("transforms must be [\(s[0][0]),8]") }
            return s[0]
        case .fused(let f):
            let inputs = f.body.inputs
            if inputs.count != s.count { throw fail("body has \(inputs.count) inputs for \(s.count) operands") }
            for (i, id) in inputs.enumerated() {
                if f.body[id].name != "arg\(i)" { throw fail("body input \(i) must be named arg\(i)") }
                if f.body[id].shape != s[i] { throw fail("body input arg\(i) is \(Shape.describe(f.body[id].shape)) but operand \(i) is \(Shape.describe(s[i]))") }
            }
            if f.body.outputs.count != 1 { throw fail("body must have exactly one output") }
            if !f.body.updates.isEmpty || !f.body.parameters.isEmpty { throw fail("body cannot have parameters or updates") }
            do { try f.body.verify() } catch { throw fail("body: \(error)") }
            return f.body[f.body.outputs[0].value].shape
        case .allReduce:
            return s[0]
        case .randomUniform(let shape, _), .randomNormal(let shape, _):
            if shape.contains(where: { $0 < 0 }) { throw fail("negative dimension in \(shape)") }
            if Shape.count(s[0]) != 1 { throw fail("seed must be a single value") }
            return shape
        }
    }
}
