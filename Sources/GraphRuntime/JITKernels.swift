import Dispatch
import FastKernelSupport
import Foundation
import GraphIR
import GraphJIT
import GraphPasses

/// The GraphJIT kernels of one executable: every fused elementwise loop, every fused reduction
/// (input kernel) over trailing axes, every standalone unary, binary or select op, and the
/// elementwise tails of fused output kernels, compiled together when the executable is compiled.
final class JITKernels: @unchecked Sendable {
    /// The kernels in a few modules compiled side by side (LLVM's optimiser and code generator are
    /// single-threaded per module).
    let modules: [JITModule]
    /// value index -> (function, loop nest)
    typealias Compiled = (function: ElementwiseFunction, nest: LoopNest, splittable: Bool)
    let kernels: [Int: Compiled]
    /// value index -> the elementwise tail of a fused output kernel
    let epilogueKernels: [Int: Compiled]

    /// Elements below which a kernel runs on one core (thread start-up costs more than it saves).
    static let parallelThreshold = 1 << 15

    init(graph: Graph, plan: MemoryPlan, steps: [Step], epilogues: [Int: OutputEpilogue], cacheDirectory: String?) throws {
        var reuses: [Int: Int] = [:]
        for b in plan.buffers { if let r = b.reuses { reuses[b.value.index] = r.index } }
        var specs: [ElementwiseKernel] = []
        for s in steps {
            let body: Graph
            switch s.op {
            case .fused(let f) where f.kind == .loop || f.kind == .input: body = f.body
            case .unary, .binary, .select: body = try Self.singleOpBody(s)
            default: continue
            }
            guard ElementwiseKernel.accepts(body, shape: s.shape), Shape.count(s.shape) > 0 else { continue }
            let inPlace = Set(s.operands.indices.filter { reuses[s.value] == s.operands[$0] && s.operandShapes[$0] == s.shape })
            specs.append(ElementwiseKernel(name: "k\(s.value)", body: body, operandShapes: s.operandShapes, shape: s.shape, inPlaceOperands: inPlace))
        }
        let tails = epilogues.sorted { $0.key < $1.key }.map { $0.value.jitKernel(name: "e\($0.key)") }
        let all = specs + tails
        let parts = all.count >= 16 ? max(1, min(Parallel.threads ?? ProcessInfo.processInfo.activeProcessorCount, 4)) : 1
        let slices = (0..<parts).map { p in Array(all[(all.count * p / parts)..<(all.count * (p + 1) / parts)]) }
        let built = UnsafeMutablePointer<Result<JITModule, Error>?>.allocate(capacity: parts)
        built.initialize(repeating: nil, count: parts)
        defer { built.deinitialize(count: parts); built.deallocate() }
        nonisolated(unsafe) let results = built
        let cache = cacheDirectory
        Parallel.forEach(parts) { p in results[p] = Result { try JITModule(slices[p], cacheDirectory: cache) } }
        modules = try (0..<parts).map { try built[$0]!.get() }
        var kernels: [Int: Compiled] = [:], epilogueKernels = kernels
        var owner: [String: JITModule] = [:]
        for m in modules { for name in m.functions.keys { owner[name] = m } }
        func compiled(_ name: String) -> Compiled {
            let m = owner[name]!
            return (m.functions[name]!, m.nests[name]!, m.splittable[name]!)
        }
        for k in specs { kernels[Int(k.name.dropFirst())!] = compiled(k.name) }
        for k in tails { epilogueKernels[Int(k.name.dropFirst())!] = compiled(k.name) }
        self.kernels = kernels
        self.epilogueKernels = epilogueKernels
    }

    /// A one-op body (inputs arg0..) so a standalone elementwise op compiles like a fused loop.
    static func singleOpBody(_ s: Step) throws -> Graph {
        let b = GraphBuilder(name: "op")
        let args = s.operandShapes.enumerated().map { b.input("arg\($0.offset)", $0.element) }
        b.output("out", b.apply(s.op, args))
        return try b.finish()
    }

    /// Runs the kernel of `value` if there is one; false otherwise.
    func run(_ value: Int, _ x: Args, _ out: UnsafeMutablePointer<Float>) -> Bool {
        guard let k = kernels[value] else { return false }
        Self.call(k, x, out)
        return true
    }

    /// Runs the epilogue (tail) kernel of the fused output kernel `value`; its operand 0 is `out`.
    func runEpilogue(_ value: Int, _ x: Args, _ out: UnsafeMutablePointer<Float>) -> Bool {
        guard let k = epilogueKernels[value] else { return false }
        Self.call(k, x, out)
        return true
    }

    static func call(_ k: Compiled, _ x: Args, _ out: UnsafeMutablePointer<Float>) {
        let (f, nest) = (k.function, k.nest)
        let outer = nest.extents[0]
        if k.splittable && outer >= 2 && outer * nest.innerCount >= Self.parallelThreshold {
            let half = Int64(outer / 2)
            // The two halves write disjoint ranges of `out`.
            nonisolated(unsafe) let (args, result) = (x, out)
            Parallel.forEach(2) { part in
                f(args, result, part == 0 ? 0 : half, part == 0 ? half : Int64(outer))
            }
        } else {
            f(x, out, 0, Int64(outer))
        }
    }
}
