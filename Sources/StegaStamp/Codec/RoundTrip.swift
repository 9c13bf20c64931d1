/// What a residual at the model's size becomes by the time the decoder reads it: `Embedding.apply`
/// upsamples it (bicubic) to the photo's region and `Embedding.modelInput` resizes the photo back
/// (antialiased), so the decoder sees B(residual), B = down . up, a blur that removes most of what
/// lies near the model grid's Nyquist frequency. B is separable: one small matrix per axis,
/// built from the same resampling taps, so refinement can optimise exactly what is read.
struct RoundTrip {
    let width, height: Int
    /// Row-major [model side x model side] per axis.
    let bx, by: [Float]

    /// The round trip of a width x height model residual through a photo of photoWidth x photoHeight.
    init(width: Int, height: Int, photoWidth: Int, photoHeight: Int) {
        let r = Embedding.region(width: photoWidth, height: photoHeight)
        (self.width, self.height) = (width, height)
        bx = Self.axis(model: width, region: r.width)
        by = Self.axis(model: height, region: r.height)
    }

    /// down . up for one axis: [model x model].
    static func axis(model n: Int, region m: Int) -> [Float] {
        if n == m { return (0..<(n * n)).map { $0 / n == $0 % n ? 1 : 0 } }
        let up = Resize.Taps(input: n, output: m), down = Resize.Taps(input: m, output: n)
        var b = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for k in 0..<down.taps {
                let w = Double(down.weights[i * down.taps + k])
                if w == 0 { continue }
                let p = down.start[i] + k
                for l in 0..<up.taps {
                    let u = Double(up.weights[p * up.taps + l])
                    if u != 0 { b[i * n + up.start[p] + l] += w * u }
                }
            }
        }
        return b.map(Float.init)
    }

    /// B(x) for x [height, width, 3] (interleaved channels); `transposed`: B^T(x), the gradient's way back.
    func apply(_ x: [Float], transposed: Bool = false) -> [Float] {
        precondition(x.count == width * height * 3)
        let (w, h) = (width, height)
        // Along x: mid[y][i][c] = sum_j Bx[i][j] x[y][j][c] (or Bx[j][i]).
        var mid = [Float](repeating: 0, count: x.count)
        for y in 0..<h {
            for i in 0..<w {
                var a0: Float = 0, a1: Float = 0, a2: Float = 0
                for j in 0..<w {
                    let m = transposed ? bx[j * w + i] : bx[i * w + j]
                    if m == 0 { continue }
                    let s = (y * w + j) * 3
                    a0 += m * x[s]; a1 += m * x[s + 1]; a2 += m * x[s + 2]
                }
                let d = (y * w + i) * 3
                mid[d] = a0; mid[d + 1] = a1; mid[d + 2] = a2
            }
        }
        // Along y, whole rows at a time.
        var out = [Float](repeating: 0, count: x.count)
        let row = w * 3
        for i in 0..<h {
            for j in 0..<h {
                let m = transposed ? by[j * h + i] : by[i * h + j]
                if m == 0 { continue }
                for t in 0..<row { out[i * row + t] += m * mid[j * row + t] }
            }
        }
        return out
    }
}
