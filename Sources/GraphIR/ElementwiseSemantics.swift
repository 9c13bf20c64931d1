import Foundation

/// The scalar meaning of every elementwise op, written once. It is generic over the arithmetic it
/// runs on: `FloatArithmetic` evaluates it (the reference kernels and the Swift loops), the LLVM
/// emitter (`ElementwiseCodegen`) conforms with `Value = LLVMValueRef` and emits it. A new unary
/// or binary op is given its meaning here (the switches are exhaustive) and every backend follows.
public enum ElementwiseSemantics {
    @_transparent
    public static func unary<A: ScalarArithmetic>(_ u: UnaryOp, _ x: A.Value, in a: A) -> A.Value {
        switch u {
        case .neg: return a.negate(x)
        case .exp: return a.apply(.exp, x)
        case .log: return a.apply(.log, x)
        case .sqrt: return a.apply(.sqrt, x)
        case .abs: return a.apply(.abs, x)
        // relu of NaN is 0 (the comparison is false)
        case .relu: return a.choose(.greater, x, a.constant(0), then: x, else: a.constant(0))
        case .sigmoid: return a.divide(a.constant(1), a.add(a.constant(1), a.apply(.exp, a.negate(x))))
        case .tanh: return a.apply(.tanh, x)
        case .sin: return a.apply(.sin, x)
        case .cos: return a.apply(.cos, x)
        case .floor: return a.apply(.floor, x)
        case .round: return a.apply(.roundEven, x)
        case .sign:
            return a.choose(.greater, x, a.constant(0), then: a.constant(1),
                            else: a.choose(.less, x, a.constant(0), then: a.constant(-1), else: a.constant(0)))
        case .stopGradient: return x
        }
    }

    @_transparent
    public static func binary<A: ScalarArithmetic>(_ b: BinaryOp, _ x: A.Value, _ y: A.Value, in a: A) -> A.Value {
        switch b {
        case .add: return a.add(x, y)
        case .sub: return a.subtract(x, y)
        case .mul: return a.multiply(x, y)
        case .div: return a.divide(x, y)
        case .pow: return a.power(x, y)
        // NaN-propagating; otherwise Swift.max / Swift.min (y when y >= x, resp. y < x)
        case .maximum: return a.choose(.unordered, x, y, then: a.constant(.nan), else: max(x, y, in: a))
        case .minimum: return a.choose(.unordered, x, y, then: a.constant(.nan), else: a.choose(.less, y, x, then: y, else: x))
        case .less: return a.choose(.less, x, y, then: a.constant(1), else: a.constant(0))
        case .greater: return a.choose(.greater, x, y, then: a.constant(1), else: a.constant(0))
        case .equal: return a.choose(.equal, x, y, then: a.constant(1), else: a.constant(0))
        case .sigmoidCrossEntropy:
            // max(x, 0) - x z + log1p(exp(-|x|)): no overflow for large |x|
            let softplus = a.apply(.log1p, a.apply(.exp, a.negate(a.apply(.abs, x))))
            return a.add(a.subtract(max(x, a.constant(0), in: a), a.multiply(x, y)), softplus)
        }
    }

    /// select(c, x, y): x where c != 0 (NaN counts as true), else y.
    @_transparent
    public static func select<A: ScalarArithmetic>(_ c: A.Value, _ x: A.Value, _ y: A.Value, in a: A) -> A.Value {
        a.choose(.notEqual, c, a.constant(0), then: x, else: y)
    }

    /// Swift.max(x, y): y when y >= x, else x.
    @_transparent
    public static func max<A: ScalarArithmetic>(_ x: A.Value, _ y: A.Value, in a: A) -> A.Value {
        a.choose(.greaterOrEqual, y, x, then: y, else: x)
    }
}

/// A comparison of two scalars as IEEE defines it: ordered (false on NaN) except `notEqual`
/// (true on NaN) and `unordered` (true when either is NaN).
public enum ScalarComparison: Sendable {
    case greater, less, greaterOrEqual, equal, notEqual, unordered
}

/// The math functions the semantics call (each the C library's float function).
public enum ScalarFunction: Sendable {
    case exp, log, sqrt, abs, tanh, sin, cos, floor, roundEven, log1p
}

/// What `ElementwiseSemantics` is written in: constants, arithmetic, math functions, a choice.
public protocol ScalarArithmetic {
    associatedtype Value
    func constant(_ v: Float) -> Value
    func negate(_ x: Value) -> Value
    func add(_ x: Value, _ y: Value) -> Value
    func subtract(_ x: Value, _ y: Value) -> Value
    func multiply(_ x: Value, _ y: Value) -> Value
    func divide(_ x: Value, _ y: Value) -> Value
    func power(_ x: Value, _ y: Value) -> Value
    func apply(_ f: ScalarFunction, _ x: Value) -> Value
    /// `a` where `test(l, r)` holds, else `b`.
    func choose(_ test: ScalarComparison, _ l: Value, _ r: Value, then a: Value, else b: Value) -> Value
}

/// The semantics evaluated on `Float`.
public struct FloatArithmetic: ScalarArithmetic {
    @inlinable public init() {}
    @_transparent public func constant(_ v: Float) -> Float { v }
    @_transparent public func negate(_ x: Float) -> Float { -x }
    @_transparent public func add(_ x: Float, _ y: Float) -> Float { x + y }
    @_transparent public func subtract(_ x: Float, _ y: Float) -> Float { x - y }
    @_transparent public func multiply(_ x: Float, _ y: Float) -> Float { x * y }
    @_transparent public func divide(_ x: Float, _ y: Float) -> Float { x / y }
    @_transparent public func power(_ x: Float, _ y: Float) -> Float { Foundation.pow(x, y) }
    @_transparent
    public func apply(_ f: ScalarFunction, _ x: Float) -> Float {
        switch f {
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .sqrt: return x.squareRoot()
        case .abs: return Swift.abs(x)
        case .tanh: return Foundation.tanh(x)
        case .sin: return Foundation.sin(x)
        case .cos: return Foundation.cos(x)
        case .floor: return x.rounded(.down)
        case .roundEven: return x.rounded(.toNearestOrEven)
        case .log1p: return Foundation.log1p(x)
        }
    }
    @_transparent
    public func choose(_ test: ScalarComparison, _ l: Float, _ r: Float, then a: Float, else b: Float) -> Float {
        switch test {
        case .greater: return l > r ? a : b
        case .less: return l < r ? a : b
        case .greaterOrEqual: return l >= r ? a : b
        case .equal: return l == r ? a : b
        case .notEqual: return l != r ? a : b
        case .unordered: return l.isNaN || r.isNaN ? a : b
        }
    }
}
