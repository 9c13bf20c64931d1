import GraphAutodiff
import GraphIR
import GraphRuntime
import StegaStamp
import TestSupport
import XCTest

/// LPIPS against an independent numpy implementation (scripts/oracles/lpips_reference.py) with
/// random weights stored in PyTorch layout under the lpips package's names.
final class LPIPSTests: XCTestCase {
    func graph(_ shape: [Int]) throws -> (Graph, ValueID) {
        let b = GraphBuilder(name: "lpips")
        let x = b.input("x", shape), y = b.input("y", shape)
        let d = LPIPS.distance(b, x, y)
        b.output("distance", d)
        return (try b.finish(), x)
    }

    func testMatchesTheNumpyOracle() throws {
        let fx = try Fixture("lpips_random")
        let weights = try LPIPS.loadWeights(path: repositoryRoot.appendingPathComponent("Tests/Fixtures/lpips_random.safetensors").path)
        XCTAssertEqual(weights.count, 15)
        let (g, _) = try graph(fx["input.x"].shape)
        for backend in TestBackend.allCases {
            var store = ParameterStore(weights)
            let exe = try Compiler.compile(g, for: Signature.of(g), options: backend.options)
            let out = try exe.run(["x": fx["input.x"], "y": fx["input.y"]], parameters: &store)
            XCTAssertLessThan(relativeErrors(out["distance"]!, fx["expected.distance"]).max, 1e-4, "\(backend)")
            let same = try exe.run(["x": fx["input.x"], "y": fx["input.x"]], parameters: &store)
            XCTAssertEqual(same["distance"]!.scalars, [0, 0])
        }
    }

    func testGradientIsFinite() throws {
        let fx = try Fixture("lpips_random")
        var (g, x) = try graph(fx["input.x"].shape)
        let b = GraphBuilder(extending: g)
        let loss = b.mean(g.output(named: "distance")!)
        b.output("dx", try Autodiff.gradient(in: b, of: loss, wrt: [x])[0])
        g = try b.finish()
        var store = ParameterStore(try LPIPS.loadWeights(path: repositoryRoot.appendingPathComponent("Tests/Fixtures/lpips_random.safetensors").path))
        let out = try Compiler.compile(g, for: Signature.of(g)).run(["x": fx["input.x"], "y": fx["input.y"]], parameters: &store)
        XCTAssertTrue(out["dx"]!.scalars.allSatisfy(\.isFinite))
        XCTAssertGreaterThan(out["dx"]!.scalars.map(abs).max()!, 0)
    }

    func testMissingOrMisshapenWeightsAreClearErrors() throws {
        let dir = FileManager.default.temporaryDirectory
        let path = dir.appendingPathComponent("lpips-bad-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafetensorsFile(tensors: ["features.0.weight": Tensor.zeros([64, 3, 5, 5]), "features.0.bias": Tensor.zeros([64])]).write(path: path)
        XCTAssertThrowsError(try LPIPS.loadWeights(path: path)) { XCTAssertTrue("\($0)".contains("expected weight [64,3,11,11]"), "\($0)") }
        try SafetensorsFile(tensors: [:]).write(path: path)
        XCTAssertThrowsError(try LPIPS.loadWeights(path: path)) { XCTAssertTrue("\($0)".contains("no weights for AlexNet conv 1"), "\($0)") }
    }
}
