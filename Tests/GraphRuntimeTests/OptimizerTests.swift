import GraphAutodiff
import GraphIR
import GraphRuntime
import TestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    /// loss = scale * sum((p - target)^2): gradient 2 * scale * (p - target).
    func quadratic(scaleAsInput: Bool, frozenScale: Float = 1) throws -> Graph {
        let b = GraphBuilder(name: "quadratic")
        let target = b.input("target", [3])
        let scale = scaleAsInput ? b.input("scale", []) : b.constant(frozenScale)
        let p = b.parameter("p", [3], .values([1, -2, 0.5]))
        let d = b.sub(p, target)
        b.output("loss", b.mul(scale, b.sum(b.square(d), axes: [0])))
        return try b.finish()
    }

    func testAdamMatchesTheTF1Formula() throws {
        let g = try Optimizers.trainingStep(try quadratic(scaleAsInput: true), loss: "loss", optimizer: .adam(AdamConfig()))
        XCTAssertEqual(Set(g.inputs.map { g[$0].name }), ["target", "scale", "learning_rate", "step"])
        let exe = try Compiler.compile(g, for: Signature.of(g))
        var store = ParameterStore(initializing: g)
        var p: [Double] = [1, -2, 0.5], m = [0.0, 0, 0], v = [0.0, 0, 0]
        let target: [Double] = [0.3, 0.1, -0.4]
        for step in 1...5 {
            let lr = 0.01 * Double(step)  // a changing learning rate, fed each step
            _ = try exe.run(["target": Tensor(shape: [3], scalars: target.map(Float.init)), "scale": Tensor(1.5),
                             "learning_rate": Tensor(Float(lr)), "step": Tensor(Float(step))], parameters: &store)
            let lrT = lr * (1 - pow(0.999, Double(step))).squareRoot() / (1 - pow(0.9, Double(step)))
            for i in 0..<3 {
                let grad = 2 * 1.5 * (p[i] - target[i])
                m[i] = 0.9 * m[i] + 0.1 * grad
                v[i] = 0.999 * v[i] + 0.001 * grad * grad
                p[i] -= lrT * m[i] / (v[i].squareRoot() + 1e-8)
            }
            for i in 0..<3 {
                XCTAssertEqual(Double(store["p"]!.scalars[i]), p[i], accuracy: 1e-5, "step \(step)")
                XCTAssertEqual(Double(store["adam.m.p"]!.scalars[i]), m[i], accuracy: 1e-5)
            }
        }
    }

    func testRMSPropClipsGradientsAndWeights() throws {
        let g = try Optimizers.trainingStep(try quadratic(scaleAsInput: true), loss: "loss",
                                            optimizer: .rmsprop(RMSPropConfig(gradientClip: 0.25, weightClip: 0.6)))
        let exe = try Compiler.compile(g, for: Signature.of(g))
        var store = ParameterStore(initializing: g)
        XCTAssertEqual(store["rmsprop.ms.p"]!.scalars, [1, 1, 1])  // TF1 initialises the mean square to 1
        _ = try exe.run(["target": Tensor(shape: [3], scalars: [0.3, 0.1, 0.45]), "scale": Tensor(1),
                         "learning_rate": Tensor(0.1)], parameters: &store)
        // p0: gradient 1.4 -> clipped 0.25; p1: -4.2 -> -0.25; p2: 0.1 (unclipped).
        for (i, (p0, g0)) in [(1.0, 0.25), (-2.0, -0.25), (0.5, 0.1)].enumerated() {
            let ms = 0.9 + 0.1 * g0 * g0
            let expected = min(max(p0 - 0.1 * g0 / (ms + 1e-10).squareRoot(), -0.6), 0.6)
            XCTAssertEqual(Double(store["p"]!.scalars[i]), expected, accuracy: 1e-6, "element \(i)")
            XCTAssertEqual(Double(store["rmsprop.ms.p"]!.scalars[i]), ms, accuracy: 1e-6)
        }
    }

    /// The bug that froze an earlier TensorFlow port: a graph that captured a loss scale as a
    /// constant kept training with the stale value. Here the scale is a graph input, and changing
    /// it between steps must change both the loss and the update. `respondsToScale` is the check;
    /// it is also run on a graph with the scale frozen into a constant, and must fail there.
    func respondsToScale(_ forward: Graph) throws -> Bool {
        let g = try Optimizers.trainingStep(forward, loss: "loss", optimizer: .adam(AdamConfig()))
        let exe = try Compiler.compile(g, for: Signature.of(g))
        let hasScale = g.inputs.contains { g[$0].name == "scale" }
        func step(_ scale: Float, _ store: inout ParameterStore) throws -> Float {
            var feeds: [String: Tensor] = ["target": Tensor(shape: [3], scalars: [0.3, 0.1, -0.4]),
                                           "learning_rate": Tensor(0.1), "step": Tensor(1)]
            if hasScale { feeds["scale"] = Tensor(scale) }
            return try exe.run(feeds, parameters: &store)["loss"]!.scalar
        }
        let initial = ParameterStore(initializing: g)
        var a = initial, b = initial
        let lossA = try step(1, &a), lossB = try step(4, &b)
        // Loss scales with the input; the Adam state (and the next update) sees a 4x gradient.
        let lossFollows = abs(lossB - 4 * lossA) < 1e-4 * abs(lossB)
        let stateFollows = a["adam.m.p"]! != b["adam.m.p"]!
        return lossFollows && stateFollows
    }

    func testChangingALossScaleInputChangesLossAndUpdate() throws {
        XCTAssertTrue(try respondsToScale(try quadratic(scaleAsInput: true)))
        XCTAssertFalse(try respondsToScale(try quadratic(scaleAsInput: false, frozenScale: 1)), "the check must catch a frozen scale")
    }

    func testTrainingStepTextRoundTrips() throws {
        let g = try Optimizers.trainingStep(try quadratic(scaleAsInput: true), loss: "loss", optimizer: .adam(AdamConfig()))
        let text = TextFormat.print(g)
        let back = try TextFormat.parse(text)
        XCTAssertEqual(TextFormat.print(back), text)
        XCTAssertEqual(back.updates.count, 3)  // p, adam.m.p, adam.v.p
    }
}
