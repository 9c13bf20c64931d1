/// A dense float32 tensor in row-major (C) order. Shapes are static; a scalar has shape [].
public struct Tensor: Hashable, Sendable, CustomStringConvertible {
    public var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(scalars.count == Shape.count(shape),
                     "tensor of shape \(Shape.describe(shape)) needs \(Shape.count(shape)) scalars, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(shape: [Int], repeating value: Float) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: Shape.count(shape)))
    }

    public init(_ value: Float) { self.init(shape: [], scalars: [value]) }

    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    /// The single value of a scalar (or one-element) tensor.
    public var scalar: Float {
        precondition(scalars.count == 1, "tensor of shape \(Shape.describe(shape)) is not a scalar")
        return scalars[0]
    }

    public var description: String {
        let head = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor\(Shape.describe(shape))[\(head)\(scalars.count > 8 ? ", ..." : "")]"
    }
}

/// Shape arithmetic shared by every layer.
public enum Shape {
    public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    public static func describe(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ",") + "]"
    }

    /// Row-major strides: the last axis is contiguous.
    public static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = s
            s *= shape[axis]
        }
        return strides
    }

    /// numpy broadcasting of several shapes; nil when they are incompatible.
    public static func broadcast(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            let offset = rank - shape.count
            for (i, d) in shape.enumerated() {
                let r = result[offset + i]
                if r == d || d == 1 { continue }
                if r == 1 { result[offset + i] = d } else { return nil }
            }
        }
        return result
    }

    /// TF 'SAME' padding for one spatial axis: the extra pixel goes after (bottom/right).
    public static func samePadding(size n: Int, kernel k: Int, stride s: Int) -> (before: Int, after: Int) {
        let out = (n + s - 1) / s
        let total = max((out - 1) * s + k - n, 0)
        return (total / 2, total - total / 2)
    }
}
