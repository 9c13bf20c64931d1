import GraphIR

/// One row of a pass pipeline's report.
public struct PassReport: Sendable {
    public var pass: String
    public var opsBefore: Int
    public var opsAfter: Int
    public var fusedKernels: Int
    public var intermediateBytes: Int
}

/// Named graph-to-graph passes run in order; the verifier runs after each; any pass can be
/// switched off by name; the IR after a pass can be captured (`--dump-after`).
public struct PassManager: Sendable {
    public struct Pass: Sendable {
        public var name: String
        public var run: @Sendable (Graph) throws -> Graph
        public init(_ name: String, _ run: @escaping @Sendable (Graph) throws -> Graph) {
            self.name = name
            self.run = run
        }
    }

    public var passes: [Pass]
    public var disabled: Set<String> = []

    public init(passes: [Pass]) { self.passes = passes }

    /// The default pipeline: simplify to a fixed point of the cheap passes, then fuse.
    public static let standard = PassManager(passes: [
        Pass("dce", Passes.deadCodeElimination),
        Pass("cse", Passes.commonSubexpressionElimination),
        Pass("fold", Passes.constantFolding),
        Pass("simplify", Passes.algebraicSimplification),
        Pass("cse2", Passes.commonSubexpressionElimination),
        Pass("dce2", Passes.deadCodeElimination),
        Pass("fusion", Passes.fusion),
        Pass("dce3", Passes.deadCodeElimination),
    ])

    public var names: [String] { passes.map(\.name) }

    public static func opCount(_ g: Graph) -> Int { g.values.filter { $0.op != nil }.count }

    static func fusedCount(_ g: Graph) -> Int {
        g.values.filter { if case .fused? = $0.op { return true } else { return false } }.count
    }

    /// Bytes of every op result (what the naive executor would keep).
    public static func bytes(_ g: Graph) -> Int { g.values.filter { $0.op != nil }.reduce(0) { $0 + Shape.count($1.shape) * 4 } }

    /// Runs the pipeline; `dump` receives (pass name, graph after it) for each pass run.
    public func run(_ g: Graph, dump: ((String, Graph) -> Void)? = nil) throws -> (graph: Graph, report: [PassReport]) {
        for name in disabled where !names.contains(name) {
            throw GraphError("unknown pass '\(name)'; passes are " + names.joined(separator: ", "))
        }
        var current = g
        var report: [PassReport] = []
        for p in passes where !disabled.contains(p.name) {
            let before = Self.opCount(current)
            do { current = try p.run(current) } catch { throw GraphError("pass \(p.name): \(error)") }
            do { try current.verify() } catch { throw GraphError("verifier after pass \(p.name): \(error)") }
            report.append(PassReport(pass: p.name, opsBefore: before, opsAfter: Self.opCount(current),
                                     fusedKernels: Self.fusedCount(current), intermediateBytes: Self.bytes(current)))
            dump?(p.name, current)
        }
        return (current, report)
    }
}
