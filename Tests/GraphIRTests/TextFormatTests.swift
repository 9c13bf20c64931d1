import GraphIR
import TestSupport
import XCTest

final class TextFormatTests: XCTestCase {
    /// A graph that uses every op and every attribute kind.
    static func everyOpGraph() throws -> Graph {
        let b = GraphBuilder(name: "every_op")
        let x = b.input("x", [2, 6, 6, 3])
        let seed = b.input("seed", [])
        let k = b.parameter("conv.kernel", [3, 3, 3, 4], .heNormal(seed: 3))
        let w = b.parameter("dense.kernel", [4, 5], .glorotUniform(seed: 4))
        let bias = b.parameter("dense.bias", [5], .zeros)
        let s = b.parameter("scale", [1], .constant(0.5))
        let aff = b.parameter("affine", [6], .values([1, 0, 0, 0, 1, 0]))
        var v = b.conv2dSame(x, k, stride: 2, name: "conv")
        for u in UnaryOp.allCases { v = b.unary(u, v) }
        for op in BinaryOp.allCases { v = b.binary(op, v, b.constant(0.25)) }
        v = b.select(b.binary(.greater, v, b.constant(0)), v, b.constant(Tensor(shape: [4], scalars: [1, 2, 3, 4])))
        let pooled = b.mean(v, axes: [1, 2])  // [2, 4]
        var d = b.add(b.matmul(pooled, w), bias)
        d = b.mul(d, s)
        d = b.apply(.reduce(.max, axes: [1], keepDims: true), [d])
        d = b.apply(.reduce(.sum, axes: [0], keepDims: false), [d])
        let t = b.transpose(b.reshape(v, [2, 3, 3, 4]), [0, 3, 1, 2])
        let c = b.concat([t, t], axis: 1)
        let sl = b.slice(c, begin: [0, 1, 0, 0], end: [2, 7, 3, 3])
        let p1 = b.apply(.pad(before: [0, 0, 1, 2], after: [0, 0, 2, 1], mode: .symmetric, value: 0), [sl])
        let p2 = b.apply(.pad(before: [0, 0, 1, 0], after: [0, 0, 0, 1], mode: .constant, value: -1.5), [p1])
        let rv = b.apply(.reverse(axes: [2, 3]), [p2])
        let bc = b.broadcast(b.constant(Tensor(shape: [3, 1], scalars: [1, 2, 3])), to: [2, 3, 4])
        let mm = b.matmul(bc, bc, transposeA: false, transposeB: true)
        let up = b.upsampleNearest(x, factor: 2)
        let pool = b.apply(.avgPool(window: [2, 2], strides: [2, 2]), [up])
        let mp = b.apply(.maxPool(window: [3, 3], strides: [2, 2]), [up])
        b.output("mpb", b.apply(.maxPoolBackprop(window: [3, 3], strides: [2, 2]), [up, mp]))
        let pb = b.apply(.avgPoolBackprop(window: [2, 2], strides: [2, 2], inputShape: [2, 12, 12, 3]), [pool])
        let coords = b.apply(.randomUniform(shape: [2, 4, 5, 2], key: 1), [seed])
        let smp = b.apply(.bilinearSample(mode: .clamp), [x, coords])
        let gi = b.apply(.bilinearSampleGradImage(mode: .zero, size: [6, 6]), [smp, coords])
        let gc = b.apply(.bilinearSampleGradCoords(mode: .clamp), [x, coords, smp])
        let tr = b.apply(.randomNormal(shape: [2, 8], key: 2), [seed])
        let warp = b.apply(.projectiveWarp(inverse: true, gradient: .tf), [x, tr])
        let warpT = b.apply(.projectiveWarpTranspose(inverse: false), [warp, tr])
        let ci = b.apply(.conv2dBackpropInput(ConvAttributes(strides: [1, 1], padding: [1, 1, 1, 1]), inputShape: [2, 6, 6, 3]),
                         [b.conv2d(x, k, strides: [1, 1], padding: [1, 1, 1, 1]), k])
        let cf = b.apply(.conv2dBackpropFilter(ConvAttributes(strides: [1, 1], padding: [1, 1, 1, 1]), filterShape: [3, 3, 3, 4]),
                         [x, b.conv2d(x, k, strides: [1, 1], padding: [1, 1, 1, 1])])
        b.output("d", d)
        b.output("rv", rv)
        b.output("mm", mm)
        b.output("pb", pb)
        b.output("gi", gi)
        b.output("gc", gc)
        b.output("warp", warpT)
        b.output("ci", ci)
        b.update(k, to: b.sub(k, cf))
        b.update(aff, to: aff)
        return try b.finish()
    }

    func testEveryOpRoundTrips() throws {
        let g = try Self.everyOpGraph()
        let text = TextFormat.print(g)
        let parsed = try TextFormat.parse(text)
        XCTAssertEqual(TextFormat.print(parsed), text)
        XCTAssertEqual(parsed.values.count, g.values.count)
        // Every op of the registry appears in the text.
        var names = Set<String>()
        for v in g.values { if let op = v.op { names.insert(op.name) } }
        for required in ["conv2d", "matmul", "select", "pad", "reverse", "projective_warp", "random_normal",
                         "bilinear_sample_grad_coords", "avg_pool_backprop", "sigmoid_cross_entropy", "stop_gradient"] {
            XCTAssertTrue(names.contains(required), required)
        }
    }

    func testFloatsRoundTripExactly() throws {
        let b = GraphBuilder(name: "floats")
        let values: [Float] = [0.1, -1e-30, 3.4028235e38, 1.17549435e-38, 0, -0.0, 1.0 / 3.0, .infinity, -.infinity]
        let c = b.constant(Tensor(shape: [values.count], scalars: values))
        b.output("c", c)
        let g = try b.finish()
        let parsed = try TextFormat.parse(TextFormat.print(g))
        guard case .constant(let t) = parsed[ValueID(0)].definition else { return XCTFail("not a constant") }
        XCTAssertEqual(t.scalars.map(\.bitPattern), values.map(\.bitPattern))
    }

    func assertParseError(_ text: String, line: Int, column: Int? = nil, contains: String,
                          file: StaticString = #filePath, lineNo: UInt = #line) {
        do {
            _ = try TextFormat.parse(text)
            XCTFail("parsed without error", file: file, line: lineNo)
        } catch let e as GraphError {
            XCTAssertEqual(e.line, line, "\(e)", file: file, line: lineNo)
            if let column { XCTAssertEqual(e.column, column, "\(e)", file: file, line: lineNo) }
            XCTAssertTrue(e.description.contains(contains), "\(e) lacks '\(contains)'", file: file, line: lineNo)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: lineNo)
        }
    }

    func testErrorsNameLineColumnAndShapes() {
        let head = "graph g\ninput %x : f32[2,3]\ninput %y : f32[4,3]\n"
        assertParseError(head + "%z = add(%x, %y) : f32[2,3]\n", line: 4, column: 6, contains: "[2,3], [4,3]")
        assertParseError(head + "%z = add(%x, %x) : f32[3,2]\n", line: 4, column: 20, contains: "f32[2,3]")
        assertParseError(head + "%z = add(%x, %w) : f32[2,3]\n", line: 4, column: 14, contains: "undefined value %w")
        assertParseError(head + "%z = frobnicate(%x) : f32[2,3]\n", line: 4, contains: "unknown op 'frobnicate'")
        assertParseError(head + "%z = reduce_sum(%x) {axes=[5], keep_dims=false} : f32[2]\n", line: 4, contains: "axis 5 out of range")
        assertParseError(head + "%z = reduce_sum(%x) {axes=[1]} : f32[2]\n", line: 4, contains: "missing attribute 'keep_dims'")
        assertParseError(head + "%z = neg(%x) {color=red} : f32[2,3]\n", line: 4, contains: "unknown attribute(s) 'color'")
        assertParseError(head + "%z = neg(%x : f32[2,3]\n", line: 4, contains: "expected")
        assertParseError(head + "%x = neg(%x) : f32[2,3]\n", line: 4, column: 1, contains: "already defined")
        assertParseError("graph g\ninput %x : f32[99999,99999,99999]\n", line: 2, contains: "too large")
        assertParseError("graph g\ninput %x : f64[2]\n", line: 2, contains: "only f32")
        assertParseError("input %x : f32[2]\n", line: 1, contains: "graph NAME")
        assertParseError("", line: 1, contains: "empty")
        assertParseError(head + "%c = constant [1, 2] : f32[3]\n", line: 4, contains: "2 values")
        assertParseError(head + "output y = %q\n", line: 4, contains: "undefined")
        assertParseError(head + "update %x = %y\n", line: 4, contains: "not a parameter")
        assertParseError(head + "param %w : f32[2,3] = zeros\nupdate %w = %y\n", line: 5, contains: "[4,3]")
        assertParseError(head + "%z = conv2d(%x, %y) {strides=[1,1], padding=[0,0,0,0]} : f32[1]\n", line: 4, contains: "rank 4")
        assertParseError(head + "@\n", line: 4, column: 1, contains: "unexpected character")
    }

    /// Random damage to a valid file either parses to a valid graph or gives a GraphError: never a crash.
    func testMutatedTextNeverCrashes() throws {
        let text = Array(TextFormat.print(try Self.everyOpGraph()).unicodeScalars)
        let alphabet = Array("%[](){}=,:.-0123456789abcxyz_ \n".unicodeScalars)
        var errors = 0
        for trial in 0..<400 {
            var t = text
            for m in 0..<(1 + trial % 4) {
                let r = Int(CounterRandom.bits(seed: UInt64(trial), key: UInt64(m), counter: 0) % UInt64(t.count))
                let c = alphabet[Int(CounterRandom.bits(seed: UInt64(trial), key: UInt64(m), counter: 1) % UInt64(alphabet.count))]
                switch trial % 3 {
                case 0: t.remove(at: r)
                case 1: t.insert(c, at: r)
                default: t[r] = c
                }
            }
            var s = String.UnicodeScalarView()
            s.append(contentsOf: t)
            do { try TextFormat.parse(String(s)).verify() } catch is GraphError { errors += 1 }
        }
        XCTAssertGreaterThan(errors, 100)
    }

    func testTruncatedFilesGiveErrors() throws {
        let text = TextFormat.print(try Self.everyOpGraph())
        for cut in Swift.stride(from: 1, to: text.count, by: max(1, text.count / 60)) {
            let prefix = String(text.prefix(cut))
            do { _ = try TextFormat.parse(prefix) } catch is GraphError {} catch { XCTFail("\(error)") }
        }
    }
}
