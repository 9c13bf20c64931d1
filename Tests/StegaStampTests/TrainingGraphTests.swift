import GraphAutodiff
import GraphIR
import GraphPasses
import GraphRuntime
import StegaStamp
import TestSupport
import XCTest

final class TrainStepFixtureTests: XCTestCase {
    /// Encoder + decoder at the fixture's size, no transform net: the loss, its parts, the
    /// residual, the logits, and d loss / d parameter for all 60 parameters (conv10: zero).
    func testTrainStepLossAndEveryParameterGradient() throws {
        let fx = try Fixture("train_step")
        let gain = Float(fx.attrs["l2_edge_gain"] as! Double)
        let scales = fx.attrs["loss_scales"] as! [String: Double]
        let yuv = (fx.attrs["yuv_scales"] as! [Double]).map(Float.init)
        for backend in TestBackend.allCases {
            let (failures, compared) = try checkFixture(fx, backend: backend, tolerance: 1e-4, gradTolerance: 1e-3,
                                                        parametersFromFixture: true) { b, t in
                let secret = t("input.secret"), image = t("input.image")
                let residual = StegaStampNetworks.encoder(b, secret: secret, image: image, prefix: "encoder.")
                let encoded = b.add(image, residual)
                let logits = StegaStampNetworks.decoder(b, image: encoded, bits: b.shape(secret)[1], prefix: "decoder.").logits
                let secretLoss = ImageOps.secretLoss(b, logits: logits, labels: secret)
                let (imageLoss, yuvLoss) = Losses.imageLoss(b, encoded: encoded, image: image, falloff: t("input.falloff"),
                                                            gain: b.constant(gain), yuvScales: yuv)
                let loss = b.add(b.mul(imageLoss, Float(scales["image"]!)), b.mul(secretLoss, Float(scales["secret"]!)))
                return ["expected.loss": loss, "expected.secret_loss": secretLoss, "expected.image_loss": imageLoss,
                        "expected.yuv_loss": yuvLoss, "expected.residual": residual, "expected.logits": logits]
            }
            XCTAssertEqual(failures, [], "\(backend)")
            XCTAssertEqual(compared, 6 + 60, "\(backend)")
        }
    }
}

final class TransformNetTests: XCTestCase {
    func transformGraph(blur: Bool = true, jpeg: Bool = true) throws -> Graph {
        var c = StegaStampConfig()
        (c.height, c.width, c.batch) = (32, 32, 2)
        c.transform.blur = blur
        c.transform.jpeg = jpeg
        return try StegaStampGraphs.transform(c)
    }

    func image() -> Tensor { SyntheticImages.batch(count: 2, height: 32, width: 32, seed: 3) }

    func testStepZeroWithoutBlurIsNearlyTheIdentity() throws {
        // At step 0 every ramp is 0: no noise, contrast 1, no brightness/hue/saturation change.
        let out = try evaluate(try transformGraph(blur: false, jpeg: false), ["image": image(), "seed": Tensor(7), "step": Tensor(0)])
        XCTAssertLessThan(relativeErrors(out["transformed"]!, image()).max, 1e-6)
        // JPEG at quality 100 (factor 0.0001) quantises nothing, but 4:2:0 still averages chroma.
        let jpeg = try evaluate(try transformGraph(blur: false), ["image": image(), "seed": Tensor(7), "step": Tensor(0)])["transformed"]!
        let e = relativeErrors(jpeg, image())
        XCTAssertLessThan(e.l2, 0.1)
        XCTAssertGreaterThan(e.l2, 1e-4)
    }

    func testSeedAndStepDriveTheDamage() throws {
        let g = try transformGraph()
        let late = try evaluate(g, ["image": image(), "seed": Tensor(7), "step": Tensor(5000)])["transformed"]!
        let again = try evaluate(g, ["image": image(), "seed": Tensor(7), "step": Tensor(5000)])["transformed"]!
        let other = try evaluate(g, ["image": image(), "seed": Tensor(8), "step": Tensor(5000)])["transformed"]!
        XCTAssertEqual(late, again)
        XCTAssertNotEqual(late, other)
        XCTAssertGreaterThan(relativeErrors(late, image()).max, 0.05)
        XCTAssertTrue(late.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    func testGradientFlowsThroughEveryStage() throws {
        var g = try transformGraph()
        let b = GraphBuilder(extending: g)
        let out = g.output(named: "transformed")!
        let loss = b.mean(b.square(out))
        let grads = try Autodiff.gradient(in: b, of: loss, wrt: [g.inputs.first { g[$0].name == "image" }!])
        b.output("dimage", grads[0])
        g = try b.finish()
        let d = try evaluate(g, ["image": image(), "seed": Tensor(7), "step": Tensor(5000)])["dimage"]!
        XCTAssertGreaterThan(d.scalars.filter { $0 != 0 }.count, d.count / 2)
        XCTAssertTrue(d.scalars.allSatisfy(\.isFinite))
    }

    func testBlurBranchProbabilities() throws {
        let b = GraphBuilder(name: "blur")
        let seed = b.input("seed", [])
        b.output("f", TransformNet.randomBlurKernel(b, seed: seed))
        let g = try b.finish()
        var delta = 0
        for s in 0..<200 {
            let f = try evaluate(g, ["seed": Tensor(Float(s))])["f"]!
            if f.scalars[(3 * 7 + 3) * 9] == 1 { delta += 1 }  // centre tap of channel 0 is 1: "nothing"
        }
        XCTAssertEqual(Double(delta) / 200, 0.5, accuracy: 0.1)
    }

    func testPerspectiveMatricesMapCornersAndPairWithTheInverse() throws {
        let m = PerspectiveMatrices.random(size: 64, displacement: 6, batch: 3, seed: 5)
        XCTAssertEqual(m.shape, [3, 2, 8])
        for i in 0..<3 {
            let fwd = Array(m.scalars[(i * 16 + 8)..<(i * 16 + 16)]).map(Double.init) + [1]
            let inv = Array(m.scalars[(i * 16)..<(i * 16 + 8)]).map(Double.init)
            // inv(M) * M has a (renormalised) identity in its top-left: check two entries.
            let p00 = inv[0] * fwd[0] + inv[1] * fwd[3] + inv[2] * fwd[6]
            let p01 = inv[0] * fwd[1] + inv[1] * fwd[4] + inv[2] * fwd[7]
            XCTAssertGreaterThan(p00, 0.9)
            XCTAssertEqual(p01 / p00, 0, accuracy: 1e-4)
        }
        // Each moved corner maps back to its image corner.
        let h = PerspectiveMatrices.homography(from: [(1, 2), (60, -3), (66, 61), (-2, 70)], to: [(0, 0), (64, 0), (64, 64), (0, 64)])
        let (x, y) = (66.0, 61.0)
        let k = h[6] * x + h[7] * y + 1
        XCTAssertEqual((h[0] * x + h[1] * y + h[2]) / k, 64, accuracy: 1e-9)
        XCTAssertEqual((h[3] * x + h[4] * y + h[5]) / k, 64, accuracy: 1e-9)
    }
}

final class TrainingGraphTests: XCTestCase {
    func smallConfig(_ borders: BorderMode = .white) -> StegaStampConfig {
        var c = StegaStampConfig()
        (c.height, c.width, c.bits, c.batch, c.borders) = (32, 32, 20, 2, borders)
        return c
    }

    func feeds(_ c: StegaStampConfig, step: Float = 100) -> [String: Tensor] {
        [
            "secret": SyntheticImages.secrets(count: c.batch, bits: c.bits, seed: 1),
            "image": SyntheticImages.batch(count: c.batch, height: c.height, width: c.width, seed: 1),
            "M": PerspectiveMatrices.random(size: c.height, displacement: 3, batch: c.batch, seed: 2),
            "seed": Tensor(3), "step": Tensor(step), "augmentation_step": Tensor(step), "l2_loss_scale": Tensor(2), "perceptual_loss_scale": Tensor(1.5),
            "secret_loss_scale": Tensor(1.5), "G_loss_scale": Tensor(0.5), "l2_edge_gain": Tensor(0), "learning_rate": Tensor(1e-4),
        ]
    }

    func testGeneratorStepRunsForEveryBorderMode() throws {
        for mode in BorderMode.allCases {
            let c = smallConfig(mode)
            let g = try StegaStampGraphs.generatorStep(c)
            let exe = try Compiler.compile(g, for: Signature.of(g))
            var store = ParameterStore(initializing: g)
            let before = store["encoder.conv1.kernel"]!
            let out = try exe.run(feeds(c), parameters: &store)
            XCTAssertTrue(out["loss"]!.scalar.isFinite, "\(mode)")
            XCTAssertNotEqual(store["encoder.conv1.kernel"], before, "\(mode): encoder not updated")
            XCTAssertEqual(store["decoder.W_fc1"], Initializer.zeros.materialize(shape: [128, 6]), "\(mode): the STN must not train by default")
            XCTAssertNil(store["adam.m.encoder.conv10.kernel"], "\(mode): the dead conv10 is not trained")
        }
    }

    func testGeneratorStepWithLPIPS() throws {
        var c = smallConfig()
        c.perceptual = .lpips
        let g = try StegaStampGraphs.generatorStep(c)
        XCTAssertNotNil(g.value(named: "lpips.conv1.kernel"))
        XCTAssertFalse(g.updates.contains { g[$0.parameter].name.hasPrefix("lpips.") }, "LPIPS weights are frozen")
        var store = ParameterStore(initializing: g)
        let out = try Compiler.compile(g, for: Signature.of(g)).run(feeds(c), parameters: &store)
        XCTAssertTrue(out["perceptual_loss"]!.scalar.isFinite)
    }

    func testCriticStepClipsWeights() throws {
        let c = smallConfig()
        let g = try StegaStampGraphs.criticStep(c)
        let exe = try Compiler.compile(g, for: Signature.of(g))
        var store = ParameterStore(initializing: g)
        var f = feeds(c)
        for k in ["l2_loss_scale", "perceptual_loss_scale", "secret_loss_scale", "G_loss_scale", "l2_edge_gain", "step", "augmentation_step"] where g.value(named: k) == nil {
            f.removeValue(forKey: k)
        }
        f = f.filter { k, _ in g.inputs.contains { g[$0].name == k } }
        _ = try exe.run(f, parameters: &store)
        for (k, v) in store.values where k.hasPrefix("critic.") {
            XCTAssertTrue(v.scalars.allSatisfy { abs($0) <= 0.01 }, k)
        }
    }

    func testDeadCodeEliminationRemovesTheUnusedConv10() throws {
        var c = smallConfig()
        c.batch = 1
        let g = try StegaStampGraphs.encoder(c)
        XCTAssertNotNil(g.value(named: "conv10.kernel"))
        let pruned = try Passes.deadCodeElimination(g)
        XCTAssertNil(pruned.value(named: "conv10.kernel"))
        XCTAssertNil(pruned.value(named: "conv9_unused"))
        XCTAssertLessThan(pruned.values.count, g.values.count)
        let feeds: [String: Tensor] = ["secret": SyntheticImages.secrets(count: 1, bits: 20, seed: 1),
                                       "image": SyntheticImages.batch(count: 1, height: 32, width: 32, seed: 1)]
        let a = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(optimize: false)).run(feeds)
        let b = try Compiler.compile(g, for: Signature.of(g)).run(feeds)
        // Fusion sums a merge's parts in turn and an up-convolution's taps by phase: equal up to rounding.
        XCTAssertLessThan(relativeErrors(b["residual"]!, a["residual"]!).max, 1e-5)
    }

    func testOtherSizesVerifyAndRun() throws {
        for size in [96, 128] {
            var c = StegaStampConfig()
            (c.height, c.width, c.batch) = (size, size, 1)
            let enc = try StegaStampGraphs.encoder(c)
            let out = try Compiler.compile(enc, for: Signature.of(enc)).run([
                "secret": SyntheticImages.secrets(count: 1, bits: 100, seed: 1),
                "image": SyntheticImages.batch(count: 1, height: size, width: size, seed: 1)])
            XCTAssertEqual(out["residual"]!.shape, [1, size, size, 3])
            let dec = try StegaStampGraphs.decoder(c)
            XCTAssertEqual(try Compiler.compile(dec, for: Signature.of(dec)).run(["image": out["residual"]!])["logits"]!.shape, [1, 100])
        }
        var bad = StegaStampConfig()
        bad.height = 100
        XCTAssertThrowsError(try StegaStampGraphs.encoder(bad)) { XCTAssertTrue("\($0)".contains("multiples of 16")) }
    }
    /// --rnd-zoom: zoom 0 leaves the draws exactly as they were; with no displacement, each
    /// example's warp is a pure scaling about the centre by at most the bound, not the same for all.
    func testZoomDrawsScaleAboutTheCentreAndZeroChangesNothing() {
        XCTAssertEqual(PerspectiveMatrices.random(size: 64, displacement: 6, zoom: 0, batch: 4, seed: 9),
                       PerspectiveMatrices.random(size: 64, displacement: 6, batch: 4, seed: 9))
        XCTAssertNotEqual(PerspectiveMatrices.random(size: 64, displacement: 6, zoom: 0.1, batch: 4, seed: 9),
                          PerspectiveMatrices.random(size: 64, displacement: 6, batch: 4, seed: 9))
        let m = PerspectiveMatrices.random(size: 64, displacement: 0, zoom: 0.1, batch: 8, seed: 3)
        var scales: [Double] = []
        for i in 0..<8 {
            let h = Array(m.scalars[(i * 16 + 8)..<(i * 16 + 16)]).map(Double.init)
            XCTAssertEqual(h[1], 0, accuracy: 1e-5); XCTAssertEqual(h[3], 0, accuracy: 1e-5)
            XCTAssertEqual(h[6], 0, accuracy: 1e-6); XCTAssertEqual(h[7], 0, accuracy: 1e-6)
            XCTAssertEqual(h[0], h[4], accuracy: 1e-5)
            // The centre stays put.
            XCTAssertEqual(h[0] * 32 + h[2], 32, accuracy: 1e-3)
            XCTAssertLessThanOrEqual(abs(1 / h[0] - 1), 0.1 + 1e-5)
            scales.append(h[0])
        }
        XCTAssertGreaterThan(scales.max()! - scales.min()!, 0.02, "every example drew the same zoom")
    }
}
