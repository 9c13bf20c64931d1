/// Index of a value in its graph. Values are in definition order, so operands always come first.
public struct ValueID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let index: Int
    public init(_ index: Int) { self.index = index }
    public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
    public var description: String { "#\(index)" }
}

/// How a parameter gets its first value. Seeded, so initialisation is reproducible.
public enum Initializer: Hashable, Sendable {
    case zeros
    case constant(Float)
    /// Keras he_normal: truncated normal (|z| < 2), sd sqrt(2 / fan_in) / 0.8796.
    case heNormal(seed: Int)
    /// Keras glorot_uniform: U(+-sqrt(6 / (fan_in + fan_out))).
    case glorotUniform(seed: Int)
    /// Explicit values, row-major.
    case values([Float])
}

public enum Definition: Hashable, Sendable {
    /// Fed at each call.
    case input
    /// Persistent state, owned outside the graph and updated by `Graph.updates`.
    case parameter(Initializer)
    /// An explicit literal.
    case constant(Tensor)
    case op(Op, [ValueID])
}

public struct Value: Hashable, Sendable {
    public var name: String
    public var shape: [Int]
    public var definition: Definition
    /// 1-based line in the text this value was parsed from, for error messages.
    public var line: Int?

    public init(name: String, shape: [Int], definition: Definition, line: Int? = nil) {
        self.name = name
        self.shape = shape
        self.definition = definition
        self.line = line
    }

    /// Equality ignores the source line.
    public static func == (a: Value, b: Value) -> Bool {
        a.name == b.name && a.shape == b.shape && a.definition == b.definition
    }

    public func hash(into h: inout Hasher) {
        h.combine(name)
        h.combine(shape)
        h.combine(definition)
    }

    public var operands: [ValueID] {
        if case .op(_, let ops) = definition { return ops }
        return []
    }

    public var op: Op? {
        if case .op(let op, _) = definition { return op }
        return nil
    }
}

public struct Output: Hashable, Sendable {
    public var name: String
    public var value: ValueID
    public init(name: String, value: ValueID) {
        self.name = name
        self.value = value
    }
}

/// After a call, `parameter` takes the value `value` had (optimizer steps are written this way).
public struct Update: Hashable, Sendable {
    public var parameter: ValueID
    public var value: ValueID
    public init(parameter: ValueID, value: ValueID) {
        self.parameter = parameter
        self.value = value
    }
}

public struct GraphError: Error, CustomStringConvertible {
    public var message: String
    public var line: Int?
    public var column: Int?
    public init(_ message: String, line: Int? = nil, column: Int? = nil) {
        self.message = message
        self.line = line
        self.column = column
    }
    public var description: String {
        switch (line, column) {
        case let (l?, c?): return "\(l):\(c): \(message)"
        case let (l?, nil): return "\(l): \(message)"
        default: return message
        }
    }
}

/// A static-shape SSA graph: named inputs, parameters, constants, op values, named outputs and
/// parameter updates.
public struct Graph: Hashable, Sendable {
    public var name: String
    public var values: [Value]
    public var outputs: [Output]
    public var updates: [Update]

    public init(name: String, values: [Value] = [], outputs: [Output] = [], updates: [Update] = []) {
        self.name = name
        self.values = values
        self.outputs = outputs
        self.updates = updates
    }

    public subscript(id: ValueID) -> Value { values[id.index] }

    public var ids: [ValueID] { values.indices.map(ValueID.init) }

    public var inputs: [ValueID] { ids.filter { if case .input = self[$0].definition { return true } else { return false } } }

    public var parameters: [ValueID] {
        ids.filter { if case .parameter = self[$0].definition { return true } else { return false } }
    }

    public func value(named name: String) -> ValueID? {
        values.firstIndex { $0.name == name }.map(ValueID.init)
    }

    public func output(named name: String) -> ValueID? {
        outputs.first { $0.name == name }?.value
    }

    /// Checks everything the rest of the compiler relies on: definition order, unique names,
    /// every op's shape rule, constants, outputs and updates.
    public func verify() throws {
        var names: Set<String> = []
        for (i, v) in values.enumerated() {
            func fail(_ m: String) -> GraphError { GraphError("%\(v.name): \(m)", line: v.line) }
            if v.name.isEmpty || !v.name.allSatisfy(isNameCharacter) { throw fail("invalid value name") }
            if !names.insert(v.name).inserted { throw fail("name defined twice") }
            if v.shape.contains(where: { $0 < 0 }) { throw fail("negative dimension") }
            switch v.definition {
            case .input:
                break
            case .parameter(let initializer):
                if case .values(let xs) = initializer, xs.count != Shape.count(v.shape) {
                    throw fail("initializer has \(xs.count) values, shape \(Shape.describe(v.shape)) needs \(Shape.count(v.shape))")
                }
            case .constant(let t):
                if t.shape != v.shape { throw fail("constant of shape \(Shape.describe(t.shape)) declared \(Shape.describe(v.shape))") }
            case .op(let op, let operands):
                for o in operands where o.index < 0 || o.index >= i {
                    throw fail("operand \(o) is not defined before use")
                }
                let inferred: [Int]
                do { inferred = try op.resultShape(operands.map { values[$0.index].shape }) } catch let e as ShapeError {
                    throw fail(e.description)
                }
                if inferred != v.shape {
                    throw fail("\(op.name) gives \(Shape.describe(inferred)) but the value is declared \(Shape.describe(v.shape))")
                }
            }
        }
        var outNames: Set<String> = []
        for o in outputs {
            if o.value.index < 0 || o.value.index >= values.count { throw GraphError("output \(o.name): unknown value") }
            if !outNames.insert(o.name).inserted { throw GraphError("output \(o.name) defined twice") }
        }
        var updated: Set<ValueID> = []
        for u in updates {
            guard u.parameter.index >= 0, u.parameter.index < values.count, u.value.index >= 0, u.value.index < values.count else {
                throw GraphError("update refers to an unknown value")
            }
            let p = self[u.parameter], v = self[u.value]
            guard case .parameter = p.definition else { throw GraphError("update target %\(p.name) is not a parameter", line: p.line) }
            if p.shape != v.shape {
                throw GraphError("update of %\(p.name) \(Shape.describe(p.shape)) with %\(v.name) \(Shape.describe(v.shape))", line: v.line)
            }
            if !updated.insert(u.parameter).inserted { throw GraphError("parameter %\(p.name) updated twice") }
        }
    }

    /// Values each value is used by (operands, outputs and updates count as uses).
    public func useCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: values.count)
        for v in values { for o in v.operands { counts[o.index] += 1 } }
        for o in outputs { counts[o.value.index] += 1 }
        for u in updates { counts[u.value.index] += 1 }
        return counts
    }
}

func isNameCharacter(_ c: Character) -> Bool {
    c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == ".")
}
