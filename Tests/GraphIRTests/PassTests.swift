import GraphIR
import GraphPasses
import TestSupport
import XCTest

final class PassTests: XCTestCase {
    func opNames(_ g: Graph) -> [String] { g.values.compactMap { $0.op?.name } }

    func testCSEMergesDuplicatesAndConstants() throws {
        let b = GraphBuilder(name: "cse")
        let x = b.input("x", [3])
        let a1 = b.exp(x), a2 = b.exp(x)
        let s = b.add(b.mul(a1, b.constant(2)), b.mul(a2, b.constant(2)))
        b.output("s", s)
        let g = try Passes.deadCodeElimination(try Passes.commonSubexpressionElimination(try b.finish()))
        XCTAssertEqual(opNames(g).filter { $0 == "exp" }.count, 1)
        XCTAssertEqual(opNames(g).filter { $0 == "mul" }.count, 1)
        XCTAssertEqual(g.values.filter { if case .constant = $0.definition { return true } else { return false } }.count, 1)
    }

    func testConstantFoldingAndSimplification() throws {
        let b = GraphBuilder(name: "fold")
        let x = b.input("x", [2, 3])
        let c = b.add(b.constant(Tensor(shape: [3], scalars: [1, 2, 3])), b.constant(1))  // folds to [2,3,4]
        var y = b.mul(b.add(x, b.constant(0)), b.constant(1))  // x
        y = b.neg(b.neg(y))  // x
        y = b.reshape(b.reshape(y, [3, 2]), [6])  // one reshape
        y = b.transpose(b.transpose(b.reshape(y, [2, 3]), [1, 0]), [1, 0])  // identity
        b.output("y", b.add(y, c))
        let raw = try b.finish()
        var g = try Passes.constantFolding(raw)
        g = try Passes.deadCodeElimination(try Passes.algebraicSimplification(g))
        g = try Passes.deadCodeElimination(try Passes.algebraicSimplification(g))
        XCTAssertEqual(opNames(g), ["add"], TextFormat.print(g))  // reshape(reshape(x)) to its own shape is x
        let feeds = ["x": randomTensor([2, 3], seed: 1)]
        XCTAssertEqual(try evaluate(raw, feeds)["y"], try evaluate(g, feeds)["y"])
    }

    func testFusionKinds() throws {
        let b = GraphBuilder(name: "fuse")
        let x = b.input("x", [2, 8, 8, 3]), k = b.input("k", [3, 3, 3, 4]), bias = b.input("bias", [4])
        let conv = b.relu(b.add(b.conv2dSame(x, k, stride: 1), bias))  // output fusion
        let act = b.mul(b.sigmoid(conv), b.constant(2))  // loop fusion... chained into the same group
        let loss = b.mean(b.square(b.sub(act, b.constant(0.5))))  // input fusion
        b.output("act", act)
        b.output("loss", loss)
        let raw = try b.finish()
        let fused = try Passes.fusion(raw)
        var kinds: [FusionKind] = []
        for v in fused.values { if case .fused(let f)? = v.op { kinds.append(f.kind) } }
        XCTAssertEqual(kinds, [.output, .input], TextFormat.print(fused))
        let feeds = ["x": randomTensor([2, 8, 8, 3], seed: 1), "k": randomTensor([3, 3, 3, 4], seed: 2), "bias": randomTensor([4], seed: 3)]
        let a = try evaluate(raw, feeds), c = try evaluate(fused, feeds)
        XCTAssertLessThan(relativeErrors(c["act"]!, a["act"]!).max, 1e-6)
        XCTAssertLessThan(relativeErrors(c["loss"]!, a["loss"]!).max, 1e-6)
        // A fused graph prints with nested bodies and parses back to the same graph.
        let text = TextFormat.print(fused)
        XCTAssertTrue(text.contains("fused(") && text.contains("  output result = "), text)
        XCTAssertEqual(TextFormat.print(try TextFormat.parse(text)), text)
        XCTAssertEqual(try TextFormat.parse(text), fused)
    }

    /// A stride-1 convolution takes the nearest upsampling it alone reads into its output kernel,
    /// any convolution the channel concatenation it alone reads; an upsampling read twice (here by
    /// a second convolution) or feeding a strided convolution stays a value.
    func testFusionTakesAnUpsamplingOrConcatenationIntoTheConvolutionThatAloneReadsIt() throws {
        let b = GraphBuilder(name: "up")
        let x = b.input("x", [1, 4, 4, 3]), k = b.input("k", [2, 2, 3, 5]), bias = b.input("bias", [5])
        b.output("a", b.relu(b.add(b.conv2d(b.upsampleNearest(x, factor: 2), k, strides: [1, 1], padding: [0, 1, 0, 1]), bias)))
        let shared = b.upsampleNearest(b.exp(x), factor: 2)
        b.output("b", b.add(b.conv2d(shared, k, strides: [1, 1], padding: [0, 1, 0, 1]), bias))
        b.output("c", b.add(b.conv2d(shared, k, strides: [1, 1], padding: [0, 1, 0, 1]), b.constant(1)))
        b.output("d", b.add(b.conv2d(b.upsampleNearest(x, factor: 2), k, strides: [2, 2], padding: [0, 1, 0, 1]), bias))
        // A channel concatenation goes into any convolution that alone reads it, strided too.
        b.output("e", b.add(b.conv2d(b.concat([x, b.neg(x)], axis: 3), b.input("k6", [3, 3, 6, 5]), strides: [2, 2], padding: [0, 1, 0, 1]), bias))
        let raw = try b.finish()
        let fused = try Passes.fusion(raw)
        var bodies: [String] = []
        for v in fused.values {
            guard case .fused(let f)? = v.op else { continue }
            bodies.append(f.body.values.compactMap { $0.op?.name }.joined(separator: "+"))
        }
        XCTAssertEqual(bodies.filter { $0.hasPrefix("upsample_nearest+conv2d") }, ["upsample_nearest+conv2d+add+relu"], "\(bodies)")
        XCTAssertEqual(fused.values.filter { $0.op?.name == "upsample_nearest" }.count, 2, TextFormat.print(fused))
        XCTAssertTrue(bodies.contains("concat+conv2d+add"), "\(bodies)")
        XCTAssertFalse(fused.values.contains { $0.op?.name == "concat" }, TextFormat.print(fused))
        let feeds = ["x": randomTensor([1, 4, 4, 3], seed: 1), "k": randomTensor([2, 2, 3, 5], seed: 2), "bias": randomTensor([5], seed: 3),
                     "k6": randomTensor([3, 3, 6, 5], seed: 4)]
        let before = try evaluate(raw, feeds), after = try evaluate(fused, feeds)
        for name in ["a", "b", "c", "d", "e"] { XCTAssertLessThan(relativeErrors(after[name]!, before[name]!).max, 1e-6, name) }
    }

    func testFusedBodyErrorsNameTheirLine() {
        let text = """
        graph g
        input %x : f32[3]
        %f = fused(%x) {kind=loop} : f32[3] {
          input %arg0 : f32[3]
          %a = exp(%arg0) : f32[3]
          %b = add(%a, %zz) : f32[3]
          output result = %b
        }
        output y = %f
        """
        XCTAssertThrowsError(try TextFormat.parse(text)) { e in
            XCTAssertEqual((e as? GraphError)?.line, 6, "\(e)")
            XCTAssertTrue("\(e)".contains("undefined value %zz"), "\(e)")
        }
        let unclosed = "graph g\ninput %x : f32[3]\n%f = fused(%x) {kind=loop} : f32[3] {\n  input %arg0 : f32[3]\n"
        XCTAssertThrowsError(try TextFormat.parse(unclosed)) { XCTAssertTrue("\($0)".contains("not closed"), "\($0)") }
        let wrongArg = "graph g\ninput %x : f32[3]\n%f = fused(%x) {kind=loop} : f32[3] {\n  input %arg0 : f32[4]\n  output result = %arg0\n}\n"
        XCTAssertThrowsError(try TextFormat.parse(wrongArg)) { XCTAssertTrue("\($0)".contains("operand 0 is [3]"), "\($0)") }
    }

    func testPassManagerSwitchesPassesOffAndDumps() throws {
        let b = GraphBuilder(name: "pm")
        let x = b.input("x", [4])
        b.output("y", b.relu(b.add(b.exp(x), b.constant(1))))
        let g = try b.finish()
        var pm = PassManager.standard
        var dumped: [String] = []
        let (all, report) = try pm.run(g) { name, _ in dumped.append(name) }
        XCTAssertEqual(dumped, pm.names)
        XCTAssertEqual(report.last?.fusedKernels, 1)
        XCTAssertEqual(all.values.filter { $0.op != nil }.count, 1)
        pm.disabled = ["fusion"]
        XCTAssertEqual(try pm.run(g).graph.values.filter { $0.op != nil }.count, 3)
        pm.disabled = ["nonsense"]
        XCTAssertThrowsError(try pm.run(g)) { XCTAssertTrue("\($0)".contains("unknown pass 'nonsense'")) }
    }

    /// A reshape reads its operand's storage (no buffer, no copy) while the operand lives on; no
    /// op takes that storage over while either still has a reader.
    func testReshapesAreViewsOfTheirOperands() throws {
        let b = GraphBuilder(name: "views")
        let x = b.input("x", [4, 6])
        let a = b.exp(x)
        let r = b.reshape(a, [24])
        let s = b.unary(.sin, r)  // r dies here, but a lives on: sin may not write over them
        b.output("y", b.add(b.reshape(s, [4, 6]), b.mul(a, a)))
        let g = try b.finish()
        let plan = MemoryPlan.plan(g)
        XCTAssertNoThrow(try plan.check())
        let byName = Dictionary(uniqueKeysWithValues: plan.buffers.map { ($0.value, $0) })
        let view = try XCTUnwrap(byName[r])
        XCTAssertEqual(view.views, a)
        XCTAssertEqual(view.offset, byName[a]!.offset)
        XCTAssertNotEqual(byName[s]!.offset, byName[a]!.offset, "sin wrote over a, which is read later")
        XCTAssertNil(byName[s]!.reuses)
    }

    func testPlanCheckerCatchesOverlaps() throws {
        let b = GraphBuilder(name: "plan")
        let x = b.input("x", [256])
        let a = b.exp(x), c = b.unary(.sin, x)
        b.output("y", b.add(a, c))
        var plan = MemoryPlan.plan(try b.finish())
        XCTAssertNoThrow(try plan.check())
        XCTAssertGreaterThanOrEqual(plan.arenaBytes, plan.lowerBoundBytes)
        // a and c are live together: putting them at the same offset must be caught.
        plan.buffers[1].offset = plan.buffers[0].offset
        XCTAssertThrowsError(try plan.check()) { XCTAssertTrue("\($0)".contains("overlap"), "\($0)") }
    }
}
