import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Pooling and its gradients.
extension CPUKernels {
    // Pooling (VALID windows, as the reference kernels): channels innermost, images on both cores.

    static func pool(_ x: UnsafePointer<Float>, _ xShape: [Int], _ win: [Int], _ st: [Int], _ shape: [Int],
                     _ out: UnsafeMutablePointer<Float>, max: Bool) {
        let (h, w, c) = (xShape[1], xShape[2], xShape[3])
        let (oh, ow) = (shape[1], shape[2])
        let scale = 1 / Float(win[0] * win[1])
        nonisolated(unsafe) let (src, result) = (x, out)
        perImage(shape[0]) { b in
            for i in 0..<oh {
                for j in 0..<ow {
                    let o = result + ((b * oh + i) * ow + j) * c
                    for di in 0..<win[0] {
                        for dj in 0..<win[1] {
                            let p = src + ((b * h + i * st[0] + di) * w + j * st[1] + dj) * c
                            if di == 0 && dj == 0 { o.update(from: p, count: c); continue }
                            if max {
                                // The reference's rule: a larger value or a NaN takes the window.
                                for q in 0..<c where p[q] > o[q] || p[q].isNaN { o[q] = p[q] }
                            } else {
                                for q in 0..<c { o[q] += p[q] }
                            }
                        }
                    }
                    if !max { for q in 0..<c { o[q] *= scale } }
                }
            }
        }
    }

    static func avgPoolBackprop(_ dy: UnsafePointer<Float>, _ dyShape: [Int], _ win: [Int], _ st: [Int], _ shape: [Int],
                                _ out: UnsafeMutablePointer<Float>) {
        let (h, w, c) = (shape[1], shape[2], shape[3])
        let (oh, ow) = (dyShape[1], dyShape[2])
        let scale = 1 / Float(win[0] * win[1])
        out.update(repeating: 0, count: Shape.count(shape))
        nonisolated(unsafe) let (grad, result) = (dy, out)
        perImage(shape[0]) { b in
            for i in 0..<oh {
                for j in 0..<ow {
                    let g = grad + ((b * oh + i) * ow + j) * c
                    for di in 0..<win[0] {
                        for dj in 0..<win[1] {
                            let d = result + ((b * h + i * st[0] + di) * w + j * st[1] + dj) * c
                            for q in 0..<c { d[q] += g[q] * scale }
                        }
                    }
                }
            }
        }
    }

    static func maxPoolBackprop(_ x: UnsafePointer<Float>, _ xShape: [Int], _ dy: UnsafePointer<Float>, _ dyShape: [Int],
                                _ win: [Int], _ st: [Int], _ out: UnsafeMutablePointer<Float>) {
        let (h, w, c) = (xShape[1], xShape[2], xShape[3])
        let (oh, ow) = (dyShape[1], dyShape[2])
        out.update(repeating: 0, count: Shape.count(xShape))
        nonisolated(unsafe) let (src, grad, result) = (x, dy, out)
        perImage(xShape[0]) { b in
            for i in 0..<oh {
                for j in 0..<ow {
                    for q in 0..<c {
                        var best = -Float.infinity, at = -1
                        for di in 0..<win[0] {
                            for dj in 0..<win[1] {
                                let idx = ((b * h + i * st[0] + di) * w + j * st[1] + dj) * c + q
                                let v = src[idx]
                                if at < 0 || v > best || v.isNaN { best = v; at = idx }
                            }
                        }
                        result[at] += grad[((b * oh + i) * ow + j) * c + q]
                    }
                }
            }
        }
    }
}
