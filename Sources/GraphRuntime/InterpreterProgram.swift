import Dispatch
import GraphIR
import GraphKernels

/// How an executable runs: the interpreter's reference kernels or the `cpu` backend's arena.
protocol BackendProgram: AnyObject, Sendable {
    /// Runs the graph on feeds and parameters checked against the signature; writes the updates.
    func run(_ feeds: [String: Tensor], parameters: inout ParameterStore, profile: Profile?) -> [String: Tensor]
}

/// The `interpreter` backend: the reference kernel of every op, in graph order, each value freed
/// after its last reader. The oracle every fast kernel is tested against.
final class InterpreterProgram: BackendProgram, @unchecked Sendable {
    let graph: Graph
    /// Index of the last value that reads each value (values read by outputs/updates never die).
    let lastUse: [Int]

    init(graph: Graph) {
        self.graph = graph
        var last = [Int](repeating: -1, count: graph.values.count)
        for (i, v) in graph.values.enumerated() { for o in v.operands { last[o.index] = i } }
        for o in graph.outputs { last[o.value.index] = Int.max }
        for u in graph.updates { last[u.value.index] = Int.max }
        lastUse = last
    }

    func run(_ feeds: [String: Tensor], parameters: inout ParameterStore, profile: Profile?) -> [String: Tensor] {
        var values = [Tensor?](repeating: nil, count: graph.values.count)
        for (i, v) in graph.values.enumerated() {
            switch v.definition {
            case .input:
                values[i] = feeds[v.name]
            case .parameter:
                values[i] = parameters[v.name]!
            case .constant(let t):
                values[i] = t
            case .op(let op, let operands):
                let args = operands.map { values[$0.index]! }
                if let profile {
                    let t = DispatchTime.now().uptimeNanoseconds
                    values[i] = ReferenceKernels.run(op, args, shape: v.shape)
                    profile.add(Profile.kind(op) + " [reference]", Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
                } else {
                    values[i] = ReferenceKernels.run(op, args, shape: v.shape)
                }
                for o in operands where lastUse[o.index] == i { values[o.index] = nil }
            }
        }
        var outputs: [String: Tensor] = [:]
        for o in graph.outputs { outputs[o.name] = values[o.value.index]! }
        for u in graph.updates { parameters[graph[u.parameter].name] = values[u.value.index]! }
        return outputs
    }
}
