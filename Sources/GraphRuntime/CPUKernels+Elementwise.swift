import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Unary and binary elementwise kernels (the standalone ops the JIT does not take).
extension CPUKernels {
    static func unary(_ u: UnaryOp, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        switch u {
        case .neg: for i in 0..<n { out[i] = -x[i] }
        case .relu: for i in 0..<n { out[i] = x[i] > 0 ? x[i] : 0 }
        case .abs: for i in 0..<n { out[i] = Swift.abs(x[i]) }
        case .sqrt: for i in 0..<n { out[i] = x[i].squareRoot() }
        case .stopGradient: if UnsafePointer(out) != x { out.update(from: x, count: n) }
        default:
            let f = ReferenceKernels.unaryFunction(u)
            for i in 0..<n { out[i] = f(x[i]) }
        }
    }

    /// Whether `binary` takes these shapes: same shape, a scalar, or an operand that repeats along
    /// the leading axes (a bias), on either side.
    static func binaryCovers(_ xShape: [Int], _ yShape: [Int], _ shape: [Int]) -> Bool {
        let n = Shape.count(shape), xn = Shape.count(xShape), yn = Shape.count(yShape)
        func periodic(_ small: [Int]) -> Bool {
            let trimmed = Array(small.drop(while: { $0 == 1 }))
            return Array(shape.suffix(trimmed.count)) == trimmed
        }
        if xn == n && yn == n && xShape == shape && yShape == shape { return true }
        if xShape == shape && (yn == 1 || periodic(yShape)) && yn > 0 { return true }
        return yShape == shape && (xn == 1 || periodic(xShape)) && xn > 0
    }

    /// Same-shape, scalar and trailing-broadcast (bias) cases without index arrays.
    static func binary(_ b: BinaryOp, _ x: UnsafePointer<Float>, _ xShape: [Int], _ y: UnsafePointer<Float>, _ yShape: [Int],
                       _ shape: [Int], _ out: UnsafeMutablePointer<Float>) -> Bool {
        let n = Shape.count(shape)
        let xn = Shape.count(xShape), yn = Shape.count(yShape)
        func periodic(_ small: [Int]) -> Bool {
            let trimmed = Array(small.drop(while: { $0 == 1 }))
            return Array(shape.suffix(trimmed.count)) == trimmed
        }
        if xn == n && yn == n && xShape == shape && yShape == shape {
            switch b {
            case .add: for i in 0..<n { out[i] = x[i] + y[i] }
            case .sub: for i in 0..<n { out[i] = x[i] - y[i] }
            case .mul: for i in 0..<n { out[i] = x[i] * y[i] }
            case .div: for i in 0..<n { out[i] = x[i] / y[i] }
            default:
                let f = ReferenceKernels.binaryFunction(b)
                for i in 0..<n { out[i] = f(x[i], y[i]) }
            }
        } else if xShape == shape && (yn == 1 || periodic(yShape)) && yn > 0 {
            let f = ReferenceKernels.binaryFunction(b)
            if yn == 1 {
                let v = y[0]
                switch b {
                case .add: for i in 0..<n { out[i] = x[i] + v }
                case .mul: for i in 0..<n { out[i] = x[i] * v }
                default: for i in 0..<n { out[i] = f(x[i], v) }
                }
            } else {
                var i = 0
                while i < n {
                    switch b {
                    case .add: for j in 0..<yn { out[i + j] = x[i + j] + y[j] }
                    case .mul: for j in 0..<yn { out[i + j] = x[i + j] * y[j] }
                    default: for j in 0..<yn { out[i + j] = f(x[i + j], y[j]) }
                    }
                    i += yn
                }
            }
        } else if yShape == shape && (xn == 1 || periodic(xShape)) && xn > 0 {
            let f = ReferenceKernels.binaryFunction(b)
            var i = 0
            while i < n {
                for j in 0..<xn { out[i + j] = f(x[j], y[i + j]) }
                i += xn
            }
        } else {
            return false
        }
        return true
    }
}
