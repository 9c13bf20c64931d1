import Foundation
import GraphAutodiff
import GraphIR
import GraphKernels
import GraphRuntime
import TestSupport
import XCTest

/// A stand-in for the other ranks of a run: `mirror` ranks that hold exactly what this one holds,
/// or one other rank holding `other`.
final class FakeRanks: Communicator, @unchecked Sendable {
    let rank = 0
    let size: Int
    let other: [Float]?
    var calls: [Int] = []
    init(mirrors: Int) { size = mirrors; other = nil }
    init(other: [Float]) { size = 2; self.other = other }

    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: AllReduceOp) throws {
        calls.append(count)
        for i in 0..<count {
            let total = other.map { buffer[i] + $0[i] } ?? buffer[i] * Float(size)
            buffer[i] = op == .sum ? total : total / Float(size)
        }
    }

    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {}

    var barriers = 0
    /// The slowest rank arrives 20 ms after this one.
    func barrier() throws { barriers += 1; usleep(20_000) }
}

final class AllReduceTests: XCTestCase {
    override func tearDown() { Collectives.communicator = nil }

    func graph(_ op: AllReduceOp) throws -> Graph {
        let b = GraphBuilder(name: "ar")
        let x = b.input("x", [2, 3])
        b.output("y", b.mul(b.apply(.allReduce(op), [x]), 2))
        return try b.finish()
    }

    func testTextFormatAndShape() throws {
        let g = try graph(.mean)
        let text = TextFormat.print(g)
        XCTAssertTrue(text.contains("all_reduce(%x) {reduction=mean} : f32[2,3]"), text)
        XCTAssertEqual(TextFormat.print(try TextFormat.parse(text)), text)
        XCTAssertThrowsError(try TextFormat.parse(text.replacingOccurrences(of: "reduction=mean", with: "reduction=max"))) {
            XCTAssertTrue("\($0)".contains("one of sum, mean"), "\($0)")
        }
    }

    func testOneRankRemovesItAndMoreRanksReduceOnBothBackends() throws {
        let g = try graph(.sum)
        let x = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let single = try Compiler.compile(g, for: Signature.of(g))
        XCTAssertFalse(TextFormat.print(single.graph).contains("all_reduce"))
        XCTAssertEqual(try single.run(["x": x])["y"]!.scalars, [2, 4, 6, 8, 10, 12])
        let fake = FakeRanks(other: [10, 20, 30, 40, 50, 60])
        Collectives.communicator = fake
        for backend in [Backend.interpreter, .cpu] {
            let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: backend, ranks: 2))
            XCTAssertTrue(TextFormat.print(exe.graph).contains("all_reduce"), "\(backend)")
            XCTAssertEqual(try exe.run(["x": x])["y"]!.scalars, [22, 44, 66, 88, 110, 132], "\(backend)")
        }
        XCTAssertEqual(fake.calls, [6, 6])
    }

    /// `measureWaiting`: a barrier before every all_reduce, its time counted as waiting (and
    /// inside the collectives' total); off, no barrier.
    func testMeasureWaitingSplitsTheTimeInCollectives() throws {
        let g = try graph(.sum)
        let fake = FakeRanks(other: [Float](repeating: 1, count: 6))
        Collectives.communicator = fake
        defer { Collectives.measureWaiting = false }
        let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, ranks: 2))
        let x = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        _ = try exe.run(["x": x])
        XCTAssertEqual(fake.barriers, 0)
        Collectives.measureWaiting = true
        let (w0, r0) = (Collectives.secondsWaiting, Collectives.secondsReducing)
        XCTAssertEqual(try exe.run(["x": x])["y"]!.scalars, [4, 6, 8, 10, 12, 14])
        XCTAssertEqual(fake.barriers, 1)
        let waited = Collectives.secondsWaiting - w0, total = Collectives.secondsReducing - r0
        XCTAssertGreaterThanOrEqual(waited, 0.019)
        XCTAssertGreaterThanOrEqual(total, waited)
    }

    func testGradientIsTheCollectiveOfTheCotangent() throws {
        let b = GraphBuilder(name: "g")
        let x = b.input("x", [3]), w = b.input("w", [3])
        let loss = b.sum(b.mul(b.apply(.allReduce(.sum), [x]), w), axes: [0])
        let dx = try Autodiff.gradient(in: b, of: loss, wrt: [x])[0]
        b.output("grad.x", dx)
        let grad = try b.finish()
        Collectives.communicator = FakeRanks(other: [100, 200, 300])
        let exe = try Compiler.compile(grad, for: Signature.of(grad), options: CompileOptions(backend: .interpreter, ranks: 2))
        let out = try exe.run(["x": Tensor(shape: [3], scalars: [1, 2, 3]), "w": Tensor(shape: [3], scalars: [1, 2, 3])])
        XCTAssertEqual(out["grad.x"]!.scalars, [101, 202, 303])
    }

    func testTrainingStepAveragesGradientsInBuckets() throws {
        let b = GraphBuilder(name: "three")
        let x = b.input("x", [4, 5])
        let w1 = b.parameter("w1", [5, 6], .glorotUniform(seed: 1)), w2 = b.parameter("w2", [6, 2], .glorotUniform(seed: 2))
        let bias = b.parameter("bias", [2], .zeros)
        b.output("loss", b.mean(b.square(b.add(b.matmul(b.relu(b.matmul(x, w1)), w2), bias))))
        let forward = try b.finish()
        func count(_ g: Graph) -> Int { g.values.filter { if case .allReduce? = $0.op { return true } else { return false } }.count }
        let plain = try Optimizers.trainingStep(forward, loss: "loss", optimizer: .adam(AdamConfig()))
        let oneBucket = try Optimizers.trainingStep(forward, loss: "loss", optimizer: .adam(AdamConfig()), bucketBytes: 1 << 20)
        let perGradient = try Optimizers.trainingStep(forward, loss: "loss", optimizer: .adam(AdamConfig()), bucketBytes: 4)
        XCTAssertEqual([count(plain), count(oneBucket), count(perGradient)], [0, 1, 3])
        let feeds: [String: Tensor] = ["x": randomTensor([4, 5], seed: 3), "learning_rate": Tensor(0.01), "step": Tensor(1)]
        func train(_ g: Graph, ranks: Int) throws -> ParameterStore {
            let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(ranks: ranks))
            var store = ParameterStore(initializing: g)
            for _ in 0..<3 { _ = try exe.run(feeds, parameters: &store) }
            return store
        }
        let reference = try train(plain, ranks: 1)
        // One rank: the collectives are removed, the step is the plain one bit for bit.
        XCTAssertEqual(try train(oneBucket, ranks: 1).values, reference.values)
        // Two ranks that hold the same batch: the mean of two equal gradients is that gradient.
        let fake = FakeRanks(mirrors: 2)
        Collectives.communicator = fake
        XCTAssertEqual(try train(oneBucket, ranks: 2).values, reference.values)
        XCTAssertEqual(fake.calls, [30 + 12 + 2, 30 + 12 + 2, 30 + 12 + 2], "one bucket of every gradient per step")
        XCTAssertEqual(try train(perGradient, ranks: 2).values, reference.values)
    }
}
