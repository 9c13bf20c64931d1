import Foundation
import GraphIR

/// The reference kernel of every op: plain loops, double accumulation in reductions, matmul and
/// convolution. This is the oracle every faster kernel is tested against; keep it obvious.
public enum ReferenceKernels {
    public static func run(_ op: Op, _ a: [Tensor], shape: [Int]) -> Tensor {
        switch op {
        case .unary(let u): return unary(u, a[0])
        case .binary(let b): return binary(b, a[0], a[1], shape)
        case .select: return select(a[0], a[1], a[2], shape)
        case .reduce(let r, let axes, _): return reduce(r, a[0], axes: axes, shape: shape)
        case .reshape: return Tensor(shape: shape, scalars: a[0].scalars)
        case .transpose(let perm): return transpose(a[0], perm, shape)
        case .broadcast: return broadcast(a[0], shape)
        case .concat(let axis): return concat(a, axis: axis, shape)
        case .slice(let begin, _): return slice(a[0], begin, shape)
        case .pad(let before, _, let mode, let value): return pad(a[0], before, mode, value, shape)
        case .reverse(let axes): return reverse(a[0], axes)
        case .matmul(let ta, let tb): return matmul(a[0], a[1], ta, tb, shape)
        case .conv2d(let c): return conv2d(a[0], a[1], c, shape)
        case .conv2dBackpropInput(let c, _): return conv2dBackpropInput(a[0], a[1], c, shape)
        case .conv2dBackpropFilter(let c, _): return conv2dBackpropFilter(a[0], a[1], c, shape)
        case .upsampleNearest(let f): return upsample(a[0], f, shape)
        case .avgPool(let w, let s): return avgPool(a[0], w, s, shape)
        case .avgPoolBackprop(let w, let s, _): return avgPoolBackprop(a[0], w, s, shape)
        case .maxPool(let w, let s): return maxPool(a[0], w, s, shape, gradient: nil)
        case .maxPoolBackprop(let w, let s): return maxPool(a[0], w, s, a[0].shape, gradient: a[1])
        case .bilinearSample(let mode): return Sampling.sample(a[0], a[1], mode)
        case .bilinearSampleGradImage(let mode, _): return Sampling.gradImage(a[0], a[1], mode, shape)
        case .bilinearSampleGradCoords(let mode): return Sampling.gradCoords(a[0], a[1], a[2], mode)
        case .projectiveWarp(let inverse, _): return Sampling.projectiveWarp(a[0], a[1], inverse: inverse)
        case .projectiveWarpTranspose(let inverse): return Sampling.projectiveWarpTranspose(a[0], a[1], inverse: inverse)
        case .randomUniform(_, let key): return random(a[0], key, shape, normal: false)
        case .randomNormal(_, let key): return random(a[0], key, shape, normal: true)
        case .allReduce(let r):
            var out = a[0].scalars
            out.withUnsafeMutableBufferPointer { Collectives.allReduce($0.baseAddress!, count: $0.count, op: r) }
            return Tensor(shape: shape, scalars: out)
        case .fused(let f): return evaluate(f.body, a, kernel: { run($0, $1, shape: $2) })
        }
    }

    /// Runs a fused kernel's body on its arguments with the given kernels (the backend's own,
    /// so a fused conv epilogue still gets the backend's convolution).
    public static func evaluate(_ body: Graph, _ args: [Tensor], kernel: (Op, [Tensor], [Int]) -> Tensor) -> Tensor {
        var values = [Tensor?](repeating: nil, count: body.values.count)
        var next = 0
        for (i, v) in body.values.enumerated() {
            switch v.definition {
            case .input: values[i] = args[next]; next += 1
            case .constant(let t): values[i] = t
            case .parameter: fatalError("fused bodies have no parameters (the verifier rejects them)")
            case .op(let op, let operands): values[i] = kernel(op, operands.map { values[$0.index]! }, v.shape)
            }
        }
        return values[body.outputs[0].value.index]!
    }

    // MARK: elementwise

    // The scalar meaning of each op is `ElementwiseSemantics` (GraphIR); broadcast operands are
    // gathered to the output's shape first, then one loop applies the op.

    public static func unary(_ u: UnaryOp, _ x: Tensor) -> Tensor {
        if x.scalars.isEmpty { return x }
        var out = [Float](repeating: 0, count: x.scalars.count)
        x.scalars.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { ElementwiseLoops.unary(u, xp.baseAddress!, $0.baseAddress!, xp.count) }
        }
        return Tensor(shape: x.shape, scalars: out)
    }

    /// `x`'s elements broadcast to `shape`.
    static func gathered(_ x: Tensor, _ shape: [Int]) -> [Float] {
        x.shape == shape ? x.scalars : broadcastIndex(x.shape, shape).map { x.scalars[$0] }
    }

    /// Offsets of `inShape` (right-aligned, broadcast) for each element of `outShape`, in order.
    static func broadcastIndex(_ inShape: [Int], _ outShape: [Int]) -> [Int] {
        let n = Shape.count(outShape)
        if inShape == outShape { return Array(0..<n) }
        let rank = outShape.count
        let inStrides = Shape.strides(inShape)
        var strides = [Int](repeating: 0, count: rank)
        for i in 0..<inShape.count where inShape[i] != 1 {
            strides[rank - inShape.count + i] = inStrides[i]
        }
        var result = [Int](repeating: 0, count: n)
        var idx = [Int](repeating: 0, count: rank)
        var offset = 0
        for i in 0..<n {
            result[i] = offset
            var axis = rank - 1
            while axis >= 0 {
                idx[axis] += 1
                offset += strides[axis]
                if idx[axis] < outShape[axis] { break }
                offset -= strides[axis] * idx[axis]
                idx[axis] = 0
                axis -= 1
            }
        }
        return result
    }

    public static func binary(_ b: BinaryOp, _ x: Tensor, _ y: Tensor, _ shape: [Int]) -> Tensor {
        if Shape.count(shape) == 0 { return Tensor(shape: shape, scalars: []) }
        let xs = gathered(x, shape), ys = gathered(y, shape)
        var out = [Float](repeating: 0, count: Shape.count(shape))
        xs.withUnsafeBufferPointer { xp in
            ys.withUnsafeBufferPointer { yp in
                out.withUnsafeMutableBufferPointer {
                    ElementwiseLoops.binary(b, xp.baseAddress!, yp.baseAddress!, $0.baseAddress!, $0.count)
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func select(_ c: Tensor, _ x: Tensor, _ y: Tensor, _ shape: [Int]) -> Tensor {
        if Shape.count(shape) == 0 { return Tensor(shape: shape, scalars: []) }
        let cs = gathered(c, shape), xs = gathered(x, shape), ys = gathered(y, shape)
        var out = [Float](repeating: 0, count: Shape.count(shape))
        cs.withUnsafeBufferPointer { cp in
            xs.withUnsafeBufferPointer { xp in
                ys.withUnsafeBufferPointer { yp in
                    out.withUnsafeMutableBufferPointer {
                        ElementwiseLoops.select(cp.baseAddress!, xp.baseAddress!, yp.baseAddress!, $0.baseAddress!, $0.count)
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    // MARK: reductions and data movement

    static func reduce(_ r: ReduceOp, _ x: Tensor, axes: [Int], shape: [Int]) -> Tensor {
        // Output index of every input element: the input index with reduced axes set to 0.
        var keptShape = x.shape
        for a in axes { keptShape[a] = 1 }
        let outCount = Shape.count(keptShape)
        let map = broadcastIndex(keptShape, x.shape)
        var acc = [Double](repeating: r == .max ? -.infinity : 0, count: outCount)
        var nan = [Bool](repeating: false, count: outCount)
        for i in 0..<x.count {
            let v = Double(x.scalars[i]), o = map[i]
            switch r {
            case .sum, .mean: acc[o] += v
            case .max: if v.isNaN { nan[o] = true } else if v > acc[o] { acc[o] = v }
            }
        }
        let n = Double(outCount == 0 ? 0 : x.count / Swift.max(outCount, 1))
        let out: [Float] = (0..<outCount).map { o in
            switch r {
            case .sum: return Float(acc[o])
            case .mean: return Float(acc[o] / n)
            case .max: return nan[o] ? .nan : Float(acc[o])
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// Visits every output multi-index in order, passing the flat output index and a source offset
    /// computed from per-axis source strides and origins.
    public static func gather(_ shape: [Int], strides: [Int], origin: Int, _ body: (Int, Int) -> Void) {
        let n = Shape.count(shape)
        if n == 0 { return }
        let rank = shape.count
        var idx = [Int](repeating: 0, count: rank)
        var offset = origin
        for i in 0..<n {
            body(i, offset)
            var axis = rank - 1
            while axis >= 0 {
                idx[axis] += 1
                offset += strides[axis]
                if idx[axis] < shape[axis] { break }
                offset -= strides[axis] * idx[axis]
                idx[axis] = 0
                axis -= 1
            }
        }
    }

    static func transpose(_ x: Tensor, _ perm: [Int], _ shape: [Int]) -> Tensor {
        let xs = Shape.strides(x.shape)
        var out = [Float](repeating: 0, count: x.count)
        gather(shape, strides: perm.map { xs[$0] }, origin: 0) { i, o in out[i] = x.scalars[o] }
        return Tensor(shape: shape, scalars: out)
    }

    static func broadcast(_ x: Tensor, _ shape: [Int]) -> Tensor {
        let idx = broadcastIndex(x.shape, shape)
        return Tensor(shape: shape, scalars: idx.map { x.scalars[$0] })
    }

    static func concat(_ xs: [Tensor], axis: Int, _ shape: [Int]) -> Tensor {
        let outer = Shape.count(Array(shape[..<axis]))
        let inner = Shape.count(Array(shape[(axis + 1)...]))
        var out = [Float]()
        out.reserveCapacity(Shape.count(shape))
        for o in 0..<outer {
            for x in xs {
                let block = x.shape[axis] * inner
                out.append(contentsOf: x.scalars[(o * block)..<((o + 1) * block)])
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func slice(_ x: Tensor, _ begin: [Int], _ shape: [Int]) -> Tensor {
        let xs = Shape.strides(x.shape)
        let origin = zip(begin, xs).map(*).reduce(0, +)
        var out = [Float](repeating: 0, count: Shape.count(shape))
        gather(shape, strides: xs, origin: origin) { i, o in out[i] = x.scalars[o] }
        return Tensor(shape: shape, scalars: out)
    }

    static func pad(_ x: Tensor, _ before: [Int], _ mode: PadMode, _ value: Float, _ shape: [Int]) -> Tensor {
        let xs = Shape.strides(x.shape)
        let rank = shape.count
        var out = [Float](repeating: value, count: Shape.count(shape))
        if x.count == 0 { return Tensor(shape: shape, scalars: out) }
        var idx = [Int](repeating: 0, count: rank)
        for i in 0..<out.count {
            var offset = 0, inside = true
            for a in 0..<rank {
                var j = idx[a] - before[a]
                let n = x.shape[a]
                if j < 0 || j >= n {
                    if mode == .constant { inside = false; break }
                    j = j < 0 ? -j - 1 : 2 * n - j - 1
                }
                offset += j * xs[a]
            }
            if inside { out[i] = x.scalars[offset] }
            var a = rank - 1
            while a >= 0 {
                idx[a] += 1
                if idx[a] < shape[a] { break }
                idx[a] = 0
                a -= 1
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func reverse(_ x: Tensor, _ axes: [Int]) -> Tensor {
        var strides = Shape.strides(x.shape)
        var origin = 0
        for a in axes where x.shape[a] > 0 {
            origin += (x.shape[a] - 1) * strides[a]
            strides[a] = -strides[a]
        }
        var out = [Float](repeating: 0, count: x.count)
        gather(x.shape, strides: strides, origin: origin) { i, o in out[i] = x.scalars[o] }
        return Tensor(shape: x.shape, scalars: out)
    }

    // MARK: matmul and convolution

    static func matmul(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, _ shape: [Int]) -> Tensor {
        let r = shape.count
        let m = shape[r - 2], n = shape[r - 1]
        let k = ta ? a.shape[r - 2] : a.shape[r - 1]
        let batch = Shape.count(Array(shape[..<(r - 2)]))
        var out = [Float](repeating: 0, count: batch * m * n)
        for p in 0..<batch {
            let ao = p * m * k, bo = p * k * n, co = p * m * n
            for i in 0..<m {
                for j in 0..<n {
                    var acc = 0.0
                    for l in 0..<k {
                        let av = ta ? a.scalars[ao + l * m + i] : a.scalars[ao + i * k + l]
                        let bv = tb ? b.scalars[bo + j * k + l] : b.scalars[bo + l * n + j]
                        acc += Double(av) * Double(bv)
                    }
                    out[co + i * n + j] = Float(acc)
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func conv2d(_ x: Tensor, _ k: Tensor, _ c: ConvAttributes, _ shape: [Int]) -> Tensor {
        let (n, h, w, ci) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw, co) = (k.shape[0], k.shape[1], k.shape[3])
        let (oh, ow) = (shape[1], shape[2])
        var out = [Float](repeating: 0, count: Shape.count(shape))
        var acc = [Double](repeating: 0, count: co)
        for b in 0..<n {
            for y in 0..<oh {
                for xo in 0..<ow {
                    for o in 0..<co { acc[o] = 0 }
                    for i in 0..<kh {
                        let iy = y * c.strides[0] - c.padding[0] + i
                        if iy < 0 || iy >= h { continue }
                        for j in 0..<kw {
                            let ix = xo * c.strides[1] - c.padding[2] + j
                            if ix < 0 || ix >= w { continue }
                            let xb = ((b * h + iy) * w + ix) * ci
                            let kb = (i * kw + j) * ci * co
                            for q in 0..<ci {
                                let xv = Double(x.scalars[xb + q])
                                for o in 0..<co { acc[o] += xv * Double(k.scalars[kb + q * co + o]) }
                            }
                        }
                    }
                    let ob = ((b * oh + y) * ow + xo) * co
                    for o in 0..<co { out[ob + o] = Float(acc[o]) }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func conv2dBackpropInput(_ dy: Tensor, _ k: Tensor, _ c: ConvAttributes, _ shape: [Int]) -> Tensor {
        let (n, h, w, ci) = (shape[0], shape[1], shape[2], shape[3])
        let (kh, kw, co) = (k.shape[0], k.shape[1], k.shape[3])
        let (oh, ow) = (dy.shape[1], dy.shape[2])
        var acc = [Double](repeating: 0, count: Shape.count(shape))
        for b in 0..<n {
            for y in 0..<oh {
                for xo in 0..<ow {
                    let gb = ((b * oh + y) * ow + xo) * co
                    for i in 0..<kh {
                        let iy = y * c.strides[0] - c.padding[0] + i
                        if iy < 0 || iy >= h { continue }
                        for j in 0..<kw {
                            let ix = xo * c.strides[1] - c.padding[2] + j
                            if ix < 0 || ix >= w { continue }
                            let xb = ((b * h + iy) * w + ix) * ci
                            let kb = (i * kw + j) * ci * co
                            for q in 0..<ci {
                                var s = 0.0
                                for o in 0..<co { s += Double(dy.scalars[gb + o]) * Double(k.scalars[kb + q * co + o]) }
                                acc[xb + q] += s
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: acc.map { Float($0) })
    }

    static func conv2dBackpropFilter(_ x: Tensor, _ dy: Tensor, _ c: ConvAttributes, _ shape: [Int]) -> Tensor {
        let (n, h, w, ci) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw, co) = (shape[0], shape[1], shape[3])
        let (oh, ow) = (dy.shape[1], dy.shape[2])
        var acc = [Double](repeating: 0, count: Shape.count(shape))
        for b in 0..<n {
            for y in 0..<oh {
                for xo in 0..<ow {
                    let gb = ((b * oh + y) * ow + xo) * co
                    for i in 0..<kh {
                        let iy = y * c.strides[0] - c.padding[0] + i
                        if iy < 0 || iy >= h { continue }
                        for j in 0..<kw {
                            let ix = xo * c.strides[1] - c.padding[2] + j
                            if ix < 0 || ix >= w { continue }
                            let xb = ((b * h + iy) * w + ix) * ci
                            let kb = (i * kw + j) * ci * co
                            for q in 0..<ci {
                                let xv = Double(x.scalars[xb + q])
                                for o in 0..<co { acc[kb + q * co + o] += xv * Double(dy.scalars[gb + o]) }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: acc.map { Float($0) })
    }

    // MARK: resampling

    static func upsample(_ x: Tensor, _ f: [Int], _ shape: [Int]) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (shape[1], shape[2])
        var out = [Float](repeating: 0, count: Shape.count(shape))
        for b in 0..<n {
            for i in 0..<oh {
                for j in 0..<ow {
                    let src = ((b * h + i / f[0]) * w + j / f[1]) * c
                    let dst = ((b * oh + i) * ow + j) * c
                    for q in 0..<c { out[dst + q] = x.scalars[src + q] }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func avgPool(_ x: Tensor, _ win: [Int], _ st: [Int], _ shape: [Int]) -> Tensor {
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (shape[1], shape[2])
        let area = Double(win[0] * win[1])
        var out = [Float](repeating: 0, count: Shape.count(shape))
        for b in 0..<shape[0] {
            for i in 0..<oh {
                for j in 0..<ow {
                    for q in 0..<c {
                        var s = 0.0
                        for di in 0..<win[0] {
                            let row: Int = (b * h + i * st[0] + di) * w
                            for dj in 0..<win[1] {
                                let col: Int = j * st[1] + dj
                                s += Double(x.scalars[(row + col) * c + q])
                            }
                        }
                        out[((b * oh + i) * ow + j) * c + q] = Float(s / area)
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func avgPoolBackprop(_ dy: Tensor, _ win: [Int], _ st: [Int], _ shape: [Int]) -> Tensor {
        let (h, w, c) = (shape[1], shape[2], shape[3])
        let (oh, ow) = (dy.shape[1], dy.shape[2])
        let area = Double(win[0] * win[1])
        var acc = [Double](repeating: 0, count: Shape.count(shape))
        for b in 0..<shape[0] {
            for i in 0..<oh {
                for j in 0..<ow {
                    for q in 0..<c {
                        let g = Double(dy.scalars[((b * oh + i) * ow + j) * c + q]) / area
                        for di in 0..<win[0] {
                            let row: Int = (b * h + i * st[0] + di) * w
                            for dj in 0..<win[1] {
                                let col: Int = j * st[1] + dj
                                acc[(row + col) * c + q] += g
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: acc.map { Float($0) })
    }

    /// Max pooling; with `gradient` (the pooled cotangent), routes each window's cotangent to the
    /// first position holding its maximum and returns the input-shaped result instead.
    static func maxPool(_ x: Tensor, _ win: [Int], _ st: [Int], _ shape: [Int], gradient: Tensor?) -> Tensor {
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        let oh = (h - win[0]) / st[0] + 1, ow = (w - win[1]) / st[1] + 1
        var out = [Float](repeating: 0, count: Shape.count(shape))
        var acc = [Double](repeating: 0, count: gradient == nil ? 0 : x.count)
        for b in 0..<x.shape[0] {
            for i in 0..<oh {
                for j in 0..<ow {
                    for q in 0..<c {
                        var best = -Float.infinity, at = -1
                        for di in 0..<win[0] {
                            for dj in 0..<win[1] {
                                let row: Int = (b * h + i * st[0] + di) * w
                                let idx: Int = (row + j * st[1] + dj) * c + q
                                let v = x.scalars[idx]
                                if at < 0 || v > best || v.isNaN { best = v; at = idx }
                            }
                        }
                        let o = ((b * oh + i) * ow + j) * c + q
                        if let g = gradient { acc[at] += Double(g.scalars[o]) } else { out[o] = best }
                    }
                }
            }
        }
        if gradient != nil { return Tensor(shape: x.shape, scalars: acc.map { Float($0) }) }
        return Tensor(shape: shape, scalars: out)
    }

    // MARK: random

    static func random(_ seed: Tensor, _ key: Int, _ shape: [Int], normal: Bool) -> Tensor {
        let s = CounterRandom.seed(from: seed.scalars[0])
        let k = UInt64(bitPattern: Int64(key))
        let n = Shape.count(shape)
        if normal {
            let out = [Float](unsafeUninitializedCapacity: n) { buf, initialized in
                if let p = buf.baseAddress { CounterRandom.fillNormal(seed: s, key: k, start: 0, count: n, into: p) }
                initialized = n
            }
            return Tensor(shape: shape, scalars: out)
        }
        return Tensor(shape: shape, scalars: (0..<n).map { CounterRandom.uniform(seed: s, key: k, counter: UInt64($0)) })
    }
}
