import Foundation
import GraphIR
import GraphRuntime
import StegaStamp

/// `stegastamp bench --convolutions`: every distinct convolution of the W3 training step (forward,
/// input gradient, filter gradient, with their shapes), each timed alone through a one-op
/// executable (kernel time from the profile), in GFLOP/s and as a fraction of the sgemm peak
/// measured in the same run.
struct ConvolutionBench {
    struct Case: Hashable {
        var op: Op
        var operands: [[Int]]
        var shape: [Int]
    }

    let size: Int
    let iterations: Int
    let options: CompileOptions

    /// Distinct convolution ops of a graph (fused bodies included) with their operand shapes.
    static func cases(in g: Graph) -> [Case: Int] {
        var found: [Case: Int] = [:]
        for v in g.values {
            guard case .op(let op, let operands) = v.definition else { continue }
            switch op {
            case .conv2d, .conv2dBackpropInput, .conv2dBackpropFilter:
                found[Case(op: op, operands: operands.map { g[$0].shape }, shape: v.shape), default: 0] += 1
            case .fused(let f):
                for (c, n) in cases(in: f.body) { found[c, default: 0] += n }
            default: continue
            }
        }
        return found
    }

    /// Multiply-adds x 2 of a convolution case (all three ops do the same work).
    static func flops(_ c: Case) -> Double {
        switch c.op {
        case .conv2d: return 2 * Double(Shape.count(c.shape)) * Double(c.operands[1][0] * c.operands[1][1] * c.operands[1][2])
        case .conv2dBackpropInput: return 2 * Double(Shape.count(c.operands[0])) * Double(c.operands[1][0] * c.operands[1][1] * c.operands[1][2])
        case .conv2dBackpropFilter: return 2 * Double(Shape.count(c.operands[1])) * Double(c.shape[0] * c.shape[1] * c.shape[2])
        default: return 0
        }
    }

    func time(_ op: Op, _ operands: [[Int]], iterations: Int? = nil) throws -> Double {
        let iterations = iterations ?? self.iterations
        let b = GraphBuilder(name: "one")
        let args = operands.enumerated().map { b.input("x\($0.offset)", $0.element) }
        b.output("y", b.apply(op, args))
        let g = try b.finish()
        let exe = try Compiler.compile(g, for: Signature.of(g), options: options)
        var feeds: [String: Tensor] = [:]
        for (k, s) in operands.enumerated() {
            feeds["x\(k)"] = Tensor(shape: s, scalars: (0..<Shape.count(s)).map { Float(($0 * 7919 + k) % 17) / 17 - 0.5 })
        }
        var store = ParameterStore()
        _ = try exe.run(feeds, parameters: &store)
        // The kernel's own time (the profile), not the call's: copying a large result out of the
        // arena into a new tensor would be counted otherwise.
        var times: [Double] = []
        for _ in 0..<iterations {
            let p = Profile()
            _ = try exe.run(feeds, parameters: &store, profile: p)
            times.append(p.seconds.values.reduce(0, +))
        }
        return times.sorted()[times.count / 2]
    }

    /// Every kernel the tuner could choose for the case, timed alone.
    func candidates(_ c: Case) -> String {
        let timed = ConvolutionCandidates.timed(c.op, operandShapes: c.operands, shape: c.shape, options: options)
        let best = timed.min { $0.1 < $1.1 }?.0
        return timed.enumerated().map { i, e in
            (e.0 == best ? ">" : "") + (i == 0 ? "=" : "") + e.0.description + String(format: " %.2f", e.1 * 1000)
        }.joined(separator: ", ")
    }

    func run() throws {
        let n = 1024
        // More iterations than the convolutions get: the first tenths of a second of a process ran
        // this product at one core's rate on these machines (the second vCPU waking up).
        let peak = 2 * Double(n * n * n) / (try time(.matmul(transposeA: false, transposeB: false), [[n, n], [n, n]], iterations: 25)) / 1e9
        print(String(format: "sgemm %dx%dx%d (OpenBLAS %@, this run): %.1f GFLOP/s; convolution kernels %@", n, n, n, BLASCore.name, peak, "\(options.convolution.rawValue) \(options.vectorISA.rawValue)"))
        let g = try BenchWorkload.w3.build(size: size).graph
        let exe = try Compiler.compile(g, for: Signature.of(g), options: options)
        let cases = Self.cases(in: exe.graph).sorted { Self.flops($0.key) * Double($0.value) > Self.flops($1.key) * Double($1.value) }
        print("W3 at \(size)x\(size): \(cases.count) distinct convolutions, \(cases.reduce(0) { $0 + $1.value }) in all")
        print("op                       input            kernel          stride  count   ms each   GFLOP/s  % of sgemm  candidates (ms; > the fastest, = the rules' choice)")
        var total = [String: (flops: Double, seconds: Double)]()
        for (c, count) in cases {
            let t = try time(c.op, c.operands)
            let gflops = Self.flops(c) / t / 1e9
            let (input, kernel, strides): ([Int], [Int], [Int])
            switch c.op {
            case .conv2d(let a): (input, kernel, strides) = (c.operands[0], c.operands[1], a.strides)
            case .conv2dBackpropInput(let a, let s): (input, kernel, strides) = (s, c.operands[1], a.strides)
            case .conv2dBackpropFilter(let a, let s): (input, kernel, strides) = (c.operands[0], s, a.strides)
            default: continue
            }
            let name = c.op.name
            total[name, default: (0, 0)].flops += Self.flops(c) * Double(count)
            total[name, default: (0, 0)].seconds += t * Double(count)
            print(name.padding(toLength: 24, withPad: " ", startingAt: 0) + " "
                  + Shape.describe(input).padding(toLength: 16, withPad: " ", startingAt: 0) + " "
                  + Shape.describe(kernel).padding(toLength: 15, withPad: " ", startingAt: 0) + " "
                  + "\(strides[0])x\(strides[1])".padding(toLength: 7, withPad: " ", startingAt: 0)
                  + String(format: " %5d %9.2f %9.1f %10.0f%%  ", count, t * 1000, gflops, 100 * gflops / peak) + candidates(c))
        }
        for (name, t) in total.sorted(by: { $0.key < $1.key }) {
            print(String(format: "%@: %.1f ms per step in all, %.1f GFLOP/s (%.0f%% of sgemm)", name, t.seconds * 1000,
                         t.flops / t.seconds / 1e9, 100 * t.flops / t.seconds / 1e9 / peak))
        }
    }
}
