import Foundation
import GraphIR

/// An RGB image with float samples in [0, 1], row-major, channels last (H x W x 3).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, pixels: [Float]) {
        precondition(pixels.count == width * height * 3, "RGBImage needs \(width * height * 3) samples, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, bytes: [UInt8]) {
        self.init(width: width, height: height, pixels: bytes.map { Float($0) / 255 })
    }

    /// 8-bit samples, rounded and clamped.
    public var bytes: [UInt8] { pixels.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) } }

    /// A [1, H, W, 3] tensor.
    public var tensor: Tensor { Tensor(shape: [1, height, width, 3], scalars: pixels) }

    public init(_ t: Tensor, index: Int = 0) {
        precondition(t.rank == 4 && t.shape[3] == 3, "expected [N, H, W, 3], got \(t.shape)")
        let (h, w) = (t.shape[1], t.shape[2])
        self.init(width: w, height: h, pixels: Array(t.scalars[(index * h * w * 3)..<((index + 1) * h * w * 3)]))
    }

    public func clamped() -> RGBImage {
        RGBImage(width: width, height: height, pixels: pixels.map { min(max($0, 0), 1) })
    }
}

public struct ImageError: Error, CustomStringConvertible {
    public var description: String
    public init(_ path: String?, _ m: String) { description = (path.map { "\($0): " } ?? "") + m }
}
