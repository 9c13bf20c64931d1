import GraphAutodiff
import GraphIR
import GraphRuntime
import TestSupport
import XCTest

/// Every op kind, from the exhaustive `OpSamples`: the text format round-trips it, the CPU
/// backend (JIT or not) computes what the interpreter does, and its gradient is what finite
/// differences say (or, for the ops that pass none, autodiff says so). A new op fails here until
/// every layer covers it.
final class EveryOpTests: XCTestCase {
    func graph(_ s: OpSample) throws -> (Graph, [String: Tensor]) {
        let b = GraphBuilder(name: "one")
        let ids = s.operands.enumerated().map { b.input("x\($0.offset)", $0.element.shape) }
        b.output("y", b.apply(s.op, ids))
        var feeds: [String: Tensor] = [:]
        for (i, t) in s.operands.enumerated() { feeds["x\(i)"] = t }
        return (try b.finish(), feeds)
    }

    /// The sample's op on graph inputs, summed to a scalar `loss`.
    func summed(_ s: OpSample) throws -> (Graph, ValueID, [ValueID]) {
        let b = GraphBuilder(name: "summed")
        let ids = s.operands.enumerated().map { b.input("x\($0.offset)", $0.element.shape) }
        let y = b.apply(s.op, ids)
        let loss = b.sum(y, axes: Array(0..<b.shape(y).count))
        b.output("loss", loss)
        return (try b.finish(), loss, ids)
    }

    func testEveryKindHasSamples() {
        for kind in OpKind.allCases {
            let samples = OpSamples.samples(kind)
            XCTAssertFalse(samples.isEmpty, "\(kind)")
            for s in samples { XCTAssertEqual(s.op.kind, kind, "\(s)") }
        }
        XCTAssertEqual(Set(OpSamples.all.map(\.op.kind)), Set(OpKind.allCases))
    }

    func testTextFormatRoundTripsEveryOp() throws {
        for s in OpSamples.all {
            let (g, _) = try graph(s)
            let text = TextFormat.print(g)
            let back = try TextFormat.parse(text)
            XCTAssertEqual(TextFormat.print(back), text, "\(s)")
            XCTAssertEqual(back.values.compactMap(\.op).map(\.name), [s.op.name], "\(s)")
            if case .fused = s.op { continue }  // fused kernels are printed as blocks
            XCTAssertEqual(try Op.make(name: s.op.name, attributes: Dictionary(uniqueKeysWithValues: s.op.attributes)), s.op, "\(s)")
        }
    }

    func testCPUBackendMatchesTheInterpreterOnEveryOp() throws {
        for s in OpSamples.all {
            let (g, feeds) = try graph(s)
            let ref = try evaluate(g, feeds, backend: .interpreter)["y"]!
            for jit in [false, true] {
                for optimize in [false, true] {
                    let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(optimize: optimize, jit: jit))
                    XCTAssertEqual(exe.kernelPlan.isEmpty, exe.graph.values.allSatisfy { $0.op == nil }, "\(s)")
                    let got = try exe.run(feeds)["y"]!
                    XCTAssertEqual(got.shape, ref.shape, "\(s)")
                    XCTAssertLessThan(relativeErrors(got, ref).max, 1e-5, "\(s) jit \(jit) optimize \(optimize)")
                }
            }
        }
    }

    func testGradientOfEveryOp() throws {
        for s in OpSamples.all {
            switch s.gradient {
            case .checked(let wrt, let eps):
                let inputs = s.operands.enumerated().filter { wrt[$0.offset] }.map { ("x\($0.offset)", $0.element) }
                let r = try gradientCheck(inputs, eps: eps) { b, v in
                    var it = v.makeIterator()
                    let args = s.operands.enumerated().map { wrt[$0.offset] ? it.next()! : b.constant($0.element) }
                    return b.apply(s.op, args)
                }
                XCTAssertLessThan(r.worst, 2e-2, "\(s): \(r)")
            case .none:
                // Either an error naming the op, or zero gradients.
                let (forward, loss, ids) = try summed(s)
                do {
                    let (g, grads) = try Autodiff.gradient(of: forward, output: loss, wrt: ids)
                    var gg = g
                    for (i, d) in grads.enumerated() { gg.outputs.append(Output(name: "d\(i)", value: d)) }
                    var feeds: [String: Tensor] = [:]
                    for (i, t) in s.operands.enumerated() { feeds["x\(i)"] = t }
                    let out = try evaluate(gg, feeds)
                    for i in grads.indices { XCTAssertTrue(out["d\(i)"]!.scalars.allSatisfy { $0 == 0 }, "\(s): operand \(i) has a gradient") }
                } catch let e as AutodiffError {
                    XCTAssertTrue("\(e)".contains(s.op.name), "\(s): \(e)")
                }
            case .notChecked:
                let (forward, loss, ids) = try summed(s)
                XCTAssertNoThrow(try Autodiff.gradient(of: forward, output: loss, wrt: [ids[0]]), "\(s)")
            }
        }
    }
}
