import Foundation
import GraphIR
import GraphKernels
@testable import GraphRuntime
import TestSupport
import XCTest

/// The kernel plan: every kernel the tuner may choose computes what the reference does, the plan
/// names a kernel per step, and the tuning cache is read back, rebuilt when corrupt, and logged.
final class KernelPlanTests: XCTestCase {
    /// Convolution geometries: 3x3 wide and narrow, strided, 1x1 (where only the tuner tries the
    /// direct kernels), few channels, partial register blocks, Winograd shapes.
    static let convolutions: [([Int], [Int], [Int], [Int])] = [
        ([2, 9, 7, 5], [3, 3, 5, 4], [1, 1], [1, 1, 1, 1]),
        ([1, 5, 30, 5], [3, 3, 5, 20], [1, 1], [1, 1, 1, 1]),
        ([2, 5, 52, 4], [3, 3, 4, 17], [2, 2], [0, 1, 0, 1]),
        ([2, 7, 25, 16], [3, 3, 16, 16], [1, 1], [1, 1, 1, 1]),
        ([1, 6, 27, 19], [3, 3, 19, 40], [1, 1], [1, 1, 1, 1]),
        ([1, 7, 25, 16], [3, 3, 16, 6], [2, 2], [1, 1, 1, 1]),
        ([2, 6, 20, 16], [2, 2, 16, 7], [2, 2], [0, 0, 0, 0]),
        ([2, 6, 20, 16], [1, 1, 16, 24], [1, 1], [0, 0, 0, 0]),
        ([1, 4, 33, 40], [1, 1, 40, 3], [1, 1], [0, 0, 0, 0]),
        ([1, 6, 21, 17], [1, 1, 17, 7], [2, 2], [0, 0, 0, 0]),
        ([2, 12, 40, 3], [3, 3, 3, 32], [2, 2], [0, 1, 0, 1]),  // the decoder's first layer: strided, 3 input channels
    ]

    static func steps(_ xs: [Int], _ ks: [Int], _ c: ConvAttributes) throws -> [(Step, [Tensor])] {
        let ys = try Op.conv2d(c).resultShape([xs, ks])
        let x = randomTensor(xs, seed: 1), k = randomTensor(ks, seed: 2), dy = randomTensor(ys, seed: 3)
        func step(_ op: Op, _ operands: [Tensor], _ shape: [Int]) -> (Step, [Tensor]) {
            (Step(value: 0, op: op, operands: Array(operands.indices), operandShapes: operands.map(\.shape), shape: shape, argStart: 0,
                  count: operands.count), operands)
        }
        return [step(.conv2d(c), [x, k], ys), step(.conv2dBackpropInput(c, inputShape: xs), [dy, k], xs),
                step(.conv2dBackpropFilter(c, filterShape: ks), [x, dy], ks)]
    }

    func testEveryCandidateKernelMatchesTheReference() throws {
        var tried: Set<String> = []
        for (xs, ks, strides, padding) in Self.convolutions {
            let c = ConvAttributes(strides: strides, padding: padding)
            for (s, operands) in try Self.steps(xs, ks, c) {
                let ref = ReferenceKernels.run(s.op, operands, shape: s.shape)
                let candidates = ConvolutionPlanner.candidates(s, heuristic: .gemm)
                XCTAssertTrue(candidates.contains(.gemm))
                for candidate in candidates {
                    XCTAssertEqual(ConvKernel(key: candidate.key), candidate, "the tuning cache's name of \(candidate)")
                    let got = try XCTUnwrap(CPUKernels.run(s.op, operands, shape: s.shape, conv: { _ in candidate }))
                    let e = relativeErrors(got, ref)
                    XCTAssertLessThan(e.max, 1e-5, "\(s.op.name) \(xs) \(ks) \(strides) with \(candidate)")
                    tried.insert("\(s.op.name) \(candidate)")
                }
            }
        }
        // The direct kernels are tried for every op kind, Winograd for 3x3 stride 1.
        for isa in VectorISA.available {
            for op in ["conv2d", "conv2d_backprop_input", "conv2d_backprop_filter"] {
                XCTAssertTrue(tried.contains("\(op) direct \(isa.rawValue)"), "\(op) direct \(isa.rawValue) never a candidate")
                XCTAssertTrue(tried.contains("\(op) winograd \(isa.rawValue)"), "\(op) winograd \(isa.rawValue) never a candidate")
                // small steps: the direct kernels on one thread too
                XCTAssertTrue(tried.contains("\(op) direct \(isa.rawValue) 1 thread"), "\(op) direct \(isa.rawValue) on one thread never a candidate")
            }
        }
    }

    /// Skinny matmuls (one side at most 8): every form the own kernels take, short sides 1-8
    /// (one and two row blocks), long sides with whole tiles, a partial tile and single columns,
    /// reductions shorter and longer than a vector, and long reductions split over the cores;
    /// each candidate against the reference.
    func testEverySkinnyMatmulCandidateMatchesTheReference() throws {
        var tried: Set<String> = []
        // (transA, transB, m, n, k)
        let products: [(Bool, Bool, Int, Int, Int)] = [
            (false, false, 4, 128, 300), (false, false, 1, 77, 230), (false, false, 8, 200, 64), (false, false, 6, 133, 129),
            // Split along k (few column tiles, k >= 4096): chunks of unequal length, two row blocks, narrow columns.
            (false, false, 4, 128, 5000), (false, false, 7, 77, 4100), (false, false, 2, 20, 9000),
            (false, true, 4, 300, 128), (false, true, 3, 257, 37), (false, true, 8, 90, 200), (false, true, 5, 600, 9),
            (true, false, 300, 128, 4), (true, false, 513, 37, 1), (true, false, 100, 70, 8), (true, false, 64, 200, 3),
        ]
        for (ta, tb, m, n, k) in products {
            let a = randomTensor(ta ? [k, m] : [m, k], seed: 11), b = randomTensor(tb ? [n, k] : [k, n], seed: 12)
            let op = Op.matmul(transposeA: ta, transposeB: tb)
            let s = Step(value: 0, op: op, operands: [0, 1], operandShapes: [a.shape, b.shape], shape: [m, n], argStart: 0, count: 2)
            XCTAssertTrue(ConvolutionPlanner.skinny(s), "\(ta) \(tb) \(m)x\(n)x\(k) should be skinny")
            let ref = ReferenceKernels.run(op, [a, b], shape: [m, n])
            let candidates = ConvolutionPlanner.candidates(s, heuristic: .gemm)
            XCTAssertEqual(candidates.count, VectorISA.available.count + 1, "\(candidates)")
            for candidate in candidates {
                let got = try XCTUnwrap(CPUKernels.run(op, [a, b], shape: [m, n], conv: { _ in candidate }))
                let e = relativeErrors(got, ref)
                XCTAssertLessThan(e.max, 1e-5, "matmul \(ta) \(tb) \(m)x\(n)x\(k) with \(candidate)")
                let (kernel, _) = try XCTUnwrap(CPUKernels.kernel(for: s, conv: { _ in candidate }))
                tried.insert(kernel.description)
            }
        }
        for isa in VectorISA.available { XCTAssertTrue(tried.contains("skinny gemm \(isa.rawValue)"), "\(tried)") }
        XCTAssertTrue(tried.contains("sgemm"))
        // Neither short side: OpenBLAS only.
        let wide = Step(value: 0, op: .matmul(transposeA: false, transposeB: false), operands: [0, 1], operandShapes: [[16, 64], [64, 64]],
                        shape: [16, 64], argStart: 0, count: 2)
        XCTAssertFalse(ConvolutionPlanner.skinny(wide))
        XCTAssertEqual(ConvolutionPlanner.candidates(wide, heuristic: .gemm), [.gemm])
    }

    /// Stride-1 convolutions over a nearest upsampling, fused: every factor / kernel / padding
    /// mix (taps falling one, two and three to a source pixel, a tap group before the image),
    /// phases narrower than the direct kernel takes (the upsampling is then written out), each
    /// candidate of the full-size convolution, with and without the bias + ReLU, against the
    /// reference evaluation of the same body.
    func testConvolutionsOverAnUpsamplingMatchTheReference() throws {
        // (source, factors, kernel, padding)
        let cases: [([Int], [Int], [Int], [Int])] = [
            ([2, 7, 9, 16], [2, 2], [2, 2, 16, 20], [0, 1, 0, 1]),  // the U-Net's up-convolution
            ([1, 5, 8, 3], [2, 2], [3, 3, 3, 40], [1, 1, 1, 1]),
            ([1, 4, 6, 5], [3, 2], [4, 3, 5, 9], [2, 1, 0, 2]),
            ([2, 3, 10, 8], [2, 1], [1, 1, 8, 33], [0, 0, 0, 0]),
            ([1, 6, 2, 4], [2, 2], [2, 2, 4, 6], [0, 1, 0, 1]),  // 4 output columns: too narrow for the phases
        ]
        var labels: Set<String> = []
        for (source, factors, ks, padding) in cases {
            let c = ConvAttributes(strides: [1, 1], padding: padding)
            let up = [source[0], source[1] * factors[0], source[2] * factors[1], source[3]]
            let ys = try Op.conv2d(c).resultShape([up, ks])
            let x = randomTensor(source, seed: 21), k = randomTensor(ks, seed: 22), bias = randomTensor([ks[3]], seed: 23)
            for (body, operands) in try withAndWithoutBiasReLU([x, k], bias: bias, { b in
                let xi = b.input("x", source), ki = b.input("k", ks)
                return b.conv2d(b.apply(.upsampleNearest(factors: factors), [xi]), ki, strides: [1, 1], padding: padding)
            }) {
                try checkEveryCandidate(body, operands, convolution: c, image: up, kernel: ks, output: ys, &labels,
                                        "\(source) x\(factors) \(ks) \(padding)")
            }
        }
        for isa in VectorISA.available { XCTAssertTrue(labels.contains("direct \(isa.rawValue) by phases"), "\(labels)") }
        XCTAssertTrue(labels.contains("upsample + im2col+sgemm"), "\(labels)")
        XCTAssertTrue(labels.contains { $0.hasPrefix("upsample + direct") }, "narrow phases: \(labels)")
    }

    /// The body `build` makes (its inputs in the order of `operands`), alone and under the fused
    /// output kernels' bias + ReLU tail, each with its operands.
    func withAndWithoutBiasReLU(_ operands: [Tensor], bias: Tensor, _ build: (GraphBuilder) -> ValueID) throws -> [(Graph, [Tensor])] {
        try [false, true].map { epilogue in
            let b = GraphBuilder(name: "body")
            var y = build(b)
            if epilogue { y = b.relu(b.add(y, b.input("bias", bias.shape))) }
            b.output("result", y)
            return (try b.finish(), epilogue ? operands + [bias] : operands)
        }
    }

    /// A fused convolution body under every candidate of its full-size convolution against the
    /// reference evaluation of the body; the kernels' profile labels go into `labels`.
    func checkEveryCandidate(_ body: Graph, _ operands: [Tensor], convolution c: ConvAttributes, image: [Int], kernel ks: [Int],
                             output ys: [Int], _ labels: inout Set<String>, _ what: String) throws {
        let f = FusedKernel(kind: .output, body: body)
        let ref = ReferenceKernels.evaluate(body, operands) { op, a, shape in ReferenceKernels.run(op, a, shape: shape) }
        let full = Step(value: 0, op: .conv2d(c), operands: [0, 1], operandShapes: [image, ks], shape: ys, argStart: 0, count: 2)
        let s = Step(value: 0, op: .fused(f), operands: Array(operands.indices), operandShapes: operands.map(\.shape), shape: ys,
                     argStart: 0, count: operands.count)
        for candidate in ConvolutionPlanner.candidates(full, heuristic: .gemm) {
            let (kernel, _) = try XCTUnwrap(CPUKernels.fusedConvolution(f, s, conv: { _ in candidate }))
            labels.insert(kernel.profileLabel)
            let got = try XCTUnwrap(CPUKernels.run(.fused(f), operands, shape: ys, conv: { _ in candidate }))
            XCTAssertLessThan(relativeErrors(got, ref).max, 1e-5, "\(what) with \(kernel)")
        }
    }

    /// Convolutions over a channel concatenation, fused: parts of 1 to 40 channels (partial
    /// register blocks, a part narrower than a vector), strided, padded, 1x1 and 3x3, each
    /// candidate (the direct kernel over the parts, Winograd and sgemm over the written-out
    /// concatenation), with and without the bias + ReLU, against the reference.
    func testConvolutionsOverAConcatenationMatchTheReference() throws {
        // (part channels, image [n, h, w], kernel [kh, kw, co], strides, padding)
        let cases: [([Int], [Int], [Int], [Int], [Int])] = [
            ([32, 32, 6], [2, 9, 20], [3, 3, 20], [1, 1], [1, 1, 1, 1]),  // the U-Net's last merge
            ([1, 16, 3], [1, 7, 25], [3, 3, 40], [2, 2], [0, 1, 0, 1]),
            ([5, 40], [2, 6, 14], [1, 1, 9], [1, 1], [0, 0, 0, 0]),
            ([17, 19], [1, 8, 16], [3, 3, 33], [1, 1], [1, 1, 1, 1]),  // Winograd applies
        ]
        var labels: Set<String> = []
        for (channels, hw, kernel, strides, padding) in cases {
            let c = ConvAttributes(strides: strides, padding: padding)
            let image = hw + [channels.reduce(0, +)], ks = [kernel[0], kernel[1], image[3], kernel[2]]
            let ys = try Op.conv2d(c).resultShape([image, ks])
            let parts = channels.enumerated().map { randomTensor(hw + [$0.element], seed: 30 + UInt64($0.offset)) }
            let k = randomTensor(ks, seed: 40), bias = randomTensor([ks[3]], seed: 41)
            for (body, operands) in try withAndWithoutBiasReLU(parts + [k], bias: bias, { b in
                let xs = parts.enumerated().map { b.input("x\($0.offset)", $0.element.shape) }
                return b.apply(.conv2d(c), [b.concat(xs, axis: 3), b.input("k", ks)])
            }) {
                try checkEveryCandidate(body, operands, convolution: c, image: image, kernel: ks, output: ys, &labels,
                                        "\(channels) \(hw) \(kernel) \(strides)")
            }
        }
        for isa in VectorISA.available {
            XCTAssertTrue(labels.contains("direct \(isa.rawValue) over parts"), "\(labels)")
            XCTAssertTrue(labels.contains("concat + winograd \(isa.rawValue)"), "\(labels)")
        }
        XCTAssertTrue(labels.contains("concat + im2col+sgemm"), "\(labels)")
    }

    /// A conv + bias + ReLU network with a reverse (no native kernel) and a broadcasting binary.
    func network() throws -> (Graph, [String: Tensor]) {
        let b = GraphBuilder(name: "plan")
        let x = b.input("x", [2, 12, 30, 16])
        let k1 = b.input("k1", [3, 3, 16, 16]), b1 = b.input("b1", [16]), k2 = b.input("k2", [1, 1, 16, 8])
        var h = b.relu(b.add(b.conv2dSame(x, k1, stride: 1), b1))
        h = b.conv2dSame(h, k2, stride: 1)
        b.output("y", b.apply(.reverse(axes: [2]), [b.mul(h, h)]))
        let feeds = ["x": randomTensor([2, 12, 30, 16], seed: 4), "k1": randomTensor([3, 3, 16, 16], seed: 5),
                     "b1": randomTensor([16], seed: 6), "k2": randomTensor([1, 1, 16, 8], seed: 7)]
        return (try b.finish(), feeds)
    }

    func testThePlanNamesAKernelForEveryStep() throws {
        let (g, feeds) = try network()
        let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(convolution: .winograd, jit: true))
        let plan = exe.kernelPlan
        XCTAssertEqual(plan.count, exe.plan.schedule.filter { exe.graph[$0].op != nil }.count)
        let text = plan.map { "\($0.op): \($0.kernel)" }
        XCTAssertTrue(text.contains { $0.hasPrefix("fused output: conv2d+add+relu: winograd") && $0.hasSuffix("+ bias+relu") }, "\(text)")
        XCTAssertTrue(text.contains { $0.contains("reverse: reference (no native kernel for reverse)") }, "\(text)")
        XCTAssertTrue(plan.allSatisfy { !$0.tuned })
        // Profiles are kept by op and kernel.
        let profile = Profile()
        var store = ParameterStore(initializing: exe.graph)
        _ = try exe.run(feeds, parameters: &store, profile: profile)
        XCTAssertTrue(profile.seconds.keys.contains { $0.contains("[winograd") }, "\(profile.seconds.keys)")
        XCTAssertTrue(profile.seconds.keys.contains { $0.contains("[reference]") })
    }

    /// A fused reduction over the leading axis (the gradient of a broadcast over a batch of
    /// views), which the JIT takes only over trailing axes: the Swift loops then the native
    /// reduction, with and without the JIT, as the interpreter computes it.
    func testAFusedReductionOverLeadingAxesRunsOnLoopsThenAReduction() throws {
        let b = GraphBuilder(name: "leading_sum")
        let x = b.input("x", [8, 6, 10, 3]), y = b.input("y", [8, 6, 10, 3])
        let masked = b.mul(b.mul(b.sub(x, y), b.apply(.binary(.greater), [x, b.constant(0)])), b.constant(0.5))
        b.output("s", b.sum(masked, axes: [0]))
        let g = try b.finish()
        let feeds = ["x": randomTensor([8, 6, 10, 3], seed: 1), "y": randomTensor([8, 6, 10, 3], seed: 2)]
        let ref = try evaluate(g, feeds)["s"]!
        for jit in [true, false] {
            let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(jit: jit))
            let text = exe.kernelPlan.map { "\($0.op): \($0.kernel)" }
            XCTAssertTrue(text.contains { $0.hasPrefix("fused input:") && $0.hasSuffix("swift loops + native reduction") }, "\(text)")
            let got = try exe.run(feeds)["s"]!
            XCTAssertEqual(got.shape, ref.shape)
            XCTAssertLessThan(relativeErrors(got, ref).max, 1e-6, "jit \(jit)")
        }
    }

    /// What a tuning test reads back: its cache file's path and the tuner's log lines.
    final class TuningSandbox: @unchecked Sendable {
        let path: String
        var lines: [String] = []
        init(path: String) { self.path = path }
    }

    /// A cache path in a fresh temporary folder, the tuner's log captured and its load probe
    /// reading `load`; all put back (and the folder removed) when the test ends.
    func tuningSandbox(load: Double?) -> TuningSandbox {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tuning-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        let sandbox = TuningSandbox(path: dir.appendingPathComponent("tuning.json").path)
        let (log, probe) = (KernelTuner.log, KernelTuner.loadProbe)
        KernelTuner.log = { sandbox.lines.append($0) }
        KernelTuner.loadProbe = { load }
        addTeardownBlock {
            (KernelTuner.log, KernelTuner.loadProbe) = (log, probe)
            KernelTuner.forget(path: sandbox.path)
            try? FileManager.default.removeItem(at: dir)
        }
        return sandbox
    }

    func testTunedExecutablesMatchTheInterpreterAndReadTheCacheBack() throws {
        let (g, feeds) = try network()
        // A quiet machine, whatever else runs beside the tests (the busy case has its own test).
        let sandbox = tuningSandbox(load: 0)
        let path = sandbox.path

        let ref = try evaluate(g, feeds, backend: .interpreter)
        let options = CompileOptions(tuningCache: path)
        let first = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertTrue(first.kernelPlan.contains { $0.tuned })
        XCTAssertLessThan(relativeErrors(try first.run(feeds)["y"]!, ref["y"]!).max, 1e-5)
        XCTAssertTrue(sandbox.lines.last?.contains("measured (no cache file yet)") ?? false, "\(sandbox.lines)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))

        // A new process (a new tuner on the same file) reads every choice back.
        KernelTuner.forget(path: path)
        sandbox.lines.removeAll()
        let second = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertTrue(sandbox.lines.last?.contains("from \(path)") ?? false, "\(sandbox.lines)")
        XCTAssertFalse(sandbox.lines.last?.contains("measured") ?? true, "\(sandbox.lines)")
        XCTAssertEqual(second.kernelPlan.map(\.kernel), first.kernelPlan.map(\.kernel))

        // A corrupt cache is said so, measured again and rewritten whole.
        try "{ not json".write(toFile: path, atomically: true, encoding: .utf8)
        KernelTuner.forget(path: path)
        sandbox.lines.removeAll()
        let third = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertTrue(sandbox.lines.last?.contains("unreadable") ?? false, "\(sandbox.lines)")
        XCTAssertLessThan(relativeErrors(try third.run(feeds)["y"]!, ref["y"]!).max, 1e-5)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        XCTAssertEqual((json?["entries"] as? [String: Any])?.isEmpty, false)
    }

    /// A convolution over an upsampling or a concatenation is timed as the fused kernel that runs
    /// it (phases, parts), not as the plain convolution over the whole image: its cache entry is
    /// keyed by the fused body, and the plan marks it tuned.
    func testTheTunerTimesConvolutionsOverAPrologueAsTheyRun() throws {
        let b = GraphBuilder(name: "prologues")
        let x = b.input("x", [2, 10, 12, 16]), skip = b.input("skip", [2, 20, 24, 8])
        let k1 = b.input("k1", [2, 2, 16, 8]), b1 = b.input("b1", [8]), k2 = b.input("k2", [3, 3, 16, 8]), b2 = b.input("b2", [8])
        let up = b.relu(b.add(b.conv2d(b.apply(.upsampleNearest(factors: [2, 2]), [x]), k1, strides: [1, 1], padding: [0, 1, 0, 1]), b1))
        b.output("y", b.relu(b.add(b.conv2dSame(b.apply(.concat(axis: 3), [skip, up]), k2, stride: 1), b2)))
        let g = try b.finish()
        var feeds: [String: Tensor] = [:]
        for (seed, name) in ["x", "skip", "k1", "b1", "k2", "b2"].enumerated() { feeds[name] = randomTensor(g[g.value(named: name)!].shape, seed: UInt64(40 + seed)) }
        let path = tuningSandbox(load: 0).path
        let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(tuningCache: path))
        let prologueSteps = exe.kernelPlan.filter { $0.op.contains("upsample") || $0.op.contains("concat") }
        XCTAssertEqual(prologueSteps.count, 2, "\(exe.kernelPlan.map { "\($0.op): \($0.kernel)" })")
        XCTAssertTrue(prologueSteps.allSatisfy(\.tuned), "\(prologueSteps)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        let keys = Array((json?["entries"] as? [String: Any] ?? [:]).keys)
        XCTAssertTrue(keys.contains { $0.contains("fused[upsampleNearest") }, "\(keys)")
        XCTAssertTrue(keys.contains { $0.contains("fused[concat") }, "\(keys)")
        let ref = try evaluate(g, feeds, backend: .interpreter)
        XCTAssertLessThan(relativeErrors(try exe.run(feeds)["y"]!, ref["y"]!).max, 1e-5)
    }

    /// A skinny product's candidates are named in the cache by what they run (the own kernels of an
    /// ISA, or OpenBLAS's sgemm), and the names read back to the same choice.
    func testSkinnyProductsAreNamedByTheirKernelsInTheCache() throws {
        let b = GraphBuilder(name: "skinny")
        let x = b.input("x", [4, 256]), w = b.input("w", [256, 64])
        b.output("y", b.matmul(x, w))
        let g = try b.finish()
        let feeds = ["x": randomTensor([4, 256], seed: 61), "w": randomTensor([256, 64], seed: 62)]
        let sandbox = tuningSandbox(load: 0)
        let options = CompileOptions(tuningCache: sandbox.path)
        let first = try Compiler.compile(g, for: Signature.of(g), options: options)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path))) as? [String: Any]
        let entries = json?["entries"] as? [String: [String: Any]] ?? [:]
        let entry = try XCTUnwrap(entries.first { $0.key.contains("matmul") }?.value, "\(entries.keys)")
        let names = Set((entry["ms"] as? [String: Any] ?? [:]).keys)
        XCTAssertTrue(names.contains("sgemm") && names.contains("skinny-avx2"), "\(names)")
        XCTAssertFalse(names.contains { $0.hasPrefix("direct") || $0 == "gemm" }, "\(names)")
        XCTAssertTrue(names.contains(entry["kernel"] as? String ?? ""), "\(entry)")
        KernelTuner.forget(path: sandbox.path)
        sandbox.lines.removeAll()
        let second = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertFalse(sandbox.lines.last?.contains("measured") ?? true, "\(sandbox.lines)")
        XCTAssertEqual(second.kernelPlan.map(\.kernel), first.kernelPlan.map(\.kernel))
        XCTAssertLessThan(relativeErrors(try second.run(feeds)["y"]!, try evaluate(g, feeds)["y"]!).max, 1e-5)
    }

    /// Times taken while other processes hold the cores are not trusted beyond this process: the
    /// choices are used, logged as such and kept out of the file; a limit of 1 caches them anyway.
    func testChoicesMeasuredOnABusyMachineAreNotCached() throws {
        let (g, feeds) = try network()
        let sandbox = tuningSandbox(load: 0.9)
        let path = sandbox.path
        func entries() throws -> [String: Any] {
            guard FileManager.default.fileExists(atPath: path) else { return [:] }
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
            return json?["entries"] as? [String: Any] ?? [:]
        }
        let ref = try evaluate(g, feeds, backend: .interpreter)
        let busy = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(tuningCache: path))
        XCTAssertTrue(busy.kernelPlan.contains { $0.tuned })
        XCTAssertLessThan(relativeErrors(try busy.run(feeds)["y"]!, ref["y"]!).max, 1e-5)
        XCTAssertTrue(sandbox.lines.last?.contains("90 % of the cores busy: kept for this process only") ?? false, "\(sandbox.lines)")
        XCTAssertTrue(try entries().isEmpty, "nothing measured on a busy machine is written")
        // The same process reuses its own choices without measuring again.
        sandbox.lines.removeAll()
        let again = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(tuningCache: path))
        XCTAssertFalse(sandbox.lines.last?.contains("measured") ?? true, "\(sandbox.lines)")
        XCTAssertEqual(again.kernelPlan.map(\.kernel), busy.kernelPlan.map(\.kernel))
        // A new process on a quiet machine measures and writes them.
        KernelTuner.forget(path: path)
        KernelTuner.loadProbe = { 0.1 }
        _ = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(tuningCache: path))
        XCTAssertFalse(try entries().isEmpty)
        // With the limit at 1, even a busy machine's choices are written.
        try FileManager.default.removeItem(atPath: path)
        KernelTuner.forget(path: path)
        KernelTuner.loadProbe = { 0.9 }
        var options = CompileOptions(tuningCache: path)
        options.tuningLoadLimit = 1
        _ = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertFalse(try entries().isEmpty)
    }

    /// The probe sees other processes' work: one spinning shell per core reads as a busy machine.
    func testTheLoadProbeSeesOtherProcesses() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let spinners = try (0..<cores).map { _ -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "while :; do :; done"]
            try p.run()
            return p
        }
        defer { for p in spinners { p.terminate(); p.waitUntilExit() } }
        usleep(100_000)
        let load = try XCTUnwrap(KernelTuner.otherProcessesLoad(seconds: 0.3))
        XCTAssertGreaterThan(load, 0.5, "\(cores) spinning processes on \(cores) cores")
        XCTAssertLessThanOrEqual(load, 1)
    }
}
