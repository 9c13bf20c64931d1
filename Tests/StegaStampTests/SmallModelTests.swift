import GraphIR
import GraphRuntime
import StegaStamp
import TestSupport
import XCTest

final class SmallModelTests: XCTestCase {
    /// A short version of the README's main job: the small model must learn to hide and read
    /// back 16 random bits through noise, measured on secrets and images it never trained on.
    func testSmallModelLearnsToHideBits() throws {
        var t = SmallModelTrainer()
        t.steps = 300
        t.evalEvery = 100
        t.log = { print($0) }
        var store = ParameterStore()
        let before: Float
        do {
            let g = try SmallModel.forward(t.config)
            var fresh = ParameterStore(initializing: g)
            before = try t.evaluate(try Compiler.compile(g, for: Signature.of(g)), &fresh).accuracy
        }
        let r = try t.train(&store)
        XCTAssertLessThan(before, 0.65, "an untrained decoder should be near chance")
        XCTAssertGreaterThanOrEqual(r.finalEvalBitAccuracy, 0.95)
        XCTAssertLessThan(r.meanResidual, 0.05, "the residual should stay small")
        XCTAssertEqual(r.history.map(\.step), [100, 200, 300])
    }

    func testTrainingStepIsReproducible() throws {
        var c = SmallModelConfig()
        c.batch = 2
        c.height = 16
        c.width = 16
        let g = try SmallModel.trainingStep(c)
        let exe = try Compiler.compile(g, for: Signature.of(g))
        let feeds: [String: Tensor] = [
            "secret": SyntheticImages.secrets(count: 2, bits: c.bits, seed: 1),
            "image": SyntheticImages.batch(count: 2, height: 16, width: 16, seed: 1),
            "seed": Tensor(3), "secret_scale": Tensor(1), "image_scale": Tensor(1),
            "learning_rate": Tensor(1e-3), "step": Tensor(1),
        ]
        var a = ParameterStore(initializing: g), b = ParameterStore(initializing: g)
        let oa = try exe.run(feeds, parameters: &a), ob = try exe.run(feeds, parameters: &b)
        XCTAssertEqual(oa["loss"], ob["loss"])
        XCTAssertEqual(a.values, b.values)
        var other = feeds
        other["seed"] = Tensor(4)  // another noise draw: another loss
        var c2 = ParameterStore(initializing: g)
        XCTAssertNotEqual(try exe.run(other, parameters: &c2)["loss"], oa["loss"])
    }

    func testCheckpointRoundTrip() throws {
        let g = try SmallModel.forward(SmallModelConfig())
        let store = ParameterStore(initializing: g)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try store.save(path: path)
        XCTAssertEqual(try ParameterStore.load(path: path).values, store.values)
    }

    func testInvalidConfigurationsAreErrors() {
        var c = SmallModelConfig()
        c.height = 20
        XCTAssertThrowsError(try SmallModel.forward(c)) { XCTAssertTrue("\($0)".contains("multiple of 8")) }
        c = SmallModelConfig()
        c.bits = 0
        XCTAssertThrowsError(try SmallModel.forward(c))
    }
}
