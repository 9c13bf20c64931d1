import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Bilinear sampling and its gradients; counter-based random numbers.
extension CPUKernels {
    // Bilinear sampling (`Sampling.taps` decides corners and weights, as in the reference kernel):
    // images split between the cores, no per-pixel allocation.

    static func perImage(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        if n >= 2 { Parallel.forEach(n) { body($0) } } else { for b in 0..<n { body(b) } }
    }

    /// Whole blocks of `BilinearRGB` per image: RGB with clamped corners (the STN), images whose
    /// pixel offsets are exact in float; none otherwise (the per-pixel path).
    static func rgbBlocks(pixels: Int, c: Int, _ mode: SampleMode, h: Int, w: Int) -> Int {
        c == 3 && mode == .clamp && h * w < 1 << 24 ? pixels / BilinearRGB.block : 0
    }

    static func sample(_ image: UnsafePointer<Float>, _ iShape: [Int], _ coords: UnsafePointer<Float>, _ cShape: [Int],
                       _ mode: SampleMode, _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (iShape[0], iShape[1], iShape[2], iShape[3])
        let pixels = cShape[1] * cShape[2]
        nonisolated(unsafe) let (img, xy, result) = (image, coords, out)
        let blocks = rgbBlocks(pixels: pixels, c: c, mode, h: h, w: w)
        perImage(n) { b in
            let base = img + b * h * w * 3
            func pixel(_ p: Int) {
                let k = b * pixels + p
                let t = Sampling.taps(xy[2 * k], xy[2 * k + 1], h: h, w: w, mode: mode)
                let o = result + k * c
                if t.nan { o.update(repeating: .nan, count: c); return }
                if c == 3 {
                    // RGB (the STN and the warps): the three sums in registers, stored once.
                    var (r, g, bl): (Float, Float, Float) = (0, 0, 0)
                    @inline(__always) func tap3(_ i: Int, _ wgt: Float) {
                        if i < 0 { return }
                        let src = img + (b * h * w + i) * 3
                        r += wgt * src[0]; g += wgt * src[1]; bl += wgt * src[2]
                    }
                    tap3(t.index.0, t.weight.0); tap3(t.index.1, t.weight.1); tap3(t.index.2, t.weight.2); tap3(t.index.3, t.weight.3)
                    o[0] = r; o[1] = g; o[2] = bl
                    return
                }
                o.update(repeating: 0, count: c)
                @inline(__always) func tap(_ i: Int, _ wgt: Float) {
                    if i < 0 { return }
                    let src = img + (b * h * w + i) * c
                    for q in 0..<c { o[q] += wgt * src[q] }
                }
                tap(t.index.0, t.weight.0); tap(t.index.1, t.weight.1); tap(t.index.2, t.weight.2); tap(t.index.3, t.weight.3)
            }
            var p = 0
            while p < blocks * BilinearRGB.block {
                let k = b * pixels + p
                if BilinearRGB.sampleBlock(base, h: h, w: w, xy + 2 * k, result + k * 3) {
                    p += BilinearRGB.block
                    continue
                }
                for q in p..<(p + BilinearRGB.block) { pixel(q) }
                p += BilinearRGB.block
            }
            while p < pixels { pixel(p); p += 1 }
        }
    }

    static func sampleGradImage(_ dy: UnsafePointer<Float>, _ coords: UnsafePointer<Float>, _ cShape: [Int], _ mode: SampleMode,
                                _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let pixels = cShape[1] * cShape[2]
        out.update(repeating: 0, count: n * h * w * c)
        nonisolated(unsafe) let (grad, xy, result) = (dy, coords, out)
        let blocks = rgbBlocks(pixels: pixels, c: c, mode, h: h, w: w)
        perImage(n) { b in  // each image scatters into its own slice of the result
            var first = 0  // pixels before `first` went in blocks
            while first < blocks * BilinearRGB.block {
                let k = b * pixels + first
                if !BilinearRGB.gradImageBlock(grad + k * 3, xy + 2 * k, h: h, w: w, result + b * h * w * 3) { break }
                first += BilinearRGB.block
            }
            for p in first..<pixels {
                let k = b * pixels + p
                let t = Sampling.taps(xy[2 * k], xy[2 * k + 1], h: h, w: w, mode: mode)
                let g = grad + k * c
                @inline(__always) func tap(_ i: Int, _ wgt: Float) {
                    if i < 0 { return }
                    let dst = result + (b * h * w + i) * c
                    for q in 0..<c { dst[q] += wgt * g[q] }
                }
                tap(t.index.0, t.weight.0); tap(t.index.1, t.weight.1); tap(t.index.2, t.weight.2); tap(t.index.3, t.weight.3)
            }
        }
    }

    static func sampleGradCoords(_ image: UnsafePointer<Float>, _ iShape: [Int], _ coords: UnsafePointer<Float>, _ cShape: [Int],
                                 _ dy: UnsafePointer<Float>, _ mode: SampleMode, _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (iShape[0], iShape[1], iShape[2], iShape[3])
        let pixels = cShape[1] * cShape[2]
        nonisolated(unsafe) let (img, xy, grad, result) = (image, coords, dy, out)
        let blocks = rgbBlocks(pixels: pixels, c: c, mode, h: h, w: w)
        perImage(n) { b in
            var first = 0  // pixels before `first` went in blocks
            while first < blocks * BilinearRGB.block {
                let k = b * pixels + first
                if !BilinearRGB.gradCoordsBlock(img + b * h * w * 3, h: h, w: w, xy + 2 * k, grad + k * 3, result + 2 * k) { break }
                first += BilinearRGB.block
            }
            for p in first..<pixels {
                let k = b * pixels + p
                let t = Sampling.taps(xy[2 * k], xy[2 * k + 1], h: h, w: w, mode: mode)
                if t.nan { result[2 * k] = .nan; result[2 * k + 1] = .nan; continue }
                let g = grad + k * c
                var gx: Float = 0, gy: Float = 0
                @inline(__always) func tap(_ i: Int, _ dx: Float, _ dyw: Float) {
                    if i < 0 { return }
                    let src = img + (b * h * w + i) * c
                    var s: Float = 0
                    for q in 0..<c { s += g[q] * src[q] }
                    gx += dx * s
                    gy += dyw * s
                }
                tap(t.index.0, t.dX.0, t.dY.0); tap(t.index.1, t.dX.1, t.dY.1); tap(t.index.2, t.dX.2, t.dY.2); tap(t.index.3, t.dX.3, t.dY.3)
                result[2 * k] = gx
                result[2 * k + 1] = gy
            }
        }
    }

    /// The projective warp: its coordinates (in the workspace), then the bilinear sampler with
    /// zero outside: the reference kernel's sums in its order, so the same bits.
    static func projectiveWarp(_ image: UnsafePointer<Float>, _ shape: [Int], _ transforms: UnsafePointer<Float>, inverse: Bool,
                               _ out: UnsafeMutablePointer<Float>, _ workspace: Workspace) {
        let (n, h, w) = (shape[0], shape[1], shape[2])
        let coords = workspace.buffer(.columns, n * h * w * 2, of: Float.self)
        Sampling.projectiveCoords(transforms, n: n, h: h, w: w, inverse: inverse, into: coords)
        sample(image, shape, coords, [n, h, w, 2], .zero, out)
    }

    /// The warp's transpose: each image's scatter summed in double in the reference kernel's
    /// order (the same bits), images split between the cores.
    static func projectiveWarpTranspose(_ dy: UnsafePointer<Float>, _ transforms: UnsafePointer<Float>, inverse: Bool,
                                        _ shape: [Int], _ out: UnsafeMutablePointer<Float>, _ workspace: Workspace) {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let coords = workspace.buffer(.columns, n * h * w * 2, of: Float.self)
        Sampling.projectiveCoords(transforms, n: n, h: h, w: w, inverse: inverse, into: coords)
        let sums = workspace.buffer(.sums, n * h * w * c, of: Double.self)
        nonisolated(unsafe) let (grad, xy, result, all) = (dy, UnsafePointer(coords), out, sums)
        perImage(n) { b in
            let acc = all + b * h * w * c
            acc.update(repeating: 0, count: h * w * c)
            for p in 0..<(h * w) {
                let k = b * h * w + p
                let t = Sampling.taps(xy[2 * k], xy[2 * k + 1], h: h, w: w, mode: .zero)
                let g = grad + k * c
                @inline(__always) func tap(_ i: Int, _ wgt: Float) {
                    if i < 0 { return }
                    let dst = acc + i * c
                    for q in 0..<c { dst[q] += Double(wgt) * Double(g[q]) }
                }
                tap(t.index.0, t.weight.0); tap(t.index.1, t.weight.1); tap(t.index.2, t.weight.2); tap(t.index.3, t.weight.3)
            }
            let dst = result + b * h * w * c
            for j in 0..<(h * w * c) { dst[j] = Float(acc[j]) }
        }
    }

    /// The reference kernel's counter-based numbers (a pure function of seed, key and index), on
    /// both cores.
    static func random(_ seed: Float, _ key: Int, _ n: Int, normal: Bool, _ out: UnsafeMutablePointer<Float>) {
        let s = CounterRandom.seed(from: seed), k = UInt64(bitPattern: Int64(key))
        nonisolated(unsafe) let result = out
        let parts = n >= 1 << 14 ? 2 : 1
        Parallel.forEach(parts) { part in
            let (from, to) = (n * part / parts, n * (part + 1) / parts)
            if normal { CounterRandom.fillNormal(seed: s, key: k, start: from, count: to - from, into: result + from); return }
            for i in from..<to { result[i] = CounterRandom.uniform(seed: s, key: k, counter: UInt64(i)) }
        }
    }
}
