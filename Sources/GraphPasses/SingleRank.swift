import GraphIR

extension Passes {
    /// A run of one rank: every `all_reduce` is the identity; removed, so a single process makes
    /// no collective call (and needs no MPI).
    public static func removeAllReduce(_ g: Graph) throws -> Graph {
        var r = Rewriter(g)
        for (i, v) in g.values.enumerated() {
            if case .op(.allReduce, let operands) = v.definition { r.alias(i, to: r.mapped(operands[0])) } else { r.copy(i) }
        }
        return try r.finish()
    }
}
