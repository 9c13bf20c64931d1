import GraphIR

/// Builds a new graph from an old one value by value: each old value is either copied (with its
/// operands remapped), replaced by a new definition, or aliased to a value already in the new
/// graph. Outputs and updates follow the mapping.
struct Rewriter {
    let old: Graph
    var graph: Graph
    /// old index -> new value
    var map: [ValueID?]
    var names: Set<String>

    init(_ old: Graph) {
        self.old = old
        graph = Graph(name: old.name)
        map = [ValueID?](repeating: nil, count: old.values.count)
        names = []
    }

    func mapped(_ id: ValueID) -> ValueID { map[id.index]! }

    /// Appends a value (operands already in new ids); keeps the name unique.
    mutating func append(_ v: Value) -> ValueID {
        var v = v
        if names.contains(v.name) {
            var k = 1
            while names.contains("\(v.name)_\(k)") { k += 1 }
            v.name = "\(v.name)_\(k)"
        }
        names.insert(v.name)
        graph.values.append(v)
        return ValueID(graph.values.count - 1)
    }

    /// Copies old value `i` with remapped operands.
    mutating func copy(_ i: Int) {
        var v = old.values[i]
        if case .op(let op, let operands) = v.definition { v.definition = .op(op, operands.map(mapped)) }
        map[i] = append(v)
    }

    mutating func alias(_ i: Int, to id: ValueID) { map[i] = id }

    func finish() throws -> Graph {
        var g = graph
        g.outputs = old.outputs.map { Output(name: $0.name, value: mapped($0.value)) }
        g.updates = old.updates.map { Update(parameter: mapped($0.parameter), value: mapped($0.value)) }
        try g.verify()
        return g
    }
}
