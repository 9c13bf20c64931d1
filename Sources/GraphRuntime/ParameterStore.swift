import GraphIR

/// Values of a graph's parameters (weights and optimizer state), kept outside the graph and the
/// executable. A training step reads them and writes its updates back.
public struct ParameterStore: Sendable {
    public var values: [String: Tensor]

    public init(_ values: [String: Tensor] = [:]) { self.values = values }

    /// Every parameter of `graph` at its initializer's value.
    public init(initializing graph: Graph) {
        values = [:]
        for id in graph.parameters {
            let v = graph[id]
            if case .parameter(let i) = v.definition { values[v.name] = i.materialize(shape: v.shape) }
        }
    }

    public subscript(name: String) -> Tensor? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// Parameters of `graph` missing here get their initial value; existing ones are kept.
    public mutating func initializeMissing(for graph: Graph) {
        for id in graph.parameters {
            let v = graph[id]
            if values[v.name] == nil, case .parameter(let i) = v.definition { values[v.name] = i.materialize(shape: v.shape) }
        }
    }

    /// Checkpoint: tensors named `param.<name>`.
    public func save(path: String, metadata: [String: String] = [:]) throws {
        var file = SafetensorsFile(metadata: metadata)
        for (k, v) in values { file.tensors["param." + k] = v }
        try file.write(path: path)
    }

    public static func load(path: String) throws -> ParameterStore {
        let file = try SafetensorsFile.read(path: path)
        var store = ParameterStore()
        for (k, v) in file.tensors where k.hasPrefix("param.") { store.values[String(k.dropFirst(6))] = v }
        return store
    }
}
