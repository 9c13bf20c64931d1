import GraphAutodiff
import GraphIR
import GraphRuntime
import TestSupport
import XCTest

/// A finite-difference check for every differentiable op (through autodiff and the interpreter).
final class GradientCheckTests: XCTestCase {
    /// Values in [-1, -0.15] U [0.15, 1]: away from the kinks of relu, abs, sign and friends.
    func awayFromZero(_ shape: [Int], seed: UInt64) -> Tensor {
        var t = randomTensor(shape, seed: seed)
        t.scalars = t.scalars.map { $0 < 0 ? $0 * 0.85 - 0.15 : $0 * 0.85 + 0.15 }
        return t
    }

    func check(_ name: String, _ inputs: [(String, Tensor)], eps: Float = 1e-2, tolerance: Double = 2e-2,
               file: StaticString = #filePath, line: UInt = #line, _ body: (GraphBuilder, [ValueID]) -> ValueID) {
        do {
            let r = try gradientCheck(inputs, eps: eps, body)
            XCTAssertLessThan(r.worst, tolerance, "\(name): \(r)", file: file, line: line)
        } catch {
            XCTFail("\(name): \(error)", file: file, line: line)
        }
    }

    func testUnaryOps() {
        let x = awayFromZero([3, 4], seed: 1)
        let positive = randomTensor([3, 4], seed: 2, lo: 0.5, hi: 2)
        for u in [UnaryOp.neg, .exp, .abs, .relu, .sigmoid, .tanh, .sin, .cos] {
            check(u.rawValue, [("x", x)]) { b, v in b.unary(u, v[0]) }
        }
        for u in [UnaryOp.log, .sqrt] {
            check(u.rawValue, [("x", positive)]) { b, v in b.unary(u, v[0]) }
        }
    }

    func testBinaryOpsWithBroadcasting() {
        let x = awayFromZero([2, 3, 4], seed: 3)
        let y = awayFromZero([3, 1], seed: 4)
        for op in [BinaryOp.add, .sub, .mul, .div, .sigmoidCrossEntropy] {
            check(op.rawValue, [("x", x), ("y", y)]) { b, v in b.binary(op, v[0], v[1]) }
        }
        // max/min: keep |x - y| > eps everywhere (x is >= 0.15 away from 0, y within 0.05 of it).
        let small = Tensor(shape: [3, 1], scalars: [0, 0.04, -0.05])
        for op in [BinaryOp.maximum, .minimum] {
            check(op.rawValue, [("x", x), ("y", small)]) { b, v in b.binary(op, v[0], v[1]) }
        }
        let base = randomTensor([2, 3], seed: 5, lo: 0.5, hi: 2)
        let expo = randomTensor([3], seed: 6, lo: -1.5, hi: 2)
        check("pow", [("x", base), ("y", expo)]) { b, v in b.binary(.pow, v[0], v[1]) }
    }

    func testSelectAndReductions() {
        let c = Tensor(shape: [2, 3], scalars: [1, 0, 1, 0, 0, 1])
        let x = awayFromZero([2, 3], seed: 7), y = awayFromZero([3], seed: 8)
        check("select", [("x", x), ("y", y)]) { b, v in b.select(b.constant(c), v[0], v[1]) }
        let z = randomTensor([2, 3, 4], seed: 9)
        for r in ReduceOp.allCases {
            for keep in [false, true] {
                check("\(r) keep=\(keep)", [("z", z)]) { b, v in b.apply(.reduce(r, axes: [0, 2], keepDims: keep), [v[0]]) }
            }
        }
    }

    func testDataMovement() {
        let x = randomTensor([2, 3, 4], seed: 10)
        check("reshape", [("x", x)]) { b, v in b.reshape(v[0], [4, 6]) }
        check("transpose", [("x", x)]) { b, v in b.transpose(v[0], [2, 0, 1]) }
        check("broadcast", [("x", randomTensor([3, 1], seed: 11))]) { b, v in b.broadcast(v[0], to: [2, 3, 4]) }
        check("concat", [("x", x), ("y", randomTensor([2, 2, 4], seed: 12))]) { b, v in b.concat([v[0], v[1], v[0]], axis: 1) }
        check("slice", [("x", x)]) { b, v in b.slice(v[0], begin: [1, 0, 1], end: [2, 2, 4]) }
        check("reverse", [("x", x)]) { b, v in b.apply(.reverse(axes: [0, 2]), [v[0]]) }
        for mode in PadMode.allCases {
            check("pad \(mode)", [("x", x)]) { b, v in
                b.apply(.pad(before: [1, 2, 0], after: [0, 3, 4], mode: mode, value: 0.5), [v[0]])
            }
        }
    }

    func testMatmul() {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = randomTensor(ta ? [2, 4, 3] : [2, 3, 4], seed: 13)
                let m = randomTensor(tb ? [2, 5, 4] : [2, 4, 5], seed: 14)
                check("matmul \(ta) \(tb)", [("a", a), ("m", m)]) { b, v in b.matmul(v[0], v[1], transposeA: ta, transposeB: tb) }
            }
        }
    }

    func testConvolutionAndItsGradients() {
        let x = randomTensor([2, 7, 6, 3], seed: 15)
        let k = randomTensor([3, 3, 3, 4], seed: 16)
        for (s, p) in [([1, 1], [1, 1, 1, 1]), ([2, 2], [0, 1, 1, 0]), ([2, 1], [1, 1, 0, 2])] {
            check("conv2d \(s) \(p)", [("x", x), ("k", k)]) { b, v in b.conv2d(v[0], v[1], strides: s, padding: p) }
        }
        let c = ConvAttributes(strides: [2, 2], padding: [1, 0, 1, 1])
        let yShape = try! Op.conv2d(c).resultShape([x.shape, k.shape])
        let dy = randomTensor(yShape, seed: 17)
        check("conv2d_backprop_input", [("dy", dy), ("k", k)]) { b, v in
            b.apply(.conv2dBackpropInput(c, inputShape: x.shape), [v[0], v[1]])
        }
        check("conv2d_backprop_filter", [("x", x), ("dy", dy)]) { b, v in
            b.apply(.conv2dBackpropFilter(c, filterShape: k.shape), [v[0], v[1]])
        }
    }

    func testResampling() {
        let x = randomTensor([2, 4, 6, 3], seed: 18)
        check("upsample_nearest", [("x", x)]) { b, v in b.apply(.upsampleNearest(factors: [2, 3]), [v[0]]) }
        check("avg_pool", [("x", x)]) { b, v in b.apply(.avgPool(window: [2, 3], strides: [2, 2]), [v[0]]) }
        check("max_pool", [("x", x)]) { b, v in b.apply(.maxPool(window: [3, 3], strides: [1, 2]), [v[0]]) }
        let pooled = randomTensor([2, 2, 2, 3], seed: 19)
        check("avg_pool_backprop", [("g", pooled)]) { b, v in
            b.apply(.avgPoolBackprop(window: [2, 3], strides: [2, 2], inputShape: [2, 4, 6, 3]), [v[0]])
        }
    }

    /// Coordinates with fractional parts in [0.25, 0.75], so +-eps never crosses a pixel.
    func coords(_ shape: [Int], w: Int, h: Int, seed: UInt64) -> Tensor {
        var t = randomTensor(shape, seed: seed, lo: 0, hi: 1)
        for i in 0..<t.count {
            let limit = Float(i % 2 == 0 ? w : h) + 1
            let cell = (t.scalars[i] * (limit + 1)).rounded(.down) - 1
            t.scalars[i] = cell + 0.25 + 0.5 * CounterRandom.uniform(seed: seed, key: 3, counter: UInt64(i))
        }
        return t
    }

    func testBilinearSampling() {
        let image = randomTensor([2, 5, 6, 3], seed: 20)
        let xy = coords([2, 3, 4, 2], w: 6, h: 5, seed: 21)
        for mode in SampleMode.allCases {
            check("bilinear_sample \(mode)", [("image", image), ("coords", xy)], eps: 1e-3) { b, v in
                b.apply(.bilinearSample(mode: mode), [v[0], v[1]])
            }
        }
    }

    func testProjectiveWarpExactGradientAndTranspose() {
        let images = randomTensor([2, 6, 7, 2], seed: 22)
        let t = Tensor(shape: [2, 8], scalars: [1.05, 0.1, -0.4, -0.05, 0.95, 0.3, 0.01, -0.02,
                                                0.9, -0.1, 0.5, 0.08, 1.1, -0.2, -0.015, 0.02])
        for inverse in [false, true] {
            check("projective_warp exact inverse=\(inverse)", [("images", images)]) { b, v in
                b.apply(.projectiveWarp(inverse: inverse, gradient: .exact), [v[0], b.constant(t)])
            }
            check("projective_warp_transpose inverse=\(inverse)", [("g", images)]) { b, v in
                b.apply(.projectiveWarpTranspose(inverse: inverse), [v[0], b.constant(t)])
            }
        }
    }

    /// Piecewise-constant ops, comparisons, stop_gradient and random draws pass no gradient.
    func testZeroGradientOps() throws {
        let b = GraphBuilder(name: "zero")
        let x = b.input("x", [4])
        var terms: [ValueID] = []
        for u in [UnaryOp.floor, .round, .sign, .stopGradient] { terms.append(b.unary(u, x)) }
        for op in [BinaryOp.less, .greater, .equal] { terms.append(b.binary(op, x, b.constant(0.1))) }
        terms.append(b.mul(b.apply(.randomNormal(shape: [4], key: 1), [b.sum(x, axes: [0])]), b.constant(1)))
        var total = terms[0]
        for t in terms.dropFirst() { total = b.add(total, t) }
        let loss = b.sum(total, axes: [0])
        b.output("loss", loss)
        let (g, grads) = try Autodiff.gradient(of: try b.finish(), output: loss, wrt: [x])
        var gg = g
        gg.outputs.append(Output(name: "dx", value: grads[0]))
        let out = try evaluate(gg, ["x": Tensor(shape: [4], scalars: [0.3, -1.7, 2.5, 0])])
        XCTAssertEqual(out["dx"]!.scalars, [0, 0, 0, 0])
    }

    func testGradientOfAValueUsedTwiceIsSummed() throws {
        let b = GraphBuilder(name: "twice")
        let x = b.input("x", [3])
        let y = b.add(b.mul(x, x), b.mul(x, b.constant(3)))  // x^2 + 3x: gradient 2x + 3
        let loss = b.sum(y, axes: [0])
        b.output("loss", loss)
        let (g, grads) = try Autodiff.gradient(of: try b.finish(), output: loss, wrt: [x])
        var gg = g
        gg.outputs.append(Output(name: "dx", value: grads[0]))
        XCTAssertEqual(try evaluate(gg, ["x": Tensor(shape: [3], scalars: [1, -2, 0.5])])["dx"]!.scalars, [5, -1, 4])
        // The gradient graph is an ordinary graph: it prints, parses and verifies.
        XCTAssertNoThrow(try TextFormat.parse(TextFormat.print(gg)))
    }

    func testNonDifferentiableOpIsAnError() throws {
        let b = GraphBuilder(name: "nd")
        let g = b.input("g", [1, 2, 2, 1])
        let c = b.input("c", [1, 2, 2, 2])
        let y = b.apply(.bilinearSampleGradImage(mode: .zero, size: [3, 3]), [g, c])
        let loss = b.sum(y, axes: [0, 1, 2, 3])
        b.output("loss", loss)
        XCTAssertThrowsError(try Autodiff.gradient(of: try b.finish(), output: loss, wrt: [c])) { e in
            XCTAssertTrue("\(e)".contains("not differentiable"), "\(e)")
        }
        XCTAssertThrowsError(try Autodiff.gradient(of: try b.finish(), output: y, wrt: [g])) { e in
            XCTAssertTrue("\(e)".contains("must be a scalar"), "\(e)")
        }
    }
}
