import GraphIR
import GraphKernels

extension Passes {
    /// Common-subexpression elimination: identical ops on identical operands (random draws
    /// included: they are pure functions of seed and key) and identical constants become one value.
    public static func commonSubexpressionElimination(_ g: Graph) throws -> Graph {
        var r = Rewriter(g)
        var seenOps: [Definition: ValueID] = [:]
        var seenConstants: [Tensor: ValueID] = [:]
        for (i, v) in g.values.enumerated() {
            switch v.definition {
            case .constant(let t):
                if let id = seenConstants[t] { r.alias(i, to: id) } else { r.copy(i); seenConstants[t] = r.map[i]! }
            case .op(let op, let operands):
                let key = Definition.op(op, operands.map(r.mapped))
                if let id = seenOps[key] { r.alias(i, to: id) } else { r.copy(i); seenOps[key] = r.map[i]! }
            default:
                r.copy(i)
            }
        }
        return try r.finish()
    }

    /// Largest constant folding may create (elements): keeps the IR text small.
    public static let foldLimit = 1 << 16

    /// Evaluates ops whose operands are all constants (with the reference kernels).
    public static func constantFolding(_ g: Graph) throws -> Graph {
        var r = Rewriter(g)
        for (i, v) in g.values.enumerated() {
            guard case .op(let op, let operands) = v.definition, Shape.count(v.shape) <= foldLimit else { r.copy(i); continue }
            if case .fused = op { r.copy(i); continue }
            if case .allReduce = op { r.copy(i); continue }  // a collective, not a function of its operand alone
            let args = operands.map { r.graph[r.mapped($0)].definition }
            let tensors: [Tensor] = args.compactMap { if case .constant(let t) = $0 { return t } else { return nil } }
            if tensors.count != operands.count || operands.isEmpty { r.copy(i); continue }
            let folded = ReferenceKernels.run(op, tensors, shape: v.shape)
            r.alias(i, to: r.append(Value(name: v.name, shape: v.shape, definition: .constant(folded), line: v.line)))
        }
        return try r.finish()
    }

    /// Identity arithmetic (x+0, x-0, x*1, x/1, -(-x)), reshape / transpose / broadcast chains
    /// and no-op reshapes, transposes and broadcasts.
    public static func algebraicSimplification(_ g: Graph) throws -> Graph {
        var r = Rewriter(g)
        func constantValue(_ id: ValueID) -> Float? {
            guard case .constant(let t) = r.graph[id].definition, let f = t.scalars.first,
                  t.scalars.allSatisfy({ $0.bitPattern == f.bitPattern }) else { return nil }
            return f
        }
        for (i, v) in g.values.enumerated() {
            guard case .op(let op, let oldOperands) = v.definition else { r.copy(i); continue }
            let x = oldOperands.map(r.mapped)
            func same(_ id: ValueID) -> Bool { r.graph[id].shape == v.shape }
            func def(_ id: ValueID) -> (Op, [ValueID])? {
                if case .op(let o, let a) = r.graph[id].definition { return (o, a) }
                return nil
            }
            var replacement: ValueID? = nil
            var rewritten: Definition? = nil
            switch op {
            case .binary(.add):
                if constantValue(x[1]) == 0, same(x[0]) { replacement = x[0] } else if constantValue(x[0]) == 0, same(x[1]) { replacement = x[1] }
            case .binary(.sub):
                if constantValue(x[1]) == 0, same(x[0]) { replacement = x[0] }
            case .binary(.mul):
                if constantValue(x[1]) == 1, same(x[0]) { replacement = x[0] } else if constantValue(x[0]) == 1, same(x[1]) { replacement = x[1] }
            case .binary(.div):
                if constantValue(x[1]) == 1, same(x[0]) { replacement = x[0] }
            case .unary(.neg):
                if let (o, a) = def(x[0]), o == .unary(.neg) { replacement = a[0] }
            case .reshape:
                if same(x[0]) { replacement = x[0] } else if let (o, a) = def(x[0]), case .reshape = o {
                    rewritten = .op(op, [a[0]])
                }
            case .transpose(let perm):
                if perm == Array(0..<perm.count) { replacement = x[0] } else if let (o, a) = def(x[0]), case .transpose(let inner) = o {
                    let composed = perm.map { inner[$0] }
                    rewritten = composed == Array(0..<composed.count) ? nil : .op(.transpose(perm: composed), [a[0]])
                    if composed == Array(0..<composed.count) { replacement = a[0] }
                }
            case .broadcast:
                if same(x[0]) { replacement = x[0] } else if let (o, a) = def(x[0]), case .broadcast = o {
                    rewritten = .op(op, [a[0]])
                }
            default:
                break
            }
            if let rep = replacement {
                r.alias(i, to: rep)
            } else if let d = rewritten {
                r.alias(i, to: r.append(Value(name: v.name, shape: v.shape, definition: d, line: v.line)))
            } else {
                r.copy(i)
            }
        }
        return try r.finish()
    }
}
