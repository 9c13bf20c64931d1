import Foundation
import GraphIR
import FastKernelSupport

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
        precondition(bytes.count == width * height * 3, "RGBImage needs \(width * height * 3) bytes, got \(bytes.count)")
        var px = [Float](repeating: 0, count: bytes.count)
        Self.chunked(bytes.count) { lo, hi in
            bytes.withUnsafeBufferPointer { b in px.withUnsafeMutableBufferPointer { p in
                let (bp, pp) = (b.baseAddress!, p.baseAddress!)
                for i in lo..<hi { pp[i] = Float(bp[i]) * (1 / 255) }
            } }
        }
        self.init(width: width, height: height, pixels: px)
    }

    /// 8-bit samples, rounded and clamped: a conversion of the whole image per call (a method, not
    /// a property, so that a loop does not call it per pixel by accident).
    public func eightBitSamples() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: pixels.count)
        Self.chunked(pixels.count) { lo, hi in
            pixels.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { o in
                let (pp, op) = (p.baseAddress!, o.baseAddress!)
                for i in lo..<hi {
                    var v = pp[i] * 255 + 0.5
                    v = v < 255 ? v : 255  // NaN -> 255, never a trap
                    v = v > 0 ? v : 0
                    op[i] = UInt8(truncatingIfNeeded: Int32(v))
                }
            } }
        }
        return out
    }

    /// Runs body over [lo, hi) pieces of 0..<n on the cores (large photos: one pass each).
    static func chunked(_ n: Int, _ body: (Int, Int) -> Void) {
        let pieces = max(1, min(32, n / (1 << 18)))
        Parallel.forEach(pieces) { c in body(n * c / pieces, n * (c + 1) / pieces) }
    }

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
