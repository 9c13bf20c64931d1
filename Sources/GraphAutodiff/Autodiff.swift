import GraphIR

/// Reverse-mode differentiation as a graph transformation.
public enum Autodiff {
    /// Extends `graph` with the gradient of the scalar `output` with respect to each of `wrt`.
    /// Returns the extended graph (an ordinary graph: printable, verifiable, runnable) and the
    /// gradient values, in the order of `wrt`. Values used several times get their cotangents
    /// summed; broadcasts are reduced back; stop_gradient cuts the flow. A value that does not
    /// influence `output` gets a zero gradient.
    public static func gradient(of graph: Graph, output: ValueID, wrt: [ValueID]) throws -> (graph: Graph, gradients: [ValueID]) {
        let b = GraphBuilder(extending: graph)
        let grads = try gradient(in: b, of: output, wrt: wrt)
        return (try b.finish(), grads)
    }

    /// The same, on a builder: used to assemble training steps.
    public static func gradient(in b: GraphBuilder, of output: ValueID, wrt: [ValueID]) throws -> [ValueID] {
        let g0 = b.graph
        guard Shape.count(g0[output].shape) == 1 else {
            throw AutodiffError("gradient of %\(g0[output].name) f32\(Shape.describe(g0[output].shape)): the output must be a scalar")
        }
        let count = g0.values.count
        // Values that depend on some wrt value and that output depends on: only those need cotangents.
        var fromWrt = [Bool](repeating: false, count: count)
        for w in wrt { fromWrt[w.index] = true }
        for (i, v) in g0.values.enumerated() where !fromWrt[i] {
            if v.operands.contains(where: { fromWrt[$0.index] }) { fromWrt[i] = true }
        }
        var toOutput = [Bool](repeating: false, count: count)
        toOutput[output.index] = true
        for i in stride(from: output.index, through: 0, by: -1) where toOutput[i] {
            for o in g0.values[i].operands { toOutput[o.index] = true }
        }
        let active = (0..<count).map { fromWrt[$0] && toOutput[$0] }

        var contributions: [Int: [ValueID]] = [:]
        contributions[output.index] = [b.constant(1, shape: g0[output].shape)]
        var total: [Int: ValueID] = [:]

        for i in stride(from: output.index, through: 0, by: -1) where active[i] {
            guard let parts = contributions.removeValue(forKey: i) else { continue }
            var g = parts[0]
            for p in parts.dropFirst() { g = b.add(g, p) }
            total[i] = g
            guard case .op(let op, let operands) = g0.values[i].definition else { continue }
            let needs = operands.map { active[$0.index] }
            if !needs.contains(true) { continue }
            let cts = try GradientRules.cotangents(op, x: operands, y: ValueID(i), g: g, needs: needs, b: b)
            for (k, operand) in operands.enumerated() where needs[k] {
                if let ct = cts[k] { contributions[operand.index, default: []].append(ct) }
            }
        }
        if let e = b.firstError { throw AutodiffError("building the gradient graph: \(e)") }
        return wrt.map { w in total[w.index] ?? b.constant(0, shape: g0[w].shape) }
    }
}
