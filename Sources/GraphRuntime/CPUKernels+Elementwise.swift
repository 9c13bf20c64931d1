import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Unary and binary elementwise kernels (the standalone ops the JIT does not take).
extension CPUKernels {
    static func unary(_ u: UnaryOp, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        ElementwiseLoops.unary(u, x, out, n)
    }

    /// Whether `small` (leading 1s aside) is the trailing part of `shape`: it repeats along the
    /// leading axes.
    static func repeats(_ small: [Int], along shape: [Int]) -> Bool {
        let trimmed = Array(small.drop(while: { $0 == 1 }))
        return Array(shape.suffix(trimmed.count)) == trimmed
    }

    /// Whether `binary` takes these shapes: same shape, a scalar, or an operand that repeats along
    /// the leading axes (a bias), on either side.
    static func binaryCovers(_ xShape: [Int], _ yShape: [Int], _ shape: [Int]) -> Bool {
        let n = Shape.count(shape), xn = Shape.count(xShape), yn = Shape.count(yShape)
        if xn == n && yn == n && xShape == shape && yShape == shape { return true }
        if xShape == shape && (yn == 1 || repeats(yShape, along: shape)) && yn > 0 { return true }
        return yShape == shape && (xn == 1 || repeats(xShape, along: shape)) && xn > 0
    }

    /// Same-shape, scalar and trailing-broadcast (bias) cases without index arrays.
    static func binary(_ b: BinaryOp, _ x: UnsafePointer<Float>, _ xShape: [Int], _ y: UnsafePointer<Float>, _ yShape: [Int],
                       _ shape: [Int], _ out: UnsafeMutablePointer<Float>) -> Bool {
        let n = Shape.count(shape)
        let xn = Shape.count(xShape), yn = Shape.count(yShape)
        if xn == n && yn == n && xShape == shape && yShape == shape {
            ElementwiseLoops.binary(b, x, y, out, n)
        } else if xShape == shape && (yn == 1 || repeats(yShape, along: shape)) && yn > 0 {
            if yn == 1 {
                ElementwiseLoops.binary(b, x, y, out, n, layout: .scalarY)
            } else {
                // y repeats along the leading axes (a bias): one loop per period
                var i = 0
                while i < n { ElementwiseLoops.binary(b, x + i, y, out + i, yn); i += yn }
            }
        } else if yShape == shape && (xn == 1 || repeats(xShape, along: shape)) && xn > 0 {
            if xn == 1 {
                ElementwiseLoops.binary(b, x, y, out, n, layout: .scalarX)
            } else {
                var i = 0
                while i < n { ElementwiseLoops.binary(b, x, y + i, out + i, xn); i += xn }
            }
        } else {
            return false
        }
        return true
    }
}
