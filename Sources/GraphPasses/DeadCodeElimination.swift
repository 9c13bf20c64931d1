import GraphIR

/// Graph-to-graph optimisation passes. Each is a pure function; the result is verified.
public enum Passes {
    /// Removes every value that no output or update needs. Inputs stay (they are the signature);
    /// unused parameters and constants go. Names are kept, so the text stays readable.
    public static func deadCodeElimination(_ g: Graph) throws -> Graph {
        var live = [Bool](repeating: false, count: g.values.count)
        for o in g.outputs { live[o.value.index] = true }
        for u in g.updates { live[u.value.index] = true; live[u.parameter.index] = true }
        for i in stride(from: g.values.count - 1, through: 0, by: -1) where live[i] {
            for o in g.values[i].operands { live[o.index] = true }
        }
        for id in g.inputs { live[id.index] = true }
        var remap = [Int](repeating: -1, count: g.values.count)
        var out = Graph(name: g.name)
        for (i, v) in g.values.enumerated() where live[i] {
            remap[i] = out.values.count
            var nv = v
            if case .op(let op, let operands) = v.definition {
                nv.definition = .op(op, operands.map { ValueID(remap[$0.index]) })
            }
            out.values.append(nv)
        }
        out.outputs = g.outputs.map { Output(name: $0.name, value: ValueID(remap[$0.value.index])) }
        out.updates = g.updates.map { Update(parameter: ValueID(remap[$0.parameter.index]), value: ValueID(remap[$0.value.index])) }
        try out.verify()
        return out
    }
}
