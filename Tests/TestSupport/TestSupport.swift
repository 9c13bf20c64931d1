import Foundation
import GraphAutodiff
import GraphIR
import GraphRuntime

/// The repository root, found from this file's path (tests run from any directory).
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fixture file of Tests/Fixtures (copied from ../shared/fixtures with its README).
public struct Fixture {
    public let file: SafetensorsFile
    public let name: String

    public init(_ name: String) throws {
        self.name = name
        file = try SafetensorsFile.read(path: repositoryRoot.appendingPathComponent("Tests/Fixtures/\(name).safetensors").path)
    }

    public subscript(_ key: String) -> Tensor {
        guard let t = file.tensors[key] else { fatalError("fixture \(name) has no tensor \(key)") }
        return t
    }

    /// The fixture's `attrs` metadata as JSON.
    public var attrs: [String: Any] {
        guard let s = file.metadata["attrs"], let d = s.data(using: .utf8),
              let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
        return j
    }
}

/// max|a - e| / max|e| and ||a - e|| / ||e||, the fixtures README's two metrics.
public func relativeErrors(_ actual: Tensor, _ expected: Tensor) -> (max: Double, l2: Double) {
    precondition(actual.shape == expected.shape, "shape \(actual.shape) vs expected \(expected.shape)")
    var maxDiff = 0.0, maxRef = 0.0, diff2 = 0.0, ref2 = 0.0
    for (a, e) in zip(actual.scalars, expected.scalars) {
        let d = Double(a) - Double(e)
        if d.isNaN { return (.infinity, .infinity) }
        maxDiff = max(maxDiff, abs(d))
        maxRef = max(maxRef, abs(Double(e)))
        diff2 += d * d
        ref2 += Double(e) * Double(e)
    }
    let scale = maxRef == 0 ? 1 : maxRef
    return (maxDiff / scale, ref2 == 0 ? diff2.squareRoot() : (diff2 / ref2).squareRoot())
}

/// The ways a test runs a graph: the interpreter (the oracle), the CPU backend with its Swift
/// elementwise loops and AVX2 convolution kernels, and the CPU backend with GraphJIT and the
/// widest convolution kernels this machine has (AVX-512 where it can), so fixture tests cover both.
public enum TestBackend: String, CaseIterable, Sendable {
    case interpreter, cpu, cpuJIT = "cpu+jit"
    public var options: CompileOptions {
        switch self {
        case .interpreter: return CompileOptions(backend: .interpreter)
        case .cpu: return CompileOptions(backend: .cpu, jit: false, vectorISA: .avx2)
        case .cpuJIT: return CompileOptions(backend: .cpu, jit: true)
        }
    }
}

/// Runs `graph` (no parameters) through a backend.
public func evaluate(_ graph: Graph, _ feeds: [String: Tensor], backend: Backend = .interpreter) throws -> [String: Tensor] {
    let exe = try Compiler.compile(graph, for: Signature.of(graph), options: CompileOptions(backend: backend))
    return try exe.run(feeds)
}

/// A deterministic pseudo-random tensor in [lo, hi).
public func randomTensor(_ shape: [Int], seed: UInt64, lo: Float = -1, hi: Float = 1) -> Tensor {
    let n = Shape.count(shape)
    return Tensor(shape: shape, scalars: (0..<n).map { i in
        lo + (hi - lo) * CounterRandom.uniform(seed: seed, key: 7, counter: UInt64(i))
    })
}

public struct GradientCheckResult: CustomStringConvertible {
    public var worst: Double = 0
    public var detail = ""
    public var description: String { "worst relative error \(worst) \(detail)" }
}

/// Finite-difference check of the symbolic gradient. `body` builds y from the inputs; the
/// checked scalar is L = sum(y * r) with a fixed random r. Central differences at up to
/// `samples` elements per input, compared with the autodiff gradient relative to the largest
/// gradient entry of that input (float32 forward passes, so eps is coarse).
public func gradientCheck(_ inputs: [(String, Tensor)], eps: Float = 1e-2, samples: Int = 24,
                          _ body: (GraphBuilder, [ValueID]) -> ValueID) throws -> GradientCheckResult {
    let b = GraphBuilder(name: "gradcheck")
    let ids = inputs.map { b.input($0.0, $0.1.shape) }
    let y = body(b, ids)
    let r = b.constant(randomTensor(b.shape(y), seed: 99, lo: -1, hi: 1))
    let loss = b.sum(b.mul(y, r), axes: Array(0..<b.shape(y).count))
    b.output("loss", loss)
    let forward = try b.finish()
    let (full, grads) = try Autodiff.gradient(of: forward, output: loss, wrt: ids)
    var withGrads = full
    for (i, g) in grads.enumerated() { withGrads.outputs.append(Output(name: "grad\(i)", value: g)) }
    var feeds: [String: Tensor] = [:]
    for (n, t) in inputs { feeds[n] = t }
    let analytic = try evaluate(withGrads, feeds)
    let fwd = try Compiler.compile(forward, for: Signature.of(forward), options: CompileOptions(backend: .interpreter))
    var result = GradientCheckResult()
    for (k, (name, t)) in inputs.enumerated() {
        let g = analytic["grad\(k)"]!
        let scale = max(g.scalars.map { Double(abs($0)) }.max() ?? 0, 1e-3)
        let stride = max(1, t.count / samples)
        for idx in Swift.stride(from: 0, to: t.count, by: stride) {
            var plus = feeds, minus = feeds
            plus[name]!.scalars[idx] += eps
            minus[name]!.scalars[idx] -= eps
            let lp = Double(try fwd.run(plus)["loss"]!.scalar)
            let lm = Double(try fwd.run(minus)["loss"]!.scalar)
            let fd = (lp - lm) / (2 * Double(eps))
            let err = abs(fd - Double(g.scalars[idx])) / scale
            if err > result.worst {
                result.worst = err
                result.detail = "(input \(name)[\(idx)]: finite difference \(fd), autodiff \(g.scalars[idx]))"
            }
        }
    }
    return result
}

/// Checks a fixture file against a graph: `build` receives a function that turns a fixture
/// tensor name (`input.x`, `param.k3`, ...) into a graph input and returns graph values for
/// `expected.*` names. Every `grads` entry of the fixture's attrs whose `of` was built is then
/// differentiated with our autodiff (L = sum(of * cotangent), or `of` itself for scalars) and
/// compared too. Returns "name: errors" lines for every tensor over its tolerance (empty = pass)
/// and the number of tensors compared.
public func checkFixture(_ fx: Fixture, backend: TestBackend = .interpreter, tolerance: Double, gradTolerance: Double,
                         parametersFromFixture: Bool = false,
                         build: (GraphBuilder, (String) -> ValueID) -> [String: ValueID]) throws -> (failures: [String], compared: Int) {
    let b = GraphBuilder(name: fx.name)
    var created: [String: ValueID] = [:]
    func get(_ name: String) -> ValueID {
        if let id = created[name] { return id }
        // A parameter the model builder made: use it (its value comes from the fixture below).
        if name.hasPrefix("param."), let id = b.graph.value(named: String(name.dropFirst(6))) { return id }
        let id = b.input(name, fx[name].shape)
        created[name] = id
        return id
    }
    let outs = build(b, get)
    for (name, v) in outs.sorted(by: { $0.key < $1.key }) { b.output(name, v) }
    var gradNames: [String] = []
    for entry in (fx.attrs["grads"] as? [[String: Any]]) ?? [] {
        guard let of = entry["of"] as? String, let y = outs[of], let wrt = entry["wrt"] as? [String: String] else { continue }
        var loss = y
        if let r = entry["cotangent"] as? String {
            loss = b.sum(b.mul(y, get(r)), axes: Array(0..<b.shape(y).count))
        }
        let keys = wrt.keys.sorted()
        let grads = try Autodiff.gradient(in: b, of: loss, wrt: keys.map(get))
        for (k, g) in zip(keys, grads) {
            b.output(wrt[k]!, g)
            gradNames.append(wrt[k]!)
        }
    }
    let graph = try b.finish()
    var feeds: [String: Tensor] = [:]
    for (name, _) in created { feeds[name] = fx[name] }
    var store = ParameterStore(initializing: graph)
    if parametersFromFixture {
        for id in graph.parameters {
            let n = graph[id].name
            guard let t = fx.file.tensors["param." + n] else { throw ExecutionError("fixture \(fx.name) has no param.\(n)") }
            store[n] = t
        }
    }
    let exe = try Compiler.compile(graph, for: Signature.of(graph), options: backend.options)
    let result = try exe.run(feeds, parameters: &store)
    var failures: [String] = []
    for (name, t) in result {
        let e = relativeErrors(t, fx[name])
        let tol = gradNames.contains(name) ? gradTolerance : tolerance
        if !(e.max <= tol) { failures.append("\(name): max \(e.max), l2 \(e.l2) (tolerance \(tol))") }
    }
    return (failures.sorted(), result.count)
}
