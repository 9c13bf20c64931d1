import GraphAutodiff
import GraphIR
import GraphRuntime
import TestSupport
import XCTest

final class InterpreterTests: XCTestCase {
    func run1(_ op: Op, _ inputs: [Tensor]) throws -> Tensor {
        let b = GraphBuilder(name: "one")
        let ids = inputs.enumerated().map { b.input("x\($0.offset)", $0.element.shape) }
        b.output("y", b.apply(op, ids))
        var feeds: [String: Tensor] = [:]
        for (i, t) in inputs.enumerated() { feeds["x\(i)"] = t }
        return try evaluate(try b.finish(), feeds)["y"]!
    }

    func testSymmetricPadMirrorsIncludingTheEdge() throws {
        let x = Tensor(shape: [3], scalars: [1, 2, 3])
        let y = try run1(.pad(before: [2], after: [2], mode: .symmetric, value: 0), [x])
        XCTAssertEqual(y.scalars, [2, 1, 1, 2, 3, 3, 2])
        let c = try run1(.pad(before: [1], after: [0], mode: .constant, value: 9), [x])
        XCTAssertEqual(c.scalars, [9, 1, 2, 3])
    }

    func testBroadcastReduceTransposeSlice() throws {
        let x = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try run1(.binary(.sub), [x, Tensor(shape: [3], scalars: [1, 1, 2])]).scalars, [0, 1, 1, 3, 4, 4])
        XCTAssertEqual(try run1(.reduce(.sum, axes: [0], keepDims: false), [x]).scalars, [5, 7, 9])
        XCTAssertEqual(try run1(.reduce(.max, axes: [1], keepDims: true), [x]).shape, [2, 1])
        XCTAssertEqual(try run1(.reduce(.mean, axes: [0, 1], keepDims: false), [x]).scalars, [3.5])
        XCTAssertEqual(try run1(.transpose(perm: [1, 0]), [x]).scalars, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(try run1(.slice(begin: [1, 1], end: [2, 3]), [x]).scalars, [5, 6])
        XCTAssertEqual(try run1(.reverse(axes: [1]), [x]).scalars, [3, 2, 1, 6, 5, 4])
        XCTAssertEqual(try run1(.concat(axis: 0), [x, x]).shape, [4, 3])
        XCTAssertEqual(try run1(.unary(.round), [Tensor(shape: [4], scalars: [0.5, 1.5, 2.5, -0.5])]).scalars, [0, 2, 2, -0])
    }

    func testMatmulAndConvAgainstHandValues() throws {
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        XCTAssertEqual(try run1(.matmul(transposeA: false, transposeB: false), [a, a]).scalars, [7, 10, 15, 22])
        XCTAssertEqual(try run1(.matmul(transposeA: true, transposeB: false), [a, a]).scalars, [10, 14, 14, 20])
        // 3x3 ones kernel, padding 1: each output is the sum of its 3x3 neighbourhood.
        let x = Tensor(shape: [1, 3, 3, 1], scalars: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let k = Tensor(shape: [3, 3, 1, 1], repeating: 1)
        let y = try run1(.conv2d(ConvAttributes(strides: [1, 1], padding: [1, 1, 1, 1])), [x, k])
        XCTAssertEqual(y.scalars, [12, 21, 16, 27, 45, 33, 24, 39, 28])
    }

    func testStableSigmoidCrossEntropy() throws {
        let x = Tensor(shape: [4], scalars: [-100, 100, 0, 2])
        let z = Tensor(shape: [4], scalars: [1, 0, 1, 0])
        let y = try run1(.binary(.sigmoidCrossEntropy), [x, z])
        XCTAssertEqual(y.scalars[0], 100, accuracy: 1e-4)
        XCTAssertEqual(y.scalars[1], 100, accuracy: 1e-4)
        XCTAssertEqual(y.scalars[2], Float(log(2.0)), accuracy: 1e-6)
        XCTAssertEqual(y.scalars[3], Float(2 + log1p(exp(-2.0))), accuracy: 1e-6)
    }

    func testRandomIsAPureFunctionOfSeedAndKey() throws {
        let b = GraphBuilder(name: "rng")
        let seed = b.input("seed", [])
        b.output("u", b.apply(.randomUniform(shape: [4000], key: 1), [seed]))
        b.output("u2", b.apply(.randomUniform(shape: [4000], key: 2), [seed]))
        b.output("n", b.apply(.randomNormal(shape: [4000], key: 1), [seed]))
        let g = try b.finish()
        let r1 = try evaluate(g, ["seed": Tensor(5)]), r2 = try evaluate(g, ["seed": Tensor(5)]), r3 = try evaluate(g, ["seed": Tensor(6)])
        XCTAssertEqual(r1["u"], r2["u"])
        XCTAssertNotEqual(r1["u"], r3["u"])
        XCTAssertNotEqual(r1["u"], r1["u2"])
        let u = r1["u"]!.scalars, n = r1["n"]!.scalars.map(Double.init)
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(Double(u.reduce(0, +)) / 4000, 0.5, accuracy: 0.02)
        let mean = n.reduce(0, +) / 4000
        let variance = n.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4000
        XCTAssertEqual(mean, 0, accuracy: 0.05)
        XCTAssertEqual(variance, 1, accuracy: 0.08)
    }

    /// The op's vectorised Box-Muller against the same bits through double log and cos, and the
    /// same values however the tensor is split into chunks (the CPU kernel's two halves).
    func testVectorNormalsMatchTheDoubleFormula() {
        let n = 100_003
        var whole = [Float](repeating: 0, count: n), parts = whole
        whole.withUnsafeMutableBufferPointer { CounterRandom.fillNormal(seed: 9, key: 3, start: 0, count: n, into: $0.baseAddress!) }
        parts.withUnsafeMutableBufferPointer { p in
            for (a, b) in [(0, 13), (13, 50_000), (50_013, n - 50_013)] { CounterRandom.fillNormal(seed: 9, key: 3, start: a, count: b, into: p.baseAddress! + a) }
        }
        XCTAssertEqual(whole, parts)
        var worst = 0.0, sum = 0.0, squares = 0.0
        for i in 0..<n {
            let exact = Double(CounterRandom.normal(seed: 9, key: 3, counter: UInt64(i)))
            // Near u1 = 1 the radius is sqrt(2 (1 - u1)): the Float rounding of u1 moves it by up to ~3e-4.
            worst = max(worst, abs(Double(whole[i]) - exact) / max(1, abs(exact)))
            sum += Double(whole[i]); squares += Double(whole[i]) * Double(whole[i])
        }
        XCTAssertLessThan(worst, 5e-4)
        XCTAssertEqual(sum / Double(n), 0, accuracy: 0.01)
        XCTAssertEqual(squares / Double(n), 1, accuracy: 0.02)
    }

    func testInitializers() {
        let he = Initializer.heNormal(seed: 1).materialize(shape: [3, 3, 64, 64])
        let sd = (2.0 / (9.0 * 64)).squareRoot()
        let values = he.scalars.map(Double.init)
        XCTAssertTrue(values.allSatisfy { abs($0) < 2 * sd / 0.8796 + 1e-6 })
        let std = (values.map { $0 * $0 }.reduce(0, +) / Double(values.count)).squareRoot()
        XCTAssertEqual(std, sd, accuracy: sd * 0.05)
        let gl = Initializer.glorotUniform(seed: 2).materialize(shape: [100, 50])
        let limit = Float((6.0 / 150).squareRoot())
        XCTAssertTrue(gl.scalars.allSatisfy { abs($0) <= limit })
        XCTAssertGreaterThan(gl.scalars.map(abs).max()!, limit * 0.95)
        XCTAssertEqual(Initializer.heNormal(seed: 1).materialize(shape: [10]), Initializer.heNormal(seed: 1).materialize(shape: [10]))
    }
}

/// The CPU backend's fast kernels against the reference interpreter.
final class CPUBackendTests: XCTestCase {
    /// Every output through the CPU backend, with each convolution algorithm and each instruction
    /// set this machine has, against the interpreter.
    func compare(_ g: Graph, _ feeds: [String: Tensor], tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try evaluate(g, feeds, backend: .interpreter)
        for algorithm in ConvolutionAlgorithm.allCases {
            for jit in [false, true] {
                for isa in VectorISA.available {
                    let options = CompileOptions(backend: .cpu, convolution: algorithm, jit: jit, vectorISA: isa)
                    let cpu = try Compiler.compile(g, for: Signature.of(g), options: options).run(feeds)
                    for (name, t) in ref {
                        let e = relativeErrors(cpu[name]!, t)
                        XCTAssertLessThan(e.max, tolerance, "\(name) (\(algorithm), jit \(jit), \(isa))", file: file, line: line)
                    }
                }
            }
        }
    }

    func testConvolutionsMatchTheInterpreter() throws {
        let cases: [([Int], [Int], [Int], [Int])] = [
            ([2, 9, 7, 5], [3, 3, 5, 4], [1, 1], [1, 1, 1, 1]),
            ([2, 9, 7, 5], [3, 3, 5, 4], [2, 2], [1, 1, 1, 1]),
            ([2, 8, 6, 5], [3, 3, 5, 4], [2, 2], [0, 1, 0, 1]),
            ([1, 9, 7, 5], [2, 2, 5, 6], [1, 1], [0, 1, 0, 1]),
            ([2, 5, 5, 7], [1, 1, 7, 3], [1, 1], [0, 0, 0, 0]),
            ([1, 16, 16, 3], [7, 7, 3, 3], [1, 1], [3, 3, 3, 3]),
            ([1, 40, 33, 6], [3, 3, 6, 8], [1, 2], [1, 1, 0, 1]),
            ([1, 8, 8, 4], [3, 3, 4, 5], [1, 1], [0, 0, 0, 0]),
            ([2, 10, 9, 17], [3, 3, 17, 18], [1, 1], [1, 1, 1, 1]),
            // Wide enough (>= 24 output columns) for the direct kernels.
            ([1, 5, 30, 5], [3, 3, 5, 20], [1, 1], [1, 1, 1, 1]),
            ([2, 5, 52, 4], [3, 3, 4, 17], [2, 2], [0, 1, 0, 1]),
            ([1, 4, 27, 6], [2, 2, 6, 9], [1, 1], [0, 1, 0, 1]),
            ([1, 6, 26, 3], [7, 7, 3, 3], [1, 1], [3, 3, 3, 3]),
            // Rows long enough that the weight gradient works in several chunks per image.
            ([1, 6, 300, 40], [3, 3, 40, 20], [1, 1], [1, 1, 1, 1]),
            ([2, 7, 260, 33], [3, 3, 33, 16], [2, 2], [0, 1, 0, 1]),
            // Winograd F(2x2, 3x3): odd sizes (partial tiles), valid padding, co not a multiple of 16.
            ([2, 7, 25, 16], [3, 3, 16, 16], [1, 1], [1, 1, 1, 1]),
            ([1, 9, 33, 24], [3, 3, 24, 33], [1, 1], [0, 0, 0, 0]),
            ([1, 8, 26, 20], [3, 3, 20, 17], [1, 1], [1, 1, 1, 1]),
            // Channel counts that leave a partial 32-lane block (AVX-512) and one partial 16-lane block.
            ([1, 6, 27, 19], [3, 3, 19, 40], [1, 1], [1, 1, 1, 1]),
            ([1, 5, 28, 9], [3, 3, 9, 40], [2, 1], [1, 1, 1, 1]),
            // Strided input gradients by phases: 2x2 and 1x1 kernels at stride 2 (a phase no tap
            // reaches), odd sizes and top/left padding, stride 3.
            ([2, 6, 20, 16], [2, 2, 16, 7], [2, 2], [0, 0, 0, 0]),
            ([1, 6, 21, 17], [1, 1, 17, 7], [2, 2], [0, 0, 0, 0]),
            ([1, 7, 25, 16], [3, 3, 16, 6], [2, 2], [1, 1, 1, 1]),
            ([1, 9, 31, 18], [5, 5, 18, 8], [3, 3], [2, 2, 2, 2]),
            // Narrow and many channels: Winograd segments shorter than 48 tiles, across rows and images.
            ([2, 5, 9, 300], [3, 3, 300, 40], [1, 1], [1, 1, 1, 1]),
        ]
        for (i, (xs, ks, s, p)) in cases.enumerated() {
            let c = ConvAttributes(strides: s, padding: p)
            let ys = try Op.conv2d(c).resultShape([xs, ks])
            let b = GraphBuilder(name: "conv")
            let x = b.input("x", xs), k = b.input("k", ks), dy = b.input("dy", ys)
            b.output("y", b.apply(.conv2d(c), [x, k]))
            b.output("dx", b.apply(.conv2dBackpropInput(c, inputShape: xs), [dy, k]))
            b.output("dk", b.apply(.conv2dBackpropFilter(c, filterShape: ks), [x, dy]))
            try compare(try b.finish(), ["x": randomTensor(xs, seed: UInt64(i)), "k": randomTensor(ks, seed: 50 + UInt64(i)),
                                         "dy": randomTensor(ys, seed: 90 + UInt64(i))])
        }
    }

    /// Weight gradients sum partials per core; which rows go into which partial must not depend on
    /// timing, or the same step would round differently from run to run.
    func testWeightGradientsAreBitwiseRepeatable() throws {
        for (xs, ks) in [([2, 40, 64, 32], [3, 3, 32, 32]), ([2, 30, 50, 24], [2, 2, 24, 40])] {
            let c = ConvAttributes(strides: [1, 1], padding: ks[0] == 3 ? [1, 1, 1, 1] : [0, 1, 0, 1])
            let b = GraphBuilder(name: "dk")
            let x = b.input("x", xs), dy = b.input("dy", try Op.conv2d(c).resultShape([xs, ks]))
            b.output("dk", b.apply(.conv2dBackpropFilter(c, filterShape: ks), [x, dy]))
            let g = try b.finish()
            let feeds = ["x": randomTensor(xs, seed: 5), "dy": randomTensor(b.shape(dy), seed: 6)]
            for isa in VectorISA.available {
                let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, vectorISA: isa))
                let first = try exe.run(feeds)["dk"]!
                for _ in 0..<6 { XCTAssertEqual(try exe.run(feeds)["dk"]!.scalars, first.scalars, "\(ks) \(isa)") }
            }
        }
    }

    /// conv2d + bias (+ relu) fuses into one `output` kernel, which the CPU backend runs with the
    /// epilogue inside the convolution; the result must match the interpreter on the unfused graph.
    func testFusedConvolutionEpilogue() throws {
        for (i, (xs, ks, s, p, relu)) in [([2, 9, 7, 5], [3, 3, 5, 20], [1, 1], [1, 1, 1, 1], true),
                                           ([1, 12, 10, 3], [3, 3, 3, 8], [2, 2], [0, 1, 0, 1], false),
                                           ([1, 6, 6, 4], [2, 2, 4, 33], [1, 1], [0, 1, 0, 1], true),
                                           ([1, 5, 30, 4], [3, 3, 4, 20], [1, 1], [1, 1, 1, 1], true),
                                           ([2, 4, 26, 7], [1, 1, 7, 3], [1, 1], [0, 0, 0, 0], false),
                                           ([1, 7, 28, 16], [3, 3, 16, 24], [1, 1], [1, 1, 1, 1], true)].enumerated() {
            let b = GraphBuilder(name: "fused")
            let x = b.input("x", xs), k = b.input("k", ks), bias = b.input("bias", [ks[3]])
            var y = b.add(b.conv2d(x, k, strides: s, padding: p), bias)
            if relu { y = b.relu(y) }
            b.output("y", y)
            let g = try b.finish()
            let feeds = ["x": randomTensor(xs, seed: UInt64(i)), "k": randomTensor(ks, seed: 10 + UInt64(i)), "bias": randomTensor([ks[3]], seed: 20 + UInt64(i))]
            for (jit, algorithm) in [(false, ConvolutionAlgorithm.direct), (true, .direct), (true, .winograd)] {
                for isa in VectorISA.available {
                    let options = CompileOptions(backend: .cpu, convolution: algorithm, jit: jit, vectorISA: isa)
                    let exe = try Compiler.compile(g, for: Signature.of(g), options: options)
                    XCTAssertTrue(exe.graph.values.contains { if case .fused(let f)? = $0.op { return f.kind == .output } else { return false } })
                    let ref = try evaluate(g, feeds, backend: .interpreter)["y"]!
                    XCTAssertLessThan(relativeErrors(try exe.run(feeds)["y"]!, ref).max, 1e-5, "case \(i) jit \(jit) \(algorithm) \(isa)")
                }
            }
        }
    }

    /// Bilinear sampling and both its gradients, both corner modes, with coordinates outside the
    /// image, a NaN and an infinity.
    func testSamplingMatchesTheInterpreter() throws {
        // 4 channels (the general loop) and 3 (RGB, its own path).
        for (mode, c) in [(SampleMode.clamp, 4), (.zero, 4), (.clamp, 3), (.zero, 3)] {
            let b = GraphBuilder(name: "sample")
            let image = b.input("image", [3, 9, 11, c]), coords = b.input("coords", [3, 7, 8, 2]), dy = b.input("dy", [3, 7, 8, c])
            b.output("y", b.apply(.bilinearSample(mode: mode), [image, coords]))
            b.output("dimage", b.apply(.bilinearSampleGradImage(mode: mode, size: [9, 11]), [dy, coords]))
            b.output("dcoords", b.apply(.bilinearSampleGradCoords(mode: mode), [image, coords, dy]))
            var xy = randomTensor([3, 7, 8, 2], seed: 31, lo: -2, hi: 12)
            xy.scalars[7] = .nan
            xy.scalars[112 + 2 * 21] = .infinity  // image 1, pixel 21: a later block of the RGB kernels falls back
            let g = try b.finish()
            let feeds = ["image": randomTensor([3, 9, 11, c], seed: 32), "coords": xy, "dy": randomTensor([3, 7, 8, c], seed: 33)]
            let ref = try evaluate(g, feeds, backend: .interpreter)
            let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu))
            let out = try exe.run(feeds)
            for (name, t) in ref {
                var a = out[name]!, r = t
                for i in r.scalars.indices where r.scalars[i].isNaN {
                    XCTAssertTrue(a.scalars[i].isNaN, "\(name)[\(i)] (\(mode))")
                    a.scalars[i] = 0; r.scalars[i] = 0
                }
                XCTAssertLessThan(relativeErrors(a, r).max, 1e-5, "\(name) (\(mode))")
                // The RGB sampler of the STN (clamp) keeps the reference's order: its bits (the
                // reference sums the gradients in double).
                if mode == .clamp && c == 3 && name == "y" { XCTAssertEqual(a.scalars, r.scalars, "\(name): not the reference's bits") }
            }
        }
    }

    /// The projective warp and its transpose on the CPU give the interpreter's bits (same
    /// coordinates, same sums in the same order), for RGB and other channel counts, both
    /// directions, and a projection through 0 (TF's fill).
    func testProjectiveWarpIsTheInterpretersBits() throws {
        for (c, inverse) in [(3, false), (3, true), (1, false), (4, true)] {
            let b = GraphBuilder(name: "warp")
            let image = b.input("image", [3, 10, 12, c]), t = b.input("t", [3, 8])
            let y = b.apply(.projectiveWarp(inverse: inverse, gradient: .exact), [image, t])
            b.output("y", y)
            b.output("yt", b.apply(.projectiveWarpTranspose(inverse: inverse), [image, t]))
            let g = try b.finish()
            // A small warp, a strong one, and one whose denominator is 0 at pixel (x 5, y 0).
            let transforms = Tensor(shape: [3, 8], scalars: [1.02, 0.03, -0.4, -0.02, 0.97, 0.6, 0.001, -0.002,
                                                             0.8, 0.3, 2, -0.2, 1.3, -1, 0.02, 0.01,
                                                             1, 0, 0, 0, 1, 0, -0.2, 0])
            let feeds = ["image": randomTensor([3, 10, 12, c], seed: 41), "t": transforms]
            let ref = try evaluate(g, feeds, backend: .interpreter)
            let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu))
            XCTAssertTrue(exe.kernelPlan.contains { $0.op == "projective_warp" && "\($0.kernel)" == "\(Kernel.native)" }, "\(exe.kernelPlan.map { "\($0.op) \($0.kernel)" })")
            let out = try exe.run(feeds)
            for (name, t) in ref { XCTAssertEqual(out[name]!.scalars, t.scalars, "\(name) c \(c) inverse \(inverse)") }
        }
    }

    /// The steady state allocates no scratch: after the first run every kernel's workspace slot has
    /// its size (the arena itself is allocated at compile time).
    func testRepeatedRunsAllocateNoScratch() throws {
        let b = GraphBuilder(name: "steady")
        let x = b.input("x", [2, 6, 30, 5]), k = b.parameter("k", [3, 3, 5, 20], .heNormal(seed: 1)), bias = b.parameter("b", [20], .zeros)
        let y = b.relu(b.add(b.conv2d(x, k, strides: [1, 1], padding: [1, 1, 1, 1]), bias))
        b.output("loss", b.apply(.reduce(.mean, axes: [0, 1, 2, 3], keepDims: false), [b.mul(y, y)]))
        let g = try Optimizers.trainingStep(try b.finish(), loss: "loss", optimizer: .adam(AdamConfig()))
        for jit in [false, true] {
            let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: jit))
            var store = ParameterStore(initializing: g)
            let feeds = ["x": randomTensor([2, 6, 30, 5], seed: 3), "learning_rate": Tensor(0.01), "step": Tensor(1)]
            _ = try exe.run(feeds, parameters: &store)
            let first = exe.workspaceAllocations
            XCTAssertGreaterThan(first, 0, "the convolutions take scratch from the workspace")
            for step in 2...4 {
                var f = feeds
                f["step"] = Tensor(Float(step))
                _ = try exe.run(f, parameters: &store)
            }
            XCTAssertEqual(exe.workspaceAllocations, first, "jit \(jit)")
        }
    }

    /// Average and max pooling and their gradients (overlapping windows, a NaN in one window).
    func testPoolingMatchesTheInterpreter() throws {
        let b = GraphBuilder(name: "pool")
        let x = b.input("x", [2, 9, 10, 5]), dy2 = b.input("dy2", [2, 4, 4, 5]), dy3 = b.input("dy3", [2, 4, 4, 5])
        b.output("avg", b.apply(.avgPool(window: [2, 3], strides: [2, 2]), [x]))
        b.output("max", b.apply(.maxPool(window: [3, 3], strides: [2, 2]), [x]))
        b.output("davg", b.apply(.avgPoolBackprop(window: [2, 3], strides: [2, 2], inputShape: [2, 9, 10, 5]), [dy2]))
        b.output("dmax", b.apply(.maxPoolBackprop(window: [3, 3], strides: [2, 2]), [x, dy3]))
        let g = try b.finish()
        var xs = randomTensor([2, 9, 10, 5], seed: 41)
        xs.scalars[123] = .nan
        let feeds = ["x": xs, "dy2": randomTensor([2, 4, 4, 5], seed: 42), "dy3": randomTensor([2, 4, 4, 5], seed: 43)]
        let ref = try evaluate(g, feeds, backend: .interpreter)
        let out = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu)).run(feeds)
        for (name, t) in ref {
            var a = out[name]!, r = t
            XCTAssertEqual(a.shape, r.shape, name)
            for i in r.scalars.indices where r.scalars[i].isNaN {
                XCTAssertTrue(a.scalars[i].isNaN, "\(name)[\(i)]")
                a.scalars[i] = 0; r.scalars[i] = 0
            }
            XCTAssertLessThan(relativeErrors(a, r).max, 1e-5, name)
        }
    }

    /// Output kernels the direct convolution's epilogue does not cover run as contraction + an
    /// elementwise tail over the result in place: dense layers, residuals, other activations.
    func testOutputKernelEpilogues() throws {
        let b = GraphBuilder(name: "epilogues")
        let a = b.input("a", [4, 40]), w = b.input("w", [40, 24]), bias = b.input("bias", [24])
        let x = b.input("x", [2, 6, 8, 5]), k = b.input("k", [3, 3, 5, 6]), r = b.input("r", [2, 6, 8, 6])
        b.output("dense", b.relu(b.add(b.matmul(a, w), bias)))
        b.output("residual", b.unary(.tanh, b.add(b.mul(b.conv2d(x, k, strides: [1, 1], padding: [1, 1, 1, 1]), b.constant(0.5)), r)))
        let g = try b.finish()
        let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: true))
        let outputKernels = exe.graph.values.filter { if case .fused(let f)? = $0.op { return f.kind == .output } else { return false } }
        XCTAssertEqual(outputKernels.count, 2)
        XCTAssertEqual(exe.jitKernelCount, 2, "both tails compiled")
        try compare(g, ["a": randomTensor([4, 40], seed: 1), "w": randomTensor([40, 24], seed: 2), "bias": randomTensor([24], seed: 3),
                        "x": randomTensor([2, 6, 8, 5], seed: 4), "k": randomTensor([3, 3, 5, 6], seed: 5), "r": randomTensor([2, 6, 8, 6], seed: 6)])
    }

    /// The arena kernels for reductions and data movement, including ones that fall back to the
    /// reference kernel, and elementwise ops that write over their operand's buffer.
    func testReductionsAndDataMovementMatchTheInterpreter() throws {
        let b = GraphBuilder(name: "moves")
        let x = b.input("x", [2, 5, 6, 3]), y = b.input("y", [2, 5, 6, 4]), v = b.input("v", [6, 1])
        for (k, (r, axes)) in [(ReduceOp.sum, [0, 1, 2]), (.mean, [3]), (.max, [1, 2]), (.sum, [0, 1, 2, 3]), (.max, [0, 2]),
                               (.mean, [0]), (.sum, [1]), (.sum, [1, 3]), (.mean, [0, 2]), (.max, [1, 3])].enumerated() {
            b.output("r\(k)", b.apply(.reduce(r, axes: axes, keepDims: k % 2 == 0), [x]))
        }
        b.output("t", b.transpose(x, [0, 3, 1, 2]))
        b.output("t2", b.transpose(x, [3, 2, 1, 0]))
        b.output("bc", b.broadcast(v, to: [2, 5, 6, 3]))
        b.output("sl", b.slice(x, begin: [1, 0, 2, 1], end: [2, 4, 6, 3]))
        b.output("cat", b.concat([x, y, x], axis: 3))
        b.output("cat1", b.concat([x, x], axis: 1))
        b.output("padc", b.apply(.pad(before: [0, 1, 2, 0], after: [1, 0, 1, 2], mode: .constant, value: 0.5), [x]))
        b.output("pads", b.apply(.pad(before: [0, 1, 2, 0], after: [0, 1, 1, 0], mode: .symmetric, value: 0), [x]))
        b.output("up", b.upsampleNearest(x, factor: 2))
        b.output("rs", b.reshape(b.relu(x), [10, 18]))
        // A reshape viewing a value that lives on after it (no copy), read through both shapes.
        let ex = b.exp(x)
        b.output("view", b.add(b.reshape(b.unary(.sin, b.reshape(ex, [180])), [2, 5, 6, 3]), b.mul(ex, ex)))
        // A chain whose intermediates die at once: the plan reuses buffers in place.
        let chain = b.unary(.exp, b.mul(b.add(x, b.constant(1)), b.unary(.tanh, x)))
        b.output("chain", b.apply(.reduce(.sum, axes: [3], keepDims: false), [b.sub(chain, b.slice(y, begin: [0, 0, 0, 0], end: [2, 5, 6, 3]))]))
        let big = b.input("big", [4, 64, 64, 8])  // large enough for the two-core bias-gradient sum
        b.output("bigsum", b.apply(.reduce(.sum, axes: [0, 1, 2], keepDims: false), [big]))
        b.output("bigmean", b.apply(.reduce(.mean, axes: [0, 1, 2], keepDims: true), [big]))
        // Large enough for the data-movement kernels to split the work between the cores.
        b.output("bigslice", b.slice(big, begin: [0, 1, 0, 2], end: [4, 64, 64, 8]))
        b.output("bigchannels", b.slice(big, begin: [0, 0, 0, 3], end: [4, 64, 64, 7]))  // channels only: rows on both cores
        b.output("channels", b.slice(y, begin: [0, 0, 0, 1], end: [2, 5, 6, 3]))
        b.output("bigcat", b.concat([big, b.slice(big, begin: [0, 0, 0, 0], end: [4, 64, 64, 3])], axis: 3))
        b.output("bigup", b.upsampleNearest(big, factor: 2))
        // An up-convolution: the upsampling fused into the convolution's phases.
        let ku = b.input("ku", [2, 2, 8, 16]), bu = b.input("bu", [16])
        b.output("upconv", b.relu(b.add(b.conv2d(b.upsampleNearest(b.mul(big, big), factor: 2), ku, strides: [1, 1], padding: [0, 1, 0, 1]), bu)))
        // A U-Net merge: the convolution sums over the concatenated parts.
        let kc = b.input("kc", [3, 3, 11, 16])
        b.output("catconv", b.relu(b.add(b.conv2d(b.concat([big, b.slice(b.exp(big), begin: [0, 0, 0, 0], end: [4, 64, 64, 3])], axis: 3), kc,
                                                  strides: [1, 1], padding: [1, 1, 1, 1]), bu)))
        // One channel from each part (the STN's coordinate pairs), small and split between the cores.
        b.output("pairs", b.concat([b.slice(x, begin: [0, 0, 0, 2], end: [2, 5, 6, 3]), b.slice(y, begin: [0, 0, 0, 0], end: [2, 5, 6, 1])], axis: 3))
        b.output("bigpairs", b.concat([b.slice(big, begin: [0, 0, 0, 5], end: [4, 64, 64, 6]), b.slice(big, begin: [0, 0, 0, 1], end: [4, 64, 64, 2]),
                                       b.slice(big, begin: [0, 0, 0, 0], end: [4, 64, 64, 1])], axis: 3))
        let seed = b.input("seed", [])
        b.output("uniform", b.apply(.randomUniform(shape: [20000], key: 3), [seed]))
        b.output("normal", b.apply(.randomNormal(shape: [3, 7000], key: 4), [seed]))
        b.output("inplace", b.unary(.exp, b.slice(y, begin: [0, 1, 0, 1], end: [2, 5, 6, 4])))
        b.output("sel", b.select(b.binary(.greater, x, b.constant(0)), x, b.neg(x)))
        let g = try b.finish()
        try compare(g, ["x": randomTensor([2, 5, 6, 3], seed: 11), "y": randomTensor([2, 5, 6, 4], seed: 12), "v": randomTensor([6, 1], seed: 13),
                         "seed": Tensor(42), "big": randomTensor([4, 64, 64, 8], seed: 14), "ku": randomTensor([2, 2, 8, 16], seed: 15),
                         "bu": randomTensor([16], seed: 16), "kc": randomTensor([3, 3, 11, 16], seed: 17)])
        let exe = try Compiler.compile(g, for: Signature.of(g))
        XCTAssertTrue(exe.kernelPlan.contains { $0.op.hasPrefix("fused output: upsample_nearest+conv2d") && "\($0.kernel)".contains("by upsampling phases") },
                      "\(exe.kernelPlan.map { "\($0.op): \($0.kernel)" })")
        XCTAssertTrue(exe.kernelPlan.contains { $0.op.hasPrefix("fused output: concat+conv2d") }, "\(exe.kernelPlan.map { "\($0.op): \($0.kernel)" })")
        XCTAssertTrue(exe.plan.buffers.contains { $0.reuses != nil }, "the test should exercise in-place reuse")
    }

    func testMatmulAndElementwiseMatchTheInterpreter() throws {
        // Small, then large enough to be split between the cores along m (70 rows: halves of 48
        // and 22) and along n (4 rows, 520 columns).
        for (mm, kk, nn) in [(5, 7, 4), (70, 90, 50), (4, 300, 520)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let b = GraphBuilder(name: "mm")
                    let a = b.input("a", ta ? [3, kk, mm] : [3, mm, kk]), m = b.input("m", tb ? [3, nn, kk] : [3, kk, nn])
                    b.output("y", b.matmul(a, m, transposeA: ta, transposeB: tb))
                    let g = try b.finish()
                    try compare(g, ["a": randomTensor(b.shape(a), seed: 1), "m": randomTensor(b.shape(m), seed: 2)])
                }
            }
        }
        let b = GraphBuilder(name: "ew")
        let x = b.input("x", [4, 5, 6]), bias = b.input("bias", [6]), col = b.input("col", [5, 1])
        b.output("a", b.add(x, bias))
        b.output("b", b.mul(x, col))
        b.output("c", b.div(b.constant(2), x))
        b.output("d", b.unary(.tanh, b.sub(x, b.constant(0.5))))
        try compare(try b.finish(), ["x": randomTensor([4, 5, 6], seed: 3), "bias": randomTensor([6], seed: 4), "col": randomTensor([5, 1], seed: 5)])
    }
}

/// GraphJIT: every elementwise op and broadcast pattern, compiled to machine code, against the
/// interpreter; the loops must come out vectorised.
final class JITTests: XCTestCase {
    func testEveryElementwiseOpMatchesTheInterpreter() throws {
        let b = GraphBuilder(name: "jit")
        let x = b.input("x", [3, 5, 7, 9]), y = b.input("y", [3, 5, 7, 9])
        let bias = b.input("bias", [9]), col = b.input("col", [5, 1, 1]), lead = b.input("lead", [3, 1, 1, 9])
        let positive = b.input("positive", [3, 5, 7, 9])
        for u in UnaryOp.allCases {
            let arg = [UnaryOp.log, .sqrt].contains(u) ? positive : x
            b.output("u_\(u.rawValue)", b.unary(u, arg))
        }
        for op in BinaryOp.allCases {
            let rhs = op == .pow ? b.mul(y, b.constant(2)) : y
            b.output("b_\(op.rawValue)", b.binary(op, op == .pow ? positive : x, rhs))
        }
        b.output("bias", b.relu(b.add(b.mul(x, bias), b.constant(0.25))))
        b.output("col", b.binary(.maximum, b.sub(x, col), b.mul(lead, y)))
        b.output("lead", b.unary(.tanh, b.div(lead, b.add(b.unary(.abs, y), b.constant(1)))))
        b.output("sel", b.select(b.binary(.greater, x, y), b.unary(.exp, x), b.neg(y)))
        b.output("const", b.mul(b.add(x, b.constant(Tensor(shape: [9], scalars: (0..<9).map { Float($0) / 4 }))), y))
        let g = try b.finish()
        var xs = randomTensor([3, 5, 7, 9], seed: 1), ys = randomTensor([3, 5, 7, 9], seed: 2)
        // NaN and ties: max/min/relu/select/comparisons must follow the reference kernels.
        xs.scalars[0] = .nan; ys.scalars[1] = .nan; xs.scalars[2] = 0.5; ys.scalars[2] = 0.5; xs.scalars[3] = 0
        let feeds = ["x": xs, "y": ys, "bias": randomTensor([9], seed: 3), "col": randomTensor([5, 1, 1], seed: 4),
                     "lead": randomTensor([3, 1, 1, 9], seed: 5), "positive": randomTensor([3, 5, 7, 9], seed: 6, lo: 0.1, hi: 2)]
        let ref = try evaluate(g, feeds, backend: .interpreter)
        let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: true))
        XCTAssertGreaterThan(exe.jitKernelCount, UnaryOp.allCases.count + BinaryOp.allCases.count)
        let ir = try XCTUnwrap(exe.llvmIR)
        XCTAssertTrue(ir.contains("<8 x float>"), "the JIT's loops should vectorise for AVX2")
        let out = try exe.run(feeds)
        for (name, t) in ref {
            let got = out[name]!
            for i in t.scalars.indices where t.scalars[i].isNaN { XCTAssertTrue(got.scalars[i].isNaN, "\(name)[\(i)] should be NaN") }
            var a = got, r = t
            for i in r.scalars.indices where r.scalars[i].isNaN { a.scalars[i] = 0; r.scalars[i] = 0 }
            XCTAssertLessThan(relativeErrors(a, r).max, 1e-5, name)
        }
    }

    /// Fused reductions (elementwise producers + a reduction over trailing axes) compile too, with
    /// double accumulation like the reference kernel; large ones split over the kept axes only.
    func testFusedReductionsMatchTheInterpreter() throws {
        let b = GraphBuilder(name: "reductions")
        let x = b.input("x", [4, 64, 64, 3]), y = b.input("y", [4, 64, 64, 3]), s = b.input("s", [3])
        let d = b.sub(x, y)
        b.output("mse", b.apply(.reduce(.mean, axes: [0, 1, 2, 3], keepDims: false), [b.mul(d, d)]))
        b.output("rows", b.apply(.reduce(.sum, axes: [3], keepDims: true), [b.unary(.exp, b.mul(x, s))]))
        b.output("pixels", b.apply(.reduce(.mean, axes: [1, 2, 3], keepDims: false), [b.unary(.abs, d)]))
        b.output("max", b.apply(.reduce(.max, axes: [2, 3], keepDims: false), [b.add(x, y)]))
        let g = try b.finish()
        var xs = randomTensor([4, 64, 64, 3], seed: 21)
        xs.scalars[5000] = .nan  // image 0: its "max" row must come out NaN
        let feeds = ["x": xs, "y": randomTensor([4, 64, 64, 3], seed: 22), "s": randomTensor([3], seed: 23)]
        let ref = try evaluate(g, feeds, backend: .interpreter)
        let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: true))
        let inputKernels = exe.graph.values.filter { if case .fused(let f)? = $0.op { return f.kind == .input } else { return false } }
        XCTAssertEqual(inputKernels.count, 4)
        XCTAssertGreaterThanOrEqual(exe.jitKernelCount, 4)
        let out = try exe.run(feeds)
        for (name, t) in ref {
            let got = out[name]!
            XCTAssertEqual(got.shape, t.shape, name)
            for i in t.scalars.indices {
                if t.scalars[i].isNaN { XCTAssertTrue(got.scalars[i].isNaN, "\(name)[\(i)]") } else {
                    XCTAssertEqual(Double(got.scalars[i]), Double(t.scalars[i]), accuracy: 1e-5 * max(1, abs(Double(t.scalars[i]))), "\(name)[\(i)]")
                }
            }
        }
    }

    /// The JIT's elementwise kernels take both cores above a size; the halves must join exactly.
    func testLargeKernelsSplitAcrossCoresMatch() throws {
        let b = GraphBuilder(name: "big")
        let x = b.input("x", [4, 64, 64, 8]), bias = b.input("bias", [8])
        b.output("y", b.unary(.sigmoid, b.add(b.mul(x, x), bias)))
        let g = try b.finish()
        let feeds = ["x": randomTensor([4, 64, 64, 8], seed: 7), "bias": randomTensor([8], seed: 8)]
        let ref = try evaluate(g, feeds, backend: .interpreter)["y"]!
        let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: true))
        XCTAssertEqual(exe.jitKernelCount, 1)
        XCTAssertLessThan(relativeErrors(try exe.run(feeds)["y"]!, ref).max, 1e-6)
    }
}

final class SafetensorsTests: XCTestCase {
    func testRoundTripAndAtomicWrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.safetensors").path
        let file = SafetensorsFile(tensors: ["w": randomTensor([3, 4], seed: 1), "s": Tensor(2.5), "e\"q": Tensor.zeros([0, 2])],
                                   metadata: ["note": "hello \"world\""])
        try file.write(path: path)
        try file.write(path: path)  // overwrite
        let back = try SafetensorsFile.read(path: path)
        XCTAssertEqual(back.tensors, file.tensors)
        XCTAssertEqual(back.metadata, file.metadata)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(leftovers, ["a.safetensors"])
    }

    func testCorruptAndTruncatedFilesAreRejected() throws {
        let data = SafetensorsFile(tensors: ["w": randomTensor([8, 8], seed: 1)]).encode()
        for cut in [0, 4, 8, 20, data.count - 1] {
            XCTAssertThrowsError(try SafetensorsFile.decode(data.prefix(cut))) { XCTAssertTrue("\($0)".contains("truncated") || "\($0)".contains("corrupt"), "\($0)") }
        }
        var bad = data
        bad[0] = 0xFF
        bad[5] = 0x7F
        XCTAssertThrowsError(try SafetensorsFile.decode(bad))
        var json = data
        json[8] = UInt8(ascii: "!")
        XCTAssertThrowsError(try SafetensorsFile.decode(json)) { XCTAssertTrue("\($0)".contains("JSON"), "\($0)") }
        let header = #"{"w":{"dtype":"F32","shape":[4,4],"data_offsets":[0,60]}}"#
        var wrong = Data()
        var n = UInt64(header.utf8.count)
        for _ in 0..<8 { wrong.append(UInt8(n & 0xFF)); n >>= 8 }
        wrong.append(contentsOf: Array(header.utf8) + [UInt8](repeating: 0, count: 64))
        XCTAssertThrowsError(try SafetensorsFile.decode(wrong)) { XCTAssertTrue("\($0)".contains("60 bytes"), "\($0)") }
        XCTAssertThrowsError(try SafetensorsFile.read(path: "/nonexistent/x.safetensors"))
    }

    func testReadsTheSharedFixtureFormat() throws {
        let f = try Fixture("secret_bce")
        XCTAssertEqual(f["input.logits"].shape, [4, 100])
        XCTAssertNotNil(f.file.metadata["attrs"])
    }
}

final class ExecutableTests: XCTestCase {
    func graph() throws -> Graph {
        let b = GraphBuilder(name: "affine")
        let x = b.input("x", [2, 3])
        let w = b.parameter("w", [3, 4], .glorotUniform(seed: 1))
        b.output("y", b.matmul(x, w))
        return try b.finish()
    }

    func testWrongShapesNameExpectedAndActual() throws {
        let g = try graph()
        let exe = try Compiler.compile(g, for: Signature.of(g))
        var store = ParameterStore(initializing: g)
        XCTAssertThrowsError(try exe.run(["x": Tensor.zeros([3, 2])], parameters: &store)) { e in
            XCTAssertEqual("\(e)", "input 'x': expected f32[2,3], got f32[3,2]")
        }
        XCTAssertThrowsError(try exe.run([:], parameters: &store)) { XCTAssertTrue("\($0)".contains("missing input 'x'")) }
        XCTAssertThrowsError(try exe.run(["x": Tensor.zeros([2, 3]), "z": Tensor(1)], parameters: &store)) {
            XCTAssertTrue("\($0)".contains("unexpected input 'z'"))
        }
        var wrong = ParameterStore(["w": Tensor.zeros([4, 3])])
        XCTAssertThrowsError(try exe.run(["x": Tensor.zeros([2, 3])], parameters: &wrong)) {
            XCTAssertTrue("\($0)".contains("parameter 'w': expected f32[3,4], got f32[4,3]"), "\($0)")
        }
        var empty = ParameterStore()
        XCTAssertThrowsError(try exe.run(["x": Tensor.zeros([2, 3])], parameters: &empty)) { XCTAssertTrue("\($0)".contains("'w'")) }
    }

    func testCompilingForAnotherSignatureIsAnError() throws {
        let g = try graph()
        XCTAssertThrowsError(try Compiler.compile(g, for: Signature(["x": [4, 3]]))) { e in
            XCTAssertTrue("\(e)".contains("(x: f32[2,3])") && "\(e)".contains("(x: f32[4,3])"), "\(e)")
        }
    }
}
