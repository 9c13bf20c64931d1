import Dispatch
import FastKernels
import Foundation
import GraphIR
import GraphKernels
import GraphPasses

/// One op of the schedule, resolved at compile time: what it reads, its shapes, where its
/// operand pointers sit in the argument table.
struct Step {
    let value: Int
    let op: Op
    let operands: [Int]
    let operandShapes: [[Int]]
    let shape: [Int]
    let argStart: Int
    let count: Int
}

/// Operand pointers of one step: `x[0]`, `x[1]`, ...
typealias Args = UnsafePointer<UnsafePointer<Float>>

/// How the `cpu` backend executes an Executable: every op result lives in one arena, allocated
/// once when the executable is compiled, at the offset the MemoryPlan gave it; kernels run in
/// schedule order and write straight into their buffers. Inputs and parameters are read where
/// the caller keeps them; updates are copied into the parameter store in place.
final class ArenaProgram: @unchecked Sendable {
    let graph: Graph
    let plan: MemoryPlan
    let options: CompileOptions
    /// The convolution kernels the options choose (nil: im2col + sgemm).
    let direct: DirectKernels?
    let steps: [Step]
    let arena: UnsafeMutableRawPointer
    /// Pointer of every value this run (arena values fixed at init, external ones per run).
    let table: UnsafeMutablePointer<UnsafePointer<Float>?>
    /// Flattened operand pointers of all steps, refreshed per run.
    let argTable: UnsafeMutablePointer<UnsafePointer<Float>>
    let argCount: Int
    /// Storage for graph constants, copied once.
    let constants: UnsafeMutablePointer<Float>
    let jit: JITKernels?
    /// Fused output kernels run as contraction + in-place elementwise tail, with their argument tables.
    let epilogues: [Int: (epilogue: OutputEpilogue, contractionArgs: UnsafeMutablePointer<UnsafePointer<Float>>,
                          tailArgs: UnsafeMutablePointer<UnsafePointer<Float>>)]
    /// Kernels' scratch memory, kept between runs.
    let workspace = Workspace()
    /// Runs share the arena: one at a time.
    let lock = NSLock()

    init(graph: Graph, plan: MemoryPlan, options: CompileOptions) throws {
        self.graph = graph
        self.plan = plan
        self.options = options
        direct = DirectKernels(options)
        arena = UnsafeMutableRawPointer.allocate(byteCount: max(plan.arenaBytes, MemoryPlan.alignment), alignment: MemoryPlan.alignment)
        let n = graph.values.count
        table = .allocate(capacity: max(n, 1))
        table.initialize(repeating: nil, count: max(n, 1))
        for b in plan.buffers {
            table[b.value.index] = UnsafePointer((arena + b.offset).assumingMemoryBound(to: Float.self))
        }
        var steps: [Step] = []
        var args = 0
        for id in plan.schedule {
            let v = graph[id]
            guard case .op(let op, let operands) = v.definition else { continue }
            steps.append(Step(value: id.index, op: op, operands: operands.map(\.index), operandShapes: operands.map { graph[$0].shape },
                              shape: v.shape, argStart: args, count: operands.count))
            args += operands.count
        }
        self.steps = steps
        argCount = args
        argTable = .allocate(capacity: max(args, 1))
        var constantCount = 0
        for v in graph.values { if case .constant(let t) = v.definition { constantCount += t.count } }
        let storage = UnsafeMutablePointer<Float>.allocate(capacity: max(constantCount, 1))
        constants = storage
        var cursor = 0
        for (i, v) in graph.values.enumerated() {
            guard case .constant(let t) = v.definition else { continue }
            t.scalars.withUnsafeBufferPointer { if let p = $0.baseAddress { (storage + cursor).update(from: p, count: t.count) } }
            table[i] = UnsafePointer(storage + cursor)
            cursor += t.count
        }
        var epilogues: [Int: (OutputEpilogue, UnsafeMutablePointer<UnsafePointer<Float>>, UnsafeMutablePointer<UnsafePointer<Float>>)] = [:]
        for s in steps {
            guard case .fused(let f) = s.op, let e = OutputEpilogue(f, s) else { continue }
            epilogues[s.value] = (e, .allocate(capacity: max(e.contraction.count, 1)), .allocate(capacity: e.tailStep.count))
        }
        self.epilogues = epilogues
        jit = options.jit ? try JITKernels(graph: graph, plan: plan, steps: steps, epilogues: epilogues.mapValues(\.0)) : nil
    }

    deinit {
        arena.deallocate()
        table.deallocate()
        argTable.deallocate()
        constants.deallocate()
        for e in epilogues.values { e.contractionArgs.deallocate(); e.tailArgs.deallocate() }
    }

    func run(_ feeds: [String: Tensor], parameters: inout ParameterStore, profile: Profile?) -> [String: Tensor] {
        lock.lock()
        defer { lock.unlock() }
        // Inputs and parameters, in value order, pinned for the whole run.
        let externals = graph.values.indices.filter {
            switch graph.values[$0].definition {
            case .input, .parameter: return true
            default: return false
            }
        }
        let tensors = externals.map { i -> Tensor in
            let v = graph.values[i]
            if case .input = v.definition { return feeds[v.name]! }
            return parameters[v.name]!
        }
        var outputs: [String: Tensor] = [:]
        Self.withPinned(tensors) { pointers in
            for (k, i) in externals.enumerated() { table[i] = pointers[k] }
            for s in steps { for k in 0..<s.count { argTable[s.argStart + k] = table[s.operands[k]]! } }
            for s in steps {
                let out = UnsafeMutablePointer(mutating: table[s.value]!)
                if let profile {
                    let t = DispatchTime.now().uptimeNanoseconds
                    let path = execute(s, out)
                    profile.add(Profile.kind(s.op) + path.label, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
                } else {
                    execute(s, out)
                }
            }
            for o in graph.outputs {
                let v = graph[o.value]
                outputs[o.name] = Tensor(shape: v.shape, scalars: Array(UnsafeBufferPointer(start: table[o.value.index]!, count: Shape.count(v.shape))))
            }
        }
        // Updates: written over the parameter's storage (no copy-on-write when the store owns it alone).
        // A value first, then the store: an update may read another parameter that is also updated.
        var staged: [(String, Tensor)] = []
        for u in graph.updates {
            let v = graph[u.value]
            switch v.definition {  // an input, a parameter or a constant: the tensor as it was read
            case .input: staged.append((graph[u.parameter].name, feeds[v.name]!))
            case .parameter: staged.append((graph[u.parameter].name, parameters[v.name]!))
            case .constant(let t): staged.append((graph[u.parameter].name, t))
            case .op: break
            }
        }
        for u in graph.updates where graph[u.value].op != nil {
            let name = graph[u.parameter].name
            let src = table[u.value.index]!
            var t = parameters.values.removeValue(forKey: name)!
            t.scalars.withUnsafeMutableBufferPointer { if $0.count > 0 { $0.baseAddress!.update(from: src, count: $0.count) } }
            staged.append((name, t))
        }
        for (name, t) in staged { parameters[name] = t }
        return outputs
    }

    /// Which code ran a step (shown in profiles).
    enum Path {
        case jit, native, reference
        var label: String { self == .jit ? " (jit)" : self == .reference ? " (reference)" : "" }
    }

    /// Runs one step into `out`.
    @discardableResult
    func execute(_ s: Step, _ out: UnsafeMutablePointer<Float>) -> Path {
        let x = UnsafePointer(argTable + s.argStart)
        if let jit, jit.run(s.value, x, out) { return .jit }
        if case .fused(let f) = s.op {
            if let direct, CPUKernels.fusedConvolution(f, s, x, out, direct: direct, workspace: workspace) { return .native }
            if let (e, cArgs, tArgs) = epilogues[s.value] {
                for (k, o) in e.contractionOperands.enumerated() { cArgs[k] = x[o] }
                if CPUKernels.run(e.contraction, cArgs, out, direct: direct, workspace: workspace) {
                    tArgs[0] = UnsafePointer(out)
                    for (k, o) in e.tailOperands.enumerated() { tArgs[k + 1] = x[o] }
                    if let jit, jit.runEpilogue(s.value, tArgs, out) { return .jit }
                    if FusedLoops.run(e.tail, e.tailStep, tArgs, out, workspace: workspace) { return .native }
                }
            }
            if FusedLoops.run(f, s, x, out, workspace: workspace) { return .native }
        } else if CPUKernels.run(s, x, out, direct: direct, workspace: workspace) {
            return .native
        }
        // Reference kernel on copies of the operands.
        let args = (0..<s.count).map { k in
            Tensor(shape: s.operandShapes[k], scalars: Array(UnsafeBufferPointer(start: x[k], count: Shape.count(s.operandShapes[k]))))
        }
        let result: Tensor
        if case .fused(let f) = s.op {
            result = ReferenceKernels.evaluate(f.body, args) { op, a, shape in
                if let t = CPUKernels.run(op, a, shape: shape, direct: self.direct) { return t }
                return ReferenceKernels.run(op, a, shape: shape)
            }
        } else {
            result = ReferenceKernels.run(s.op, args, shape: s.shape)
        }
        result.scalars.withUnsafeBufferPointer { if let p = $0.baseAddress { out.update(from: p, count: $0.count) } }
        return .reference
    }

    /// Pointers to the storage of each tensor, valid inside `body`.
    static func withPinned<R>(_ tensors: [Tensor], _ body: ([UnsafePointer<Float>]) -> R) -> R {
        var acc: [UnsafePointer<Float>] = []
        acc.reserveCapacity(tensors.count)
        func go(_ i: Int) -> R {
            if i == tensors.count { return body(acc) }
            return tensors[i].scalars.withUnsafeBufferPointer { p in
                // An empty tensor has no storage: any aligned pointer will do, nothing reads it.
                acc.append(p.baseAddress ?? UnsafePointer(bitPattern: MemoryPlan.alignment)!)
                return go(i + 1)
            }
        }
        return go(0)
    }
}
