import Foundation
import GraphIR
import GraphKernels
import GraphPasses

/// Which kernels run the graph.
public enum Backend: String, CaseIterable, Sendable {
    /// The reference kernels only: the oracle.
    case interpreter
    /// BLAS-backed convolution and matmul, fast elementwise paths; the reference for the rest.
    case cpu
}

/// How the CPU backend computes convolutions and their gradients.
public enum ConvolutionAlgorithm: String, CaseIterable, Sendable {
    /// `direct`, with 3x3 stride-1 convolutions (and stride-1 input gradients) of 16 or more
    /// channels by Winograd F(2x2, 3x3): 16 products per 2x2 outputs instead of 36.
    case winograd
    /// FastKernels.DirectConv (AVX2 or AVX-512 register tiles) where outputs are wide enough, sgemm elsewhere.
    case direct
    /// im2col + OpenBLAS sgemm.
    case gemm

}

public struct CompileOptions: Equatable, Sendable {
    public var backend: Backend
    public var convolution: ConvolutionAlgorithm
    /// Run the standard pass pipeline (dead code, CSE, folding, simplification, fusion); when
    /// off, only dead code is removed.
    public var optimize: Bool
    /// Passes of the pipeline to skip, by name.
    public var disabledPasses: Set<String>
    /// `cpu` backend: compile fused elementwise kernels to machine code with LLVM (GraphJIT)
    /// instead of running them through the tiled Swift loops.
    public var jit: Bool
    /// `cpu` backend: the instruction set of the direct and Winograd convolution kernels (by
    /// default the widest this machine has).
    public var vectorISA: VectorISA
    /// Ranks of the data-parallel run the executable belongs to; with 1, `all_reduce` ops are
    /// removed at compile time (they are the identity).
    public var ranks: Int
    /// `cpu` backend: the tuning cache (see `KernelTuner`) where convolution kernels are chosen by
    /// timing the candidates on this machine; nil: the heuristics of `convolution` choose.
    public var tuningCache: String?
    /// `cpu` backend, tuning: choices measured while other processes keep more than this share
    /// of the cores busy are used but not written to the cache (1: always written).
    public var tuningLoadLimit: Double = KernelTuner.defaultLoadLimit
    /// `cpu` backend: a folder where the JIT keeps the machine code of its modules by a hash of
    /// their IR (see `JITModule`); nil: compiled every time.
    public var compileCache: String?
    public init(backend: Backend = .cpu, optimize: Bool = true, disabledPasses: Set<String> = [],
                convolution: ConvolutionAlgorithm = .winograd, jit: Bool = true, vectorISA: VectorISA = .widest,
                ranks: Int = 1, tuningCache: String? = nil, compileCache: String? = nil) {
        self.tuningCache = tuningCache
        self.compileCache = compileCache
        precondition(vectorISA.isAvailable, "this CPU cannot run \(vectorISA.rawValue) kernels")
        precondition(ranks >= 1, "ranks must be at least 1")
        self.ranks = ranks
        self.backend = backend
        self.vectorISA = vectorISA
        self.jit = jit
        self.convolution = convolution
        self.optimize = optimize
        self.disabledPasses = disabledPasses
    }
}

/// What an executable is specialised to: the name and shape of every graph input.
public struct Signature: Equatable, Sendable, CustomStringConvertible {
    public var inputs: [String: [Int]]
    public init(_ inputs: [String: [Int]]) { self.inputs = inputs }

    /// The signature a graph declares.
    public static func of(_ graph: Graph) -> Signature {
        Signature(Dictionary(uniqueKeysWithValues: graph.inputs.map { (graph[$0].name, graph[$0].shape) }))
    }

    public var description: String {
        "(" + inputs.keys.sorted().map { "\($0): f32\(Shape.describe(inputs[$0]!))" }.joined(separator: ", ") + ")"
    }
}

public struct ExecutionError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Compilation is an explicit call that returns an immutable executable for one signature.
/// There is no implicit cache: compiling again for another signature is the caller's visible act.
public enum Compiler {
    /// Largest tensor an executable may hold (elements): a malformed graph fails here, not in malloc.
    public static let maxElements = 1 << 32

    public static func compile(_ graph: Graph, for signature: Signature, options: CompileOptions = CompileOptions()) throws -> Executable {
        try graph.verify()
        let declared = Signature.of(graph)
        if declared != signature {
            throw ExecutionError("graph '\(graph.name)' has signature \(declared) but was compiled for \(signature)")
        }
        for v in graph.values where Shape.count(v.shape) > maxElements {
            throw ExecutionError("%\(v.name) has \(Shape.count(v.shape)) elements (f32\(Shape.describe(v.shape))), more than this runtime allows")
        }
        var optimised = try Passes.deadCodeElimination(options.ranks == 1 ? try Passes.removeAllReduce(graph) : graph)
        if options.optimize {
            var pm = PassManager.standard
            pm.disabled = options.disabledPasses
            optimised = try pm.run(optimised).graph
        }
        let plan = MemoryPlan.plan(optimised)
        try plan.check()
        let program: BackendProgram
        switch options.backend {
        case .cpu: program = try ArenaProgram(graph: optimised, plan: plan, options: options)
        case .interpreter: program = InterpreterProgram(graph: optimised)
        }
        return Executable(graph: optimised, signature: signature, options: options, plan: plan, program: program)
    }
}

/// A graph specialised to a signature and a backend. Immutable: parameters live in a
/// `ParameterStore` that the caller passes to `run`.
public final class Executable: @unchecked Sendable {
    public let graph: Graph
    public let signature: Signature
    public let options: CompileOptions
    /// The static memory plan of the optimised graph (checked at compile time).
    public let plan: MemoryPlan
    /// The `cpu` backend's arena execution (nil for the interpreter).
    let backend: BackendProgram
    /// The `cpu` backend's arena execution (nil for the interpreter).
    var program: ArenaProgram? { backend as? ArenaProgram }

    /// The optimised LLVM IR of the executable's JIT-compiled kernels (nil without the JIT).
    public var llvmIR: String? { program?.jit.map { $0.modules.map(\.ir).joined(separator: "\n") } }
    /// Whether the JIT's machine code came from the object cache (nil: no JIT, or no cache given).
    public var jitCacheHit: Bool? {
        guard let modules = program?.jit?.modules, modules.allSatisfy({ $0.cacheHit != nil }) else { return nil }
        return modules.allSatisfy { $0.cacheHit == true }
    }
    /// How many times the kernels' scratch memory had to grow: constant after the first run (the
    /// steady state allocates no scratch).
    public var workspaceAllocations: Int { program?.workspace.allocations ?? 0 }
    /// The kernel of every step of the schedule, as chosen at compile time (empty for the interpreter,
    /// which runs the reference kernels only).
    public var kernelPlan: [PlannedStep] { program?.kernels ?? [] }
    /// How many kernels of the schedule the JIT compiled.
    public var jitKernelCount: Int { (program?.jit?.kernels.count ?? 0) + (program?.jit?.epilogueKernels.count ?? 0) }

    init(graph: Graph, signature: Signature, options: CompileOptions, plan: MemoryPlan, program: BackendProgram) {
        self.backend = program
        self.graph = graph
        self.signature = signature
        self.options = options
        self.plan = plan
    }

    /// Checks feeds against the signature; errors name the expected and the actual shapes.
    func checkFeeds(_ feeds: [String: Tensor]) throws {
        for (name, shape) in signature.inputs.sorted(by: { $0.key < $1.key }) {
            guard let t = feeds[name] else { throw ExecutionError("missing input '\(name)' (expected f32\(Shape.describe(shape)))") }
            if t.shape != shape {
                throw ExecutionError("input '\(name)': expected f32\(Shape.describe(shape)), got f32\(Shape.describe(t.shape))")
            }
        }
        for name in feeds.keys.sorted() where signature.inputs[name] == nil {
            throw ExecutionError("unexpected input '\(name)'; the graph's inputs are \(signature)")
        }
    }

    /// Runs the graph: returns its outputs by name and writes its updates into `parameters`.
    /// With a `profile`, the wall time of every kernel is added to it by op kind.
    public func run(_ feeds: [String: Tensor], parameters: inout ParameterStore, profile: Profile? = nil) throws -> [String: Tensor] {
        try checkFeeds(feeds)
        for id in graph.parameters {
            let v = graph[id]
            guard let t = parameters[v.name] else {
                throw ExecutionError("parameter '\(v.name)' is not in the store (initialise it or load a checkpoint)")
            }
            if t.shape != v.shape {
                throw ExecutionError("parameter '\(v.name)': expected f32\(Shape.describe(v.shape)), got f32\(Shape.describe(t.shape))")
            }
        }
        return backend.run(feeds, parameters: &parameters, profile: profile)
    }

    /// Runs a graph that has no parameters, or leaves them at their initial values.
    public func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        var store = ParameterStore(initializing: graph)
        return try run(feeds, parameters: &store)
    }
}

/// Kernel wall time by op kind, filled by `Executable.run(_:parameters:profile:)`.
public final class Profile: @unchecked Sendable {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var calls: [String: Int] = [:]
    public init() {}

    func add(_ kind: String, _ s: Double) {
        seconds[kind, default: 0] += s
        calls[kind, default: 0] += 1
    }

    /// The `limit` kinds that took longest, one line each: milliseconds, calls, kind.
    public func lines(limit: Int) -> [String] {
        seconds.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit).map { kind, t in
            String(format: "  %8.1f ms  %5d calls  ", t * 1000, calls[kind]!) + kind
        }
    }

    /// "conv2d", or "fused output: conv2d+add+relu" for fused kernels.
    static func kind(_ op: Op) -> String {
        guard case .fused(let f) = op else { return op.name }
        return "fused \(f.kind.rawValue): " + f.body.values.compactMap { $0.op?.name }.joined(separator: "+")
    }
}
