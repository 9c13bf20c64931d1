import GraphIR

/// Loops over contiguous buffers that apply `ElementwiseSemantics` on `Float`: the one place the
/// reference kernels, the Swift loops of the CPU backend and its fused loops take an elementwise
/// op's meaning from. Each case instantiates the loop with its op as a constant, so the table's
/// switch folds away and the body is the op alone (vectorised where it can be).
public enum ElementwiseLoops {
    /// Which operand of a binary op is one scalar repeated.
    public enum Layout: Sendable { case elementwise, scalarX, scalarY }

    public static func unary(_ u: UnaryOp, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        @_transparent func loop(_ op: UnaryOp) {
            for i in 0..<n { out[i] = ElementwiseSemantics.unary(op, x[i], in: FloatArithmetic()) }
        }
        switch u {
        case .neg: loop(.neg)
        case .exp: loop(.exp)
        case .log: loop(.log)
        case .sqrt: loop(.sqrt)
        case .abs: loop(.abs)
        case .relu: loop(.relu)
        case .sigmoid: loop(.sigmoid)
        case .tanh: loop(.tanh)
        case .sin: loop(.sin)
        case .cos: loop(.cos)
        case .floor: loop(.floor)
        case .round: loop(.round)
        case .sign: loop(.sign)
        case .stopGradient: if UnsafePointer(out) != x { out.update(from: x, count: n) }
        }
    }

    public static func binary(_ b: BinaryOp, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                              _ out: UnsafeMutablePointer<Float>, _ n: Int, layout: Layout = .elementwise) {
        @_transparent func loop(_ op: BinaryOp) {
            let a = FloatArithmetic()
            switch layout {
            case .elementwise: for i in 0..<n { out[i] = ElementwiseSemantics.binary(op, x[i], y[i], in: a) }
            case .scalarX: let v = x[0]; for i in 0..<n { out[i] = ElementwiseSemantics.binary(op, v, y[i], in: a) }
            case .scalarY: let v = y[0]; for i in 0..<n { out[i] = ElementwiseSemantics.binary(op, x[i], v, in: a) }
            }
        }
        switch b {
        case .add: loop(.add)
        case .sub: loop(.sub)
        case .mul: loop(.mul)
        case .div: loop(.div)
        case .pow: loop(.pow)
        case .maximum: loop(.maximum)
        case .minimum: loop(.minimum)
        case .less: loop(.less)
        case .greater: loop(.greater)
        case .equal: loop(.equal)
        case .sigmoidCrossEntropy: loop(.sigmoidCrossEntropy)
        }
    }

    public static func select(_ c: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                              _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let a = FloatArithmetic()
        for i in 0..<n { out[i] = ElementwiseSemantics.select(c[i], x[i], y[i], in: a) }
    }
}
