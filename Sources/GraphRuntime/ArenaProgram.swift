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
final class ArenaProgram: BackendProgram, @unchecked Sendable {
    let graph: Graph
    let plan: MemoryPlan
    let options: CompileOptions
    let steps: [Step]
    /// The kernel of every step (same order), chosen at compile time, and the code that runs it.
    let kernels: [PlannedStep]
    let bodies: [KernelBody]
    let arena: UnsafeMutableRawPointer
    /// Pointer of every value this run (arena values fixed at init, external ones per run).
    let table: UnsafeMutablePointer<UnsafePointer<Float>?>
    /// Flattened operand pointers of all steps, refreshed per run.
    let argTable: UnsafeMutablePointer<UnsafePointer<Float>>
    let argCount: Int
    /// Storage for graph constants, copied once.
    let constants: UnsafeMutablePointer<Float>
    let jit: JITKernels?
    /// Kernels' scratch memory, kept between runs.
    let workspace = Workspace()
    /// Runs share the arena: one at a time.
    let lock = NSLock()

    init(graph: Graph, plan: MemoryPlan, options: CompileOptions) throws {
        self.graph = graph
        self.plan = plan
        self.options = options
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
        // Fused output kernels run as contraction + in-place elementwise tail.
        var epilogues: [Int: OutputEpilogue] = [:]
        for s in steps {
            guard case .fused(let f) = s.op, let e = OutputEpilogue(f, s) else { continue }
            epilogues[s.value] = e
        }
        let jit = options.jit ? try JITKernels(graph: graph, plan: plan, steps: steps, epilogues: epilogues, cacheDirectory: options.compileCache) : nil
        self.jit = jit
        // The kernel plan: every choice made here, once.
        let tuner = options.tuningCache.map { KernelTuner.shared(path: $0) }
        let planner = ConvolutionPlanner(options: options, tuner: tuner)
        var hits = 0, measured = 0, busy = 0, busyLoad = 0.0, tunedSteps = Set<Int>()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let conv: (Step) -> ConvKernel = { s in
            let (k, outcome) = planner.choose(s)
            // A fused step may ask twice (as a fused convolution, then as its contraction): counted once.
            if let outcome, tunedSteps.insert(s.value).inserted {
                switch outcome {
                case .hit: hits += 1
                case .measured: measured += 1
                case .busy(let load): busy += 1; busyLoad = max(busyLoad, load)
                }
            }
            return k
        }
        var kernels: [PlannedStep] = [], bodies: [KernelBody] = []
        for s in steps {
            let (k, body) = Kernel.plan(s, jit: jit, epilogue: epilogues[s.value], conv: conv, heuristic: { planner.heuristic($0) })
            kernels.append(PlannedStep(value: graph.values[s.value].name, op: Profile.kind(s.op), operandShapes: s.operandShapes, shape: s.shape,
                                       kernel: k, tuned: tunedSteps.contains(s.value)))
            bodies.append(body)
        }
        self.kernels = kernels
        self.bodies = bodies
        if let tuner, hits + measured + busy > 0 {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            var line = "\(graph.name): \(hits + measured + busy) tuned steps (convolutions, skinny matmuls), \(hits) from \(tuner.path)"
            if measured + busy > 0 { line += ", \(measured + busy) measured (\(tuner.missReason()))" }
            if busy > 0 {
                line += String(format: "; %d of them while other processes kept %.0f %% of the cores busy: kept for this process only, not cached", busy, 100 * busyLoad)
            }
            if measured > 0 { tuner.save() }
            KernelTuner.log(line + String(format: ", %.2f s", seconds))
        }
    }

    deinit {
        arena.deallocate()
        table.deallocate()
        argTable.deallocate()
        constants.deallocate()
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
            for (i, s) in steps.enumerated() {
                let out = UnsafeMutablePointer(mutating: table[s.value]!)
                let x = UnsafePointer(argTable + s.argStart)
                if let profile {
                    let t = DispatchTime.now().uptimeNanoseconds
                    bodies[i](x, out, workspace)
                    profile.add(kernels[i].op + " [" + kernels[i].kernel.profileLabel + "]", Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
                } else {
                    bodies[i](x, out, workspace)
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
