import Foundation

/// Counter-based random numbers: element i of stream (seed, key) is a pure function of the three,
/// so a graph that draws random tensors stays a pure function of its seed input and can be
/// evaluated in any order or in parallel.
public enum CounterRandom {
    /// SplitMix64's finaliser: a bijective mix with full avalanche.
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

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
