import Foundation

/// Counter-based random numbers: element i of stream (seed, key) is a pure function of the three,
/// so a graph that draws random tensors stays a pure function of its seed input and can be
/// evaluated in any order or in parallel.
public enum CounterRandom {
    /// SplitMix64's finaliser: a bijective mix with full avalanche.
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ mixConstants.0
        z = (z ^ (z >> 30)) &* mixConstants.1
        z = (z ^ (z >> 27)) &* mixConstants.2
        return z ^ (z >> 31)
    }

    /// `mix` on 8 lanes (`fillNormal`).
    @inline(__always)
    static func mix(_ x: SIMD8<UInt64>) -> SIMD8<UInt64> {
        var z = x &+ mixConstants.0
        z = (z ^ (z &>> 30)) &* mixConstants.1
        z = (z ^ (z &>> 27)) &* mixConstants.2
        return z ^ (z &>> 31)
    }

    static let mixConstants: (UInt64, UInt64, UInt64) = (0x9E37_79B9_7F4A_7C15, 0xBF58_476D_1CE4_E5B9, 0x94D0_49BB_1331_11EB)

    @inline(__always)
    public static func bits(seed: UInt64, key: UInt64, counter: UInt64) -> UInt64 {
        mix(mix(seed &* 0xD1B5_4A32_D192_ED03 ^ mix(key)) ^ counter)
    }

    /// Uniform in [0, 1), 24 random bits.
    @inline(__always)
    public static func uniform(seed: UInt64, key: UInt64, counter: UInt64) -> Float {
        Float(bits(seed: seed, key: key, counter: counter) >> 40) * (1.0 / 16_777_216.0)
    }

    /// Standard normal by Box-Muller from two independent uniforms.
    @inline(__always)
    public static func normal(seed: UInt64, key: UInt64, counter: UInt64) -> Float {
        let b = bits(seed: seed, key: key, counter: counter)
        let u1 = (Double(b >> 40) + 0.5) * (1.0 / 16_777_216.0)
        let u2 = Double((b >> 8) & 0xFF_FFFF) * (1.0 / 16_777_216.0)
        return Float((-2.0 * Foundation.log(u1)).squareRoot() * Foundation.cos(2.0 * Double.pi * u2))
    }

    /// What the `random_normal` op draws: element `start + j` for j < count into `out`, 8 at a
    /// time. Box-Muller in Float from the same 64 random bits as `normal` (24 for the radius, 24
    /// for the angle), with polynomial log and cos (relative error ~1e-7; u1 rounded to Float moves
    /// the radius by up to ~3e-4 where u1 is within 2^-23 of 1): glibc's double log and cos
    /// cost ~30 ns per element, this ~2. Each element depends only on its counter, so any split
    /// of a tensor into chunks gives the same values (the reference and fast kernels both call it).
    public static func fillNormal(seed: UInt64, key: UInt64, start: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        let base = seed &* 0xD1B5_4A32_D192_ED03 ^ mix(key)
        let lanes = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7), stream = SIMD8<UInt64>(repeating: mix(base))
        var j = 0
        while j < count {
            let z = mix(stream ^ (SIMD8<UInt64>(repeating: UInt64(start + j)) &+ lanes))
            let hi = SIMD8<Float>(SIMD8<UInt32>(truncatingIfNeeded: z &>> 40))
            let lo = SIMD8<Float>(SIMD8<UInt32>(truncatingIfNeeded: (z &>> 8) & 0xFF_FFFF))
            let u1 = (hi + 0.5) * (1.0 / 16_777_216.0), u2 = lo * (1.0 / 16_777_216.0)
            let v = (-2 * logUnit(u1)).squareRoot() * cosTurns(u2)
            let n = min(8, count - j)
            if n == 8 { UnsafeMutableRawPointer(out + j).storeBytes(of: v, as: SIMD8<Float>.self) }
            else { for l in 0..<n { out[j + l] = v[l] } }
            j += 8
        }
    }

    /// ln(x) for x in (0, 1]: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln(m) by Cephes' logf polynomial.
    @inline(__always)
    static func logUnit(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
        var e = SIMD8<Float>((bits &>> 23) &- 127)
        var m = unsafeBitCast((bits & 0x7F_FFFF) | 0x3F80_0000, to: SIMD8<Float>.self)
        let big = m .> 1.41421356
        m.replace(with: m * 0.5, where: big)
        e.replace(with: e + 1, where: big)
        let f = m - 1, f2 = f * f
        var p: SIMD8<Float> = SIMD8(repeating: 7.0376836292e-2)
        for c: Float in [-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                         2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1] { p = p * f + c }
        var y = f * f2 * p + e * -2.12194440e-4 - 0.5 * f2
        y = f + y + e * 0.693359375
        return y
    }

    /// cos(2 pi t) for t in [0, 1): folded onto an angle in [0, pi/4] and its Taylor polynomials.
    @inline(__always)
    static func cosTurns(_ t: SIMD8<Float>) -> SIMD8<Float> {
        // cos(2 pi t) = -cos(2 pi w), w = |t - 1/2| in [0, 1/2]; beyond 1/4, cos(2 pi w) = -cos(2 pi (1/2 - w)).
        var w = t - 0.5
        w.replace(with: -w, where: w .< 0)
        let far = w .> 0.25
        w.replace(with: 0.5 - w, where: far)
        var sign = SIMD8<Float>(repeating: -1)
        sign.replace(with: 1, where: far)
        // cos(2 pi w), w in [0, 1/4]: past 1/8 it is sin(pi/2 - 2 pi w).
        let theta = w * (2 * Float.pi)
        let useSin = w .> 0.125
        var x = theta
        x.replace(with: Float.pi / 2 - theta, where: useSin)
        let x2 = x * x
        var c = SIMD8<Float>(repeating: 1.0 / 40320), s = SIMD8<Float>(repeating: 1.0 / 362_880)
        for k: Float in [-1.0 / 720, 1.0 / 24, -0.5, 1] { c = c * x2 + k }
        for k: Float in [-1.0 / 5040, 1.0 / 120, -1.0 / 6, 1] { s = s * x2 + k }
        s = s * x
        var r = c
        r.replace(with: s, where: useSin)
        return sign * r
    }

    /// The seed a graph input carries: a float holding an integer (exact up to 2^24).
    public static func seed(from value: Float) -> UInt64 {
        UInt64(bitPattern: Int64(value.rounded()))
    }
}

extension Initializer {
    /// Keras fan-in / fan-out of a kernel shape.
    public static func fans(_ shape: [Int]) -> (fanIn: Double, fanOut: Double) {
        switch shape.count {
        case 0: return (1, 1)
        case 1: return (Double(shape[0]), Double(shape[0]))
        default:
            let receptive = Double(Shape.count(Array(shape.dropLast(2))))
            return (Double(shape[shape.count - 2]) * receptive, Double(shape[shape.count - 1]) * receptive)
        }
    }

    /// The parameter's first value.
    public func materialize(shape: [Int]) -> Tensor {
        let n = Shape.count(shape)
        switch self {
        case .zeros: return Tensor(shape: shape, repeating: 0)
        case .constant(let v): return Tensor(shape: shape, repeating: v)
        case .values(let xs): return Tensor(shape: shape, scalars: xs)
        case .heNormal(let seed):
            let sd = (2.0 / Initializer.fans(shape).fanIn).squareRoot() / 0.87962566103423978
            var out = [Float](repeating: 0, count: n)
            var counter: UInt64 = 0
            for i in 0..<n {
                // Rejection sampling of |z| < 2, each draw its own counter.
                while true {
                    let z = CounterRandom.normal(seed: UInt64(seed), key: 0x4E, counter: counter)
                    counter += 1
                    if abs(z) < 2 { out[i] = Float(Double(z) * sd); break }
                }
            }
            return Tensor(shape: shape, scalars: out)
        case .glorotUniform(let seed):
            let (fi, fo) = Initializer.fans(shape)
            let limit = (6.0 / (fi + fo)).squareRoot()
            let out = (0..<n).map { i in
                Float((Double(CounterRandom.uniform(seed: UInt64(seed), key: 0x47, counter: UInt64(i))) * 2 - 1) * limit)
            }
            return Tensor(shape: shape, scalars: out)
        }
    }
}
