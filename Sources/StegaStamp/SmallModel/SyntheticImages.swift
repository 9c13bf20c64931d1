import Foundation
import GraphIR

/// Seeded synthetic photographs-in-miniature for the small model: smooth colour fields (bilinear
/// interpolation of a coarse random grid) plus fine texture, in [0, 1].
public enum SyntheticImages {
    public static func batch(count: Int, height h: Int, width w: Int, seed: UInt64) -> Tensor {
        var out = [Float](repeating: 0, count: count * h * w * 3)
        let grid = 4
        for n in 0..<count {
            let key = UInt64(n)
            func coarse(_ i: Int, _ j: Int, _ c: Int) -> Float {
                CounterRandom.uniform(seed: seed, key: key, counter: UInt64((i * (grid + 1) + j) * 3 + c))
            }
            let texture = 0.15 * CounterRandom.uniform(seed: seed, key: key, counter: 1_000_000)
            for y in 0..<h {
                let fy = Float(y) / Float(max(h - 1, 1)) * Float(grid)
                let i0 = min(Int(fy), grid - 1), ty = fy - Float(i0)
                for x in 0..<w {
                    let fx = Float(x) / Float(max(w - 1, 1)) * Float(grid)
                    let j0 = min(Int(fx), grid - 1), tx = fx - Float(j0)
                    for c in 0..<3 {
                        let top = coarse(i0, j0, c) * (1 - tx) + coarse(i0, j0 + 1, c) * tx
                        let bottom = coarse(i0 + 1, j0, c) * (1 - tx) + coarse(i0 + 1, j0 + 1, c) * tx
                        let noise = CounterRandom.uniform(seed: seed, key: key, counter: UInt64(2_000_000 + (y * w + x) * 3 + c)) - 0.5
                        let v = top * (1 - ty) + bottom * ty + texture * noise
                        out[((n * h + y) * w + x) * 3 + c] = min(max(v, 0), 1)
                    }
                }
            }
        }
        return Tensor(shape: [count, h, w, 3], scalars: out)
    }

    /// Random 0/1 bits.
    public static func secrets(count: Int, bits: Int, seed: UInt64) -> Tensor {
        Tensor(shape: [count, bits], scalars: (0..<(count * bits)).map {
            CounterRandom.bits(seed: seed, key: 0x5EC, counter: UInt64($0)) & 1 == 1 ? 1 : 0
        })
    }

    /// Writes `count` textured synthetic photos as PNG files (for tests and the demo without
    /// network access); returns their paths.
    public static func writePhotos(directory: String, count: Int, width: Int, height: Int, seed: UInt64 = 7) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try (0..<count).map { k in
            let t = batch(count: 1, height: height, width: width, seed: seed &+ UInt64(k))
            let path = URL(fileURLWithPath: directory).appendingPathComponent(String(format: "synthetic-%03d.png", k)).path
            try ImageIO.write(RGBImage(t), path: path)
            return path
        }
    }
}
