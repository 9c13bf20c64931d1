import Foundation
import GraphIR

/// Training images from a directory of photographs: a pool of seeded random crops (10-100 % of
/// the short side, random position, random horizontal flip) resized to the model's size, from
/// which batches are drawn by seed, so a run is reproducible.
public struct PhotoDataset: Sendable {
    public let height: Int
    public let width: Int
    public let crops: [[Float]]
    public let photoCount: Int

    public init(directory: String, height: Int, width: Int, cropsPerPhoto: Int = 64, seed: UInt64 = 1,
                log: (String) -> Void = { _ in }) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter {
            ["png", "jpg", "jpeg"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased())
        }.sorted()
        guard !names.isEmpty else { throw ImageError(directory, "no .png, .jpg or .jpeg files") }
        self.height = height
        self.width = width
        var crops: [[Float]] = []
        var counter: UInt64 = 0
        func u() -> Double {
            counter += 1
            return Double(CounterRandom.uniform(seed: seed, key: 0xC0, counter: counter))
        }
        for (k, name) in names.enumerated() {
            let photo = try ImageIO.read(path: URL(fileURLWithPath: directory).appendingPathComponent(name).path)
            // Shrink big photos first so crops are cheap to resize.
            let shortSide = min(photo.width, photo.height)
            let base = shortSide > 8 * max(height, width)
                ? Resize.resize(photo, width: photo.width * 8 * max(height, width) / shortSide, height: photo.height * 8 * max(height, width) / shortSide)
                : photo
            for _ in 0..<cropsPerPhoto {
                let side = max(4, Int(Double(min(base.width, base.height)) * (0.1 + 0.9 * u())))
                let x = Int(u() * Double(base.width - side)), y = Int(u() * Double(base.height - side))
                var crop = Resize.resize(Resize.crop(base, x: x, y: y, width: side, height: side), width: width, height: height)
                if u() < 0.5 {
                    var flipped = crop.pixels
                    for row in 0..<height { for col in 0..<width { for c in 0..<3 {
                        flipped[(row * width + col) * 3 + c] = crop.pixels[(row * width + (width - 1 - col)) * 3 + c]
                    } } }
                    crop = RGBImage(width: width, height: height, pixels: flipped)
                }
                crops.append(crop.clamped().pixels)
            }
            log("loaded \(k + 1)/\(names.count) photos: \(name)")
        }
        self.crops = crops
        photoCount = names.count
    }

    /// A batch of crops drawn by `seed`.
    public func batch(count: Int, seed: UInt64) -> Tensor {
        var out: [Float] = []
        out.reserveCapacity(count * height * width * 3)
        for i in 0..<count {
            let pick = Int(CounterRandom.bits(seed: seed, key: 0xBA7, counter: UInt64(i)) % UInt64(crops.count))
            out += crops[pick]
        }
        return Tensor(shape: [count, height, width, 3], scalars: out)
    }
}
