import GraphIR
import GraphPasses
import GraphRuntime
import TestSupport
import XCTest

/// Random graphs give the same outputs through the interpreter with and without the pass
/// pipeline, and every memory plan passes the checker.
final class OptimizationPropertyTests: XCTestCase {
    struct Rng {
        var state: UInt64
        mutating func next(_ n: Int) -> Int {
            state = CounterRandom.mix(state)
            return Int(state % UInt64(n))
        }
    }

    func randomGraph(_ seed: UInt64) throws -> Graph {
        var rng = Rng(state: seed)
        let b = GraphBuilder(name: "random\(seed)")
        let shape = [2, 6, 6, 4]
        var pool: [ValueID] = [b.input("x", shape), b.input("y", shape), b.input("v", [4])]
        let k = b.input("k", [3, 3, 4, 4])
        for _ in 0..<(12 + rng.next(12)) {
            let a = pool[rng.next(pool.count)], c = pool[rng.next(pool.count)]
            let v: ValueID
            switch rng.next(11) {
            case 0: v = b.unary([.tanh, .sigmoid, .relu, .neg, .sin, .abs][rng.next(6)], a)
            case 1, 2: v = b.binary([.add, .sub, .mul, .maximum][rng.next(4)], a, c)
            case 3: v = b.add(a, b.constant(Float(rng.next(3))))  // includes x + 0
            case 4: v = b.mul(a, b.constant(1))
            case 5: v = b.conv2dSame(b.shape(a) == shape ? a : b.broadcast(a, to: shape), k, stride: 1)
            case 6: v = b.reshape(b.reshape(b.shape(a) == shape ? a : b.broadcast(a, to: shape), [12, 6, 4]), shape)
            case 7: v = b.exp(b.neg(b.square(a)))
            case 8: v = b.exp(b.neg(b.square(a)))  // a duplicate for CSE, sometimes
            case 9: v = b.sum(b.shape(a) == shape ? a : b.broadcast(a, to: shape), axes: [0, 1, 2])
            default: v = b.select(b.binary(.greater, a, b.constant(0)), a, c)
            }
            pool.append(v)
        }
        b.output("out", b.mean(pool.last!, axes: Array(0..<b.shape(pool.last!).count)))
        b.output("mid", pool[pool.count / 2])
        return try b.finish()
    }

    func testRandomGraphsAgreeWithAndWithoutOptimisation() throws {
        var fusedSeen = 0
        for seed in 0..<60 as Range<UInt64> {
            let g = try randomGraph(seed)
            let feeds = ["x": randomTensor([2, 6, 6, 4], seed: seed), "y": randomTensor([2, 6, 6, 4], seed: seed + 100),
                         "v": randomTensor([4], seed: seed + 200), "k": randomTensor([3, 3, 4, 4], seed: seed + 300, lo: -0.3, hi: 0.3)]
            let plain = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .interpreter, optimize: false))
            let optimised = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .interpreter))
            try optimised.plan.check()
            XCTAssertGreaterThanOrEqual(optimised.plan.arenaBytes, optimised.plan.lowerBoundBytes)
            XCTAssertLessThanOrEqual(optimised.plan.arenaBytes, optimised.plan.naiveBytes)
            fusedSeen += optimised.graph.values.filter { if case .fused? = $0.op { return true } else { return false } }.count
            // ... and through the CPU backend in its arena (tiled fused loops or GraphJIT, fused
            // convolution epilogues).
            let cpu = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: false))
            let jit = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: true))
            let a = try plain.run(feeds), c = try optimised.run(feeds), d = try cpu.run(feeds), e = try jit.run(feeds)
            for name in ["out", "mid"] {
                XCTAssertLessThan(relativeErrors(c[name]!, a[name]!).max, 1e-5, "seed \(seed) \(name)")
                XCTAssertLessThan(relativeErrors(d[name]!, a[name]!).max, 1e-4, "seed \(seed) \(name) (cpu)")
                XCTAssertLessThan(relativeErrors(e[name]!, a[name]!).max, 1e-4, "seed \(seed) \(name) (cpu+jit)")
            }
            // The optimised graph round-trips through the text format.
            XCTAssertEqual(try TextFormat.parse(TextFormat.print(optimised.graph)), optimised.graph, "seed \(seed)")
        }
        XCTAssertGreaterThan(fusedSeen, 60)
    }
}
