import GraphIR

extension Autodiff {
    /// The graph plus an output `grad.<name>` for every value named in `wrt` (or
    /// `grad.<output>.<name>` when the graph already has outputs of the first form): what
    /// `stegastamp graph grad` prints. A non-scalar output is summed first (the gradient of
    /// sum(output)). Errors name the missing output or value.
    public static func gradientGraph(of graph: Graph, output outName: String, wrt names: [String]) throws -> Graph {
        guard let output = graph.output(named: outName) else {
            throw AutodiffError("no output '\(outName)'; outputs are " + graph.outputs.map(\.name).joined(separator: ", "))
        }
        let ids = try names.map { n -> ValueID in
            guard let id = graph.value(named: n) else { throw AutodiffError("no value '\(n)'") }
            return id
        }
        var target = output
        var base = graph
        if Shape.count(graph[output].shape) != 1 {
            let b = GraphBuilder(extending: graph)
            target = b.sum(output, axes: Array(0..<graph[output].shape.count))
            base = try b.finish()
        }
        var (dg, grads) = try gradient(of: base, output: target, wrt: ids)
        var taken = Set(dg.outputs.map(\.name))
        let prefix = names.contains { taken.contains("grad.\($0)") } ? "grad.\(outName)." : "grad."
        for (n, gv) in zip(names, grads) {
            var name = prefix + n
            var k = 1
            while taken.contains(name) { name = "\(prefix)\(n)_\(k)"; k += 1 }
            taken.insert(name)
            dg.outputs.append(Output(name: name, value: gv))
        }
        try dg.verify()
        return dg
    }
}
