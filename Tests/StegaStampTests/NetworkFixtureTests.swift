import GraphAutodiff
import GraphIR
import GraphRuntime
import StegaStamp
import TestSupport
import XCTest

/// The StegaStamp networks against TensorFlow running the original architecture.
final class NetworkFixtureTests: XCTestCase {
    /// Parameters of the fixture become graph inputs named `param.<name>`: the builder creates
    /// parameters, so we rename them into inputs with a substitution pass over the built graph.
    func check(_ name: String, backends: [TestBackend], tolerance: Double, gradTolerance: Double, expectCompared: Int,
               file: StaticString = #filePath, line: UInt = #line,
               _ build: (GraphBuilder, (String) -> ValueID) -> [String: ValueID]) throws {
        let fx = try Fixture(name)
        for backend in backends {
            let (failures, compared) = try checkFixture(fx, backend: backend, tolerance: tolerance, gradTolerance: gradTolerance,
                                                        parametersFromFixture: true, build: build)
            XCTAssertEqual(failures, [], "\(name) (\(backend))", file: file, line: line)
            XCTAssertEqual(compared, expectCompared, "\(name) (\(backend)) tensors compared", file: file, line: line)
        }
    }

    func testEncoder400() throws {
        try check("stegastamp_encoder", backends: [.cpu, .cpuJIT], tolerance: 1e-4, gradTolerance: 0, expectCompared: 2) { b, t in
            let residual = StegaStampNetworks.encoder(b, secret: t("input.secret"), image: t("input.image"))
            return ["expected.residual": residual, "expected.conv5": b.graph.value(named: "conv5")!]
        }
    }

    func testDecoder() throws {
        try check("stegastamp_decoder", backends: TestBackend.allCases, tolerance: 1e-4, gradTolerance: 0, expectCompared: 3) { b, t in
            let d = StegaStampNetworks.decoder(b, image: t("input.image"), bits: 100)
            return ["expected.logits": d.logits, "expected.theta": d.theta, "expected.transformed_image": d.transformed]
        }
    }

    func testCritic() throws {
        try check("critic", backends: TestBackend.allCases, tolerance: 1e-4, gradTolerance: 1e-3, expectCompared: 2 + 12) { b, t in
            let c = StegaStampNetworks.critic(b, image: t("input.image"))
            return ["expected.output": c.output, "expected.heatmap": c.heatmap]
        }
    }

    func testParameterCountsOfThePaperConfiguration() throws {
        let b = GraphBuilder(name: "paper")
        let secret = b.input("secret", [1, 100]), image = b.input("image", [1, 400, 400, 3])
        _ = StegaStampNetworks.encoder(b, secret: secret, image: image, prefix: "encoder.")
        _ = StegaStampNetworks.decoder(b, image: image, bits: 100, prefix: "decoder.")
        _ = StegaStampNetworks.critic(b, image: image, prefix: "critic.")
        let g = try b.finish()
        func count(_ prefix: String, excluding: String? = nil) -> Int {
            g.parameters.filter { id in
                let n = g[id].name
                return n.hasPrefix(prefix) && !(excluding.map { n.hasPrefix($0) } ?? false)
            }.reduce(0) { $0 + Shape.count(g[$1].shape) }
        }
        // The fixture files hold the original's variables; our counts must equal theirs.
        let enc = try Fixture("stegastamp_encoder").file.tensors.filter { $0.key.hasPrefix("param.") }.values.reduce(0) { $0 + $1.count }
        XCTAssertEqual(count("encoder."), enc)
        XCTAssertEqual(count("encoder.", excluding: "encoder.conv10."), enc - (3 * 3 * 32 * 32 + 32))
        XCTAssertEqual(count("decoder.") > 0, true)
        XCTAssertEqual(count("critic."), 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 16 + 16 + 3 * 3 * 16 * 32 + 32 + 3 * 3 * 32 * 64 + 64 + 3 * 3 * 64 + 1)
    }
}

final class DiffJPEGTests: XCTestCase {
    func testTablesAreTheFixtures() throws {
        let fx = try Fixture("diff_jpeg")
        XCTAssertEqual(fx["param.q_y"].scalars, DiffJPEG.yTable)
        XCTAssertEqual(fx["param.q_c"].scalars, DiffJPEG.cTable)
    }

    func testAllCasesAndGradients() throws {
        let fx = try Fixture("diff_jpeg")
        let cases = fx.attrs["cases"] as! [String: [String: Any]]
        XCTAssertEqual(cases.count, 4)
        for backend in TestBackend.allCases {
            let (failures, compared) = try checkFixture(fx, backend: backend, tolerance: 1e-5, gradTolerance: 1e-4) { b, t in
                var outs: [String: ValueID] = [:]
                for (name, c) in cases {
                    let factor = DiffJPEG.qualityToFactor(b, b.constant(Float(c["quality"] as! Int)))
                    outs["expected.\(name)"] = DiffJPEG.compressDecompress(b, t(c["input"] as! String), factor: factor)
                }
                return outs
            }
            XCTAssertEqual(failures, [], "\(backend)")
            XCTAssertEqual(compared, 4 + 2)
        }
    }

    func testQualityToFactor() throws {
        let b = GraphBuilder(name: "q")
        let q = b.input("q", [4])
        b.output("f", DiffJPEG.qualityToFactor(b, q))
        let f = try evaluate(try b.finish(), ["q": Tensor(shape: [4], scalars: [25, 50, 90, 10])])["f"]!.scalars
        XCTAssertEqual(f, [2, 1, 0.2, 5])
    }
}
