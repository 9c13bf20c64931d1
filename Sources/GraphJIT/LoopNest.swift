import GraphIR

/// The iteration space of an elementwise kernel: the result's axes, with adjacent axes merged
/// wherever every operand walks them the same way (contiguously, or not at all), and a constant
/// stride per operand and axis (0 where the operand is broadcast). Static shapes make every
/// bound and stride a compile-time constant of the generated loops.
public struct LoopNest: Equatable, Sendable {
    public var extents: [Int]
    /// strides[k][a]: elements operand k advances per step of axis a.
    public var strides: [[Int]]

    public init(shape: [Int], operandShapes: [[Int]]) {
        let rank = shape.count
        var strides = operandShapes.map { s -> [Int] in
            let rowMajor = Shape.strides(s)
            let lead = rank - s.count
            return (0..<rank).map { a in a < lead || s[a - lead] == 1 ? 0 : rowMajor[a - lead] }
        }
        var extents = shape
        // Merge axis a into a + 1 when, for every operand, stride[a] == stride[a+1] * extent[a+1].
        var a = extents.count - 2
        while a >= 0 {
            if strides.allSatisfy({ $0[a] == $0[a + 1] * extents[a + 1] }) {
                extents[a] *= extents[a + 1]
                extents.remove(at: a + 1)
                for k in strides.indices { strides[k][a] = strides[k][a + 1]; strides[k].remove(at: a + 1) }
            }
            a -= 1
        }
        if extents.isEmpty { extents = [1]; strides = strides.map { _ in [0] } }
        self.extents = extents
        self.strides = strides
    }

    /// Elements per step of the outermost axis (the unit the kernel's [begin, end) range counts).
    public var innerCount: Int { extents.dropFirst().reduce(1, *) }
}
