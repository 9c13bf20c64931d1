import GraphIR

public struct AutodiffError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The gradient rule of every op, written as IR. Given the op's operands `x`, its result `y` and
/// the cotangent `g` of `y`, returns one cotangent per operand (nil: no gradient flows there;
/// comparisons, floor, round, sign, stop_gradient, random draws, a select's condition and a
/// projective warp's transforms). Only operands with `needs[i]` are computed.
enum GradientRules {
    static func cotangents(_ op: Op, x: [ValueID], y: ValueID, g: ValueID, needs: [Bool], b: GraphBuilder) throws -> [ValueID?] {
        func shape(_ v: ValueID) -> [Int] { b.shape(v) }
        func zeroLike(_ v: ValueID) -> ValueID { b.constant(0, shape: shape(v)) }
        /// Reduces a broadcast cotangent back to the operand's shape.
        func reduce(_ gx: ValueID, to v: ValueID) -> ValueID { b.sumToShape(gx, shape(v)) }
        func notDifferentiable(_ i: Int) throws -> ValueID? {
            if needs[i] { throw AutodiffError("\(op.name) is not differentiable with respect to operand \(i)") }
            return nil
        }

        switch op {
        case .unary(let u):
            let a = x[0]
            switch u {
            case .neg: return [b.neg(g)]
            case .exp: return [b.mul(g, y)]
            case .log: return [b.div(g, a)]
            case .sqrt: return [b.div(g, b.mul(y, 2))]
            case .abs: return [b.mul(g, b.unary(.sign, a))]
            // From the result (y > 0 exactly where a > 0): the pre-activation is then not needed
            // after the forward pass, so conv + bias + ReLU fuse into one kernel in training graphs too.
            case .relu: return [b.mul(g, b.binary(.greater, y, b.constant(0)))]
            case .sigmoid: return [b.mul(g, b.mul(y, b.sub(b.constant(1), y)))]
            case .tanh: return [b.mul(g, b.sub(b.constant(1), b.mul(y, y)))]
            case .sin: return [b.mul(g, b.unary(.cos, a))]
            case .cos: return [b.neg(b.mul(g, b.unary(.sin, a)))]
            case .floor, .round, .sign, .stopGradient: return [nil]
            }

        case .binary(let bin):
            let (l, r) = (x[0], x[1])
            switch bin {
            case .add:
                return [needs[0] ? reduce(g, to: l) : nil, needs[1] ? reduce(g, to: r) : nil]
            case .sub:
                return [needs[0] ? reduce(g, to: l) : nil, needs[1] ? reduce(b.neg(g), to: r) : nil]
            case .mul:
                return [needs[0] ? reduce(b.mul(g, r), to: l) : nil, needs[1] ? reduce(b.mul(g, l), to: r) : nil]
            case .div:
                return [needs[0] ? reduce(b.div(g, r), to: l) : nil,
                        needs[1] ? reduce(b.neg(b.div(b.mul(g, y), r)), to: r) : nil]
            case .pow:
                // d/dl = r l^(r-1); d/dr = y log(l), taken as 0 where l <= 0 (as TensorFlow).
                let gl = needs[0] ? reduce(b.mul(g, b.mul(r, b.binary(.pow, l, b.sub(r, 1)))), to: l) : nil
                var gr: ValueID? = nil
                if needs[1] {
                    let positive = b.binary(.greater, l, b.constant(0))
                    let safeLog = b.select(positive, b.log(b.select(positive, l, b.constant(1))), b.constant(0))
                    gr = reduce(b.mul(g, b.mul(y, safeLog)), to: r)
                }
                return [gl, gr]
            case .maximum, .minimum:
                // Ties go to the first operand, as TensorFlow's Maximum/Minimum gradients.
                let secondWins = bin == .maximum ? b.binary(.less, l, r) : b.binary(.greater, l, r)
                let firstWins = b.sub(b.constant(1), secondWins)
                return [needs[0] ? reduce(b.mul(g, firstWins), to: l) : nil,
                        needs[1] ? reduce(b.mul(g, secondWins), to: r) : nil]
            case .less, .greater, .equal:
                return [nil, nil]
            case .sigmoidCrossEntropy:
                return [needs[0] ? reduce(b.mul(g, b.sub(b.sigmoid(l), r)), to: l) : nil,
                        needs[1] ? reduce(b.neg(b.mul(g, l)), to: r) : nil]
            }

        case .select:
            let zero = b.constant(0)
            return [nil,
                    needs[1] ? reduce(b.select(x[0], g, zero), to: x[1]) : nil,
                    needs[2] ? reduce(b.select(x[0], zero, g), to: x[2]) : nil]

        case .reduce(let r, let axes, let keep):
            let xs = shape(x[0])
            var kept = xs
            for a in axes { kept[a] = 1 }
            let gk = keep ? g : b.reshape(g, kept)
            switch r {
            case .sum:
                return [b.broadcast(gk, to: xs)]
            case .mean:
                let n = axes.reduce(1) { $0 * xs[$1] }
                return [b.broadcast(b.div(gk, Float(max(n, 1))), to: xs)]
            case .max:
                // Split equally among ties (as TensorFlow).
                let yk = keep ? y : b.reshape(y, kept)
                let mask = b.binary(.equal, x[0], b.broadcast(yk, to: xs))
                let count = b.sum(mask, axes: axes, keepDims: true)
                return [b.mul(mask, b.broadcast(b.div(gk, count), to: xs))]
            }

        case .reshape:
            return [b.reshape(g, shape(x[0]))]
        case .transpose(let perm):
            var inverse = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            return [b.transpose(g, inverse)]
        case .broadcast:
            return [reduce(g, to: x[0])]
        case .concat(let axis):
            var start = 0
            let gs = shape(g)
            return x.enumerated().map { i, v in
                let n = shape(v)[axis]
                defer { start += n }
                if !needs[i] { return nil }
                var begin = [Int](repeating: 0, count: gs.count), end = gs
                begin[axis] = start
                end[axis] = start + n
                return b.slice(g, begin: begin, end: end)
            }
        case .slice(let begin, let end):
            let xs = shape(x[0])
            let after = (0..<xs.count).map { xs[$0] - end[$0] }
            return [b.apply(.pad(before: begin, after: after, mode: .constant, value: 0), [g])]
        case .pad(let before, let after, let mode, _):
            let xs = shape(x[0])
            if mode == .constant {
                return [b.slice(g, begin: before, end: (0..<xs.count).map { before[$0] + xs[$0] })]
            }
            return [symmetricPadGradient(g, xs, before, after, b)]
        case .reverse(let axes):
            return [b.apply(.reverse(axes: axes), [g])]

        case .matmul(let ta, let tb):
            let (a, m) = (x[0], x[1])
            var ga: ValueID? = nil, gm: ValueID? = nil
            switch (ta, tb) {
            case (false, false):
                if needs[0] { ga = b.matmul(g, m, transposeB: true) }
                if needs[1] { gm = b.matmul(a, g, transposeA: true) }
            case (true, false):
                if needs[0] { ga = b.matmul(m, g, transposeB: true) }
                if needs[1] { gm = b.matmul(a, g) }
            case (false, true):
                if needs[0] { ga = b.matmul(g, m) }
                if needs[1] { gm = b.matmul(g, a, transposeA: true) }
            case (true, true):
                if needs[0] { ga = b.matmul(m, g, transposeA: true, transposeB: true) }
                if needs[1] { gm = b.matmul(g, a, transposeA: true, transposeB: true) }
            }
            return [ga, gm]

        case .conv2d(let c):
            return [needs[0] ? b.apply(.conv2dBackpropInput(c, inputShape: shape(x[0])), [g, x[1]]) : nil,
                    needs[1] ? b.apply(.conv2dBackpropFilter(c, filterShape: shape(x[1])), [x[0], g]) : nil]
        case .conv2dBackpropInput(let c, _):
            // y = adjoint of conv in x: <u, y(dy, k)> = <conv(u, k), dy>.
            let (dy, k) = (x[0], x[1])
            return [needs[0] ? b.apply(.conv2d(c), [g, k]) : nil,
                    needs[1] ? b.apply(.conv2dBackpropFilter(c, filterShape: shape(k)), [g, dy]) : nil]
        case .conv2dBackpropFilter(let c, _):
            // <u, y(x, dy)> = <conv(x, u), dy>.
            let (xi, dy) = (x[0], x[1])
            return [needs[0] ? b.apply(.conv2dBackpropInput(c, inputShape: shape(xi)), [dy, g]) : nil,
                    needs[1] ? b.apply(.conv2d(c), [xi, g]) : nil]

        case .upsampleNearest(let f):
            let s = shape(x[0])
            let split = b.reshape(g, [s[0], s[1], f[0], s[2], f[1], s[3]])
            return [b.sum(split, axes: [2, 4])]
        case .avgPool(let w, let st):
            return [b.apply(.avgPoolBackprop(window: w, strides: st, inputShape: shape(x[0])), [g])]
        case .avgPoolBackprop(let w, let st, _):
            return [b.apply(.avgPool(window: w, strides: st), [g])]
        case .maxPool(let w, let st):
            return [b.apply(.maxPoolBackprop(window: w, strides: st), [x[0], g])]
        case .maxPoolBackprop:
            return try x.indices.map { try notDifferentiable($0) }

        case .bilinearSample(let mode):
            let s = shape(x[0])
            return [needs[0] ? b.apply(.bilinearSampleGradImage(mode: mode, size: [s[1], s[2]]), [g, x[1]]) : nil,
                    needs[1] ? b.apply(.bilinearSampleGradCoords(mode: mode), [x[0], x[1], g]) : nil]
        case .bilinearSampleGradImage, .bilinearSampleGradCoords:
            return try x.indices.map { try notDifferentiable($0) }

        case .projectiveWarp(let inverse, let gradient):
            switch gradient {
            case .tf: return [b.apply(.projectiveWarp(inverse: !inverse, gradient: .tf), [g, x[1]]), nil]
            case .exact: return [b.apply(.projectiveWarpTranspose(inverse: inverse), [g, x[1]]), nil]
            }
        case .projectiveWarpTranspose(let inverse):
            return [b.apply(.projectiveWarp(inverse: inverse, gradient: .exact), [g, x[1]]), nil]

        case .randomUniform, .randomNormal:
            return [nil]
        case .allReduce(let r):
            // Every rank's output depends on every rank's operand with weight 1 (sum) or 1/N (mean).
            return [b.apply(.allReduce(r), [g])]
        case .fused:
            // Fusion runs after differentiation; a fused graph is not differentiated again.
            return try x.indices.map { try notDifferentiable($0) }
        }
    }

    /// Symmetric padding mirrors edge elements into the pad; their cotangents fold back onto the
    /// elements they copied. Axis by axis: centre slice + reversed before-pad + reversed after-pad.
    static func symmetricPadGradient(_ g: ValueID, _ xs: [Int], _ before: [Int], _ after: [Int], _ b: GraphBuilder) -> ValueID {
        var cur = g
        for axis in 0..<xs.count where before[axis] > 0 || after[axis] > 0 {
            let cs = b.shape(cur)
            let n = xs[axis], p = before[axis], q = after[axis]
            func part(_ from: Int, _ to: Int) -> ValueID {
                var begin = [Int](repeating: 0, count: cs.count), end = cs
                begin[axis] = from
                end[axis] = to
                return b.slice(cur, begin: begin, end: end)
            }
            func padAxis(_ v: ValueID, _ lo: Int, _ hi: Int) -> ValueID {
                var bb = [Int](repeating: 0, count: cs.count), aa = bb
                bb[axis] = lo
                aa[axis] = hi
                return b.apply(.pad(before: bb, after: aa, mode: .constant, value: 0), [v])
            }
            var acc = part(p, p + n)
            if p > 0 { acc = b.add(acc, padAxis(b.apply(.reverse(axes: [axis]), [part(0, p)]), 0, n - p)) }
            if q > 0 { acc = b.add(acc, padAxis(b.apply(.reverse(axes: [axis]), [part(p + n, p + n + q)]), n - q, 0)) }
            cur = acc
        }
        return cur
    }
}
