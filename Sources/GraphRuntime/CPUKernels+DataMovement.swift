import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Data movement: strided copies (transpose, broadcast, slice), padding, upsampling.
extension CPUKernels {
    /// out[i] = x[origin + sum(index_a * strides_a)] for every index of `shape`, the last axis as
    /// one run.
    static func stridedCopy(_ x: UnsafePointer<Float>, strides: [Int], origin: Int, _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        let n = Shape.count(shape)
        if n == 0 { return }
        // The leading dimension (images) split between the cores.
        if shape.count >= 2 && shape[0] >= 2 && n >= 1 << 16 {
            let inner = Array(shape.dropFirst()), innerStrides = Array(strides.dropFirst()), rows = n / shape[0]
            nonisolated(unsafe) let (src, result) = (x, out)
            onBothCores(shape[0], elements: n) { range in
                for i in range { stridedCopyRows(src, strides: innerStrides, origin: origin + i * strides[0], inner, result + i * rows) }
            }
            return
        }
        stridedCopyRows(x, strides: strides, origin: origin, shape, out)
    }

    private static func stridedCopyRows(_ x: UnsafePointer<Float>, strides: [Int], origin: Int, _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        guard let last = shape.last else { out[0] = x[origin]; return }
        let stride = strides[strides.count - 1]
        let outerShape = Array(shape.dropLast())
        var dst = out
        ReferenceKernels.gather(outerShape, strides: Array(strides.dropLast()), origin: origin) { _, o in
            let src = x + o
            if stride == 1 { copy(src, to: dst, last) }
            else if stride == 0 { dst.update(repeating: src[0], count: last) }
            else { for j in 0..<last { dst[j] = src[j * stride] } }
            dst += last
        }
    }

    /// `rows` runs of `run` floats, `stride` apart in x, packed into `out`.
    static func rowCopy(_ x: UnsafePointer<Float>, stride: Int, run: Int, rows: Int, _ out: UnsafeMutablePointer<Float>) {
        nonisolated(unsafe) let (src, dst) = (x, out)
        onBothCores(rows, elements: rows * run) { range in
            for r in range { copy(src + r * stride, to: dst + r * run, run) }
        }
    }

    /// Writes x (shape `shape`) into `out` at every index, with the destination's strides.
    static func scatterCopy(_ x: UnsafePointer<Float>, _ shape: [Int], into out: UnsafeMutablePointer<Float>, strides: [Int]) {
        if Shape.count(shape) == 0 { return }
        guard let last = shape.last else { out[0] = x[0]; return }
        var src = x
        ReferenceKernels.gather(Array(shape.dropLast()), strides: Array(strides.dropLast()), origin: 0) { _, o in
            (out + o).update(from: src, count: last)
            src += last
        }
    }

    static func upsample(_ x: UnsafePointer<Float>, _ xShape: [Int], _ f: [Int], _ shape: [Int], _ out: UnsafeMutablePointer<Float>) {
        let (n, h, w, c) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (oh, ow) = (shape[1], shape[2])
        nonisolated(unsafe) let (src, result) = (x, out)
        onBothCores(n * oh, elements: Shape.count(shape)) { range in
            for r in range {
                let b = r / oh, i = r % oh
                let row = result + r * ow * c
                for j in 0..<ow { copy(src + ((b * h + i / f[0]) * w + j / f[1]) * c, to: row + j * c, c) }
            }
        }
    }
}
