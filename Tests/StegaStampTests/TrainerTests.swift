import Foundation
import GraphIR
import GraphRuntime
@testable import StegaStamp
import XCTest

/// The trainer: it learns, resumes bitwise, survives SIGKILL, follows train.py's formulas,
/// raises the alarm on a model that cannot learn, and rejects broken checkpoints clearly.
final class TrainerTests: XCTestCase {
    var tmp: URL { FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(getpid())") }

    override func setUpWithError() throws { try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true) }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// Textured synthetic photos written as PNG, read back through the streaming loader.
    func photos() throws -> (train: [String], eval: [String]) {
        let files = try SyntheticImages.writePhotos(directory: tmp.appendingPathComponent("photos").path, count: 12, width: 96, height: 72)
        return (Array(files.prefix(10)), Array(files.suffix(2)))
    }

    func trainer(_ c: TrainingConfig, run: String) throws -> Trainer {
        let p = try photos()
        let t = try Trainer(config: c, runDirectory: tmp.appendingPathComponent(run).path, trainFiles: p.train, evalFiles: p.eval)
        t.log = { print($0) }
        t.alarmLog = { print($0) }
        t.stopRequested = { false }
        return t
    }

    static func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    /// The tiny preset of the real networks learns on held-out photos within 400 steps, stays quiet,
    /// and leaves every artefact a user watches (metrics, TensorBoard events, plots, samples).
    func testTinyPresetLearnsAndWritesWhatAUserWatches() throws {
        let c = try TrainingConfig.preset("tiny")
        let t = try trainer(c, run: "tiny")
        let s = try t.run(resume: false)
        XCTAssertEqual(s.lastStep, 400)
        let e = try XCTUnwrap(s.lastEvaluation)
        print("tiny preset: held-out bit accuracy \(e.bitAccuracy), PSNR \(e.psnr), JPEG q50 \(e.jpegBitAccuracy)")
        XCTAssertGreaterThanOrEqual(e.bitAccuracy, 0.7, "the tiny preset must learn")
        XCTAssertTrue(s.alarms.isEmpty, "no alarm on a model that learns: \(s.alarms)")

        let run = t.runDirectory
        let metrics = try Self.lines(run + "/metrics.jsonl")
        XCTAssertEqual(metrics.map { $0["step"] as! Int }, Array(stride(from: 10, through: 400, by: 10)))
        for key in ["step", "loss", "secret_loss", "image_loss", "perceptual_loss", "g_loss", "d_loss", "bit_accuracy",
                    "string_accuracy", "psnr", "steps_per_s"] {
            XCTAssertNotNil(metrics.last![key], "metrics.jsonl lacks \(key)")
        }
        XCTAssertEqual(try Self.lines(run + "/eval.jsonl").map { $0["step"] as! Int }, [100, 200, 300, 400])
        let config = try TrainingConfig.fromJSON(try Data(contentsOf: URL(fileURLWithPath: run + "/config.json")), path: "config.json")
        XCTAssertEqual(config, c)
        for png in ["curves.png", "samples.png", "samples/step-0000400.png"] {
            let img = try ImageIO.read(path: run + "/" + png)
            XCTAssertGreaterThan(img.width, 100, png)
        }
        // The event file: every record's CRCs check, the scalars and the sample image are there.
        let events = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(events.count, 1)
        let records = try TensorBoardWriter.records(path: run + "/" + events[0])
        XCTAssertGreaterThan(records.count, 40)
        let text = records.map { String(decoding: $0, as: UTF8.self) }.joined()
        for tag in ["brain.Event:2", "train/secret_loss", "train/bit_accuracy", "eval/bit_accuracy", "schedule/l2_loss_scale",
                    "samples/cover_encoded_residual_transformed"] {
            XCTAssertTrue(text.contains(tag), "no \(tag) in the event file")
        }
    }

    func shortConfig(steps: Int) throws -> TrainingConfig {
        var c = try TrainingConfig.preset("tiny")
        (c.steps, c.noImageLossSteps, c.logEvery, c.evalEvery, c.checkpointEvery, c.evalImages) = (steps, 6, 2, 10, 5, 8)
        return c
    }

    /// N steps straight and N/2 + resume + N/2 give bitwise-identical parameters and optimizer
    /// slots, and the same metrics.jsonl apart from the timing fields; the critic runs too.
    func testResumeIsBitwiseExact() throws {
        let straight = try trainer(try shortConfig(steps: 20), run: "straight")
        _ = try straight.run(resume: false)
        let half = try trainer(try shortConfig(steps: 10), run: "resumed")
        _ = try half.run(resume: false)
        func untimed(_ path: String) throws -> [NSDictionary] {
            try Self.lines(path).map { var d = $0; d["steps_per_s"] = nil; d["host_share"] = nil; return d as NSDictionary }
        }
        // Two processes' worth of the same seed: the same metrics, line for line (timing aside).
        let firstHalf = try untimed(straight.runDirectory + "/metrics.jsonl").filter { ($0["step"] as! Int) <= 10 }
        XCTAssertEqual(try untimed(half.runDirectory + "/metrics.jsonl"), firstHalf)
        let rest = try trainer(try shortConfig(steps: 20), run: "resumed")
        let s = try rest.run(resume: true)
        XCTAssertEqual(s.firstStep, 10)
        let a = try RunCheckpoint.read(path: straight.checkpointPath), b = try RunCheckpoint.read(path: rest.checkpointPath)
        XCTAssertEqual(a.step, 20)
        XCTAssertEqual(b.step, 20)
        XCTAssertEqual(Set(a.parameters.values.keys), Set(b.parameters.values.keys))
        XCTAssertTrue(a.parameters.values.keys.contains { $0.hasPrefix("rmsprop.") }, "the critic's slots are checkpointed")
        for (k, v) in a.parameters.values { XCTAssertEqual(v.scalars, b.parameters[k]!.scalars, "\(k) differs after resume") }
        XCTAssertEqual(try untimed(straight.runDirectory + "/metrics.jsonl"), try untimed(rest.runDirectory + "/metrics.jsonl"))
        XCTAssertEqual(try untimed(straight.runDirectory + "/eval.jsonl"), try untimed(rest.runDirectory + "/eval.jsonl"))
        // The resumed run's event file starts with SessionLog START at step 11 (TensorBoard then
        // drops what an interrupted run logged past its checkpoint): Event.step = 11, session_log = { status: START }.
        let events = try FileManager.default.contentsOfDirectory(atPath: rest.runDirectory).filter { $0.hasPrefix("events.out.tfevents.") }.sorted()
        XCTAssertEqual(events.count, 2)
        let records = try events.map { try TensorBoardWriter.records(path: rest.runDirectory + "/" + $0) }
        func startsSession(_ r: [UInt8]) -> Bool { r.count == 15 && Array(r[9...]) == [0x10, 11, 0x3A, 0x02, 0x08, 0x01] }
        XCTAssertFalse(records[0].contains(where: startsSession))
        XCTAssertTrue(records.contains { $0.count > 1 && startsSession($0[1]) }, "no SessionLog START in the resumed run's events")
    }

    /// A model that cannot learn (learning rate 0) raises the alarm; the message says what to try.
    func testAlarmFiresOnAModelThatCannotLearn() throws {
        var c = try TrainingConfig.preset("tiny")
        (c.learningRate, c.steps, c.alarmSteps, c.evalEvery, c.logEvery) = (0, 90, 30, 1000, 10)
        let t = try trainer(c, run: "frozen")
        var said: [String] = []
        let box = NSLock()
        nonisolated(unsafe) var sink = said
        t.alarmLog = { m in box.lock(); sink.append(m); box.unlock() }
        let s = try t.run(resume: false)
        said = sink
        XCTAssertFalse(s.alarms.isEmpty, "learning rate 0 must raise the alarm")
        XCTAssertTrue(s.alarms.allSatisfy { $0.step > 30 }, "never during the warm-up")
        XCTAssertTrue(said.first?.contains("--seed") ?? false)
        XCTAssertTrue(FileManager.default.fileExists(atPath: t.runDirectory + "/ALARM.txt"))
        let alarmsInLog = try Self.lines(t.runDirectory + "/metrics.jsonl").compactMap { $0["alarms"] as? [String] }.flatMap { $0 }
        XCTAssertFalse(alarmsInLog.isEmpty)
    }

    func testAlarmLogic() {
        var a = TrainingAlarm(window: 10)
        var fired: [TrainingAlarm.Kind] = []
        for step in 1...40 { fired += a.observe(step: step, secretLoss: 0.6932, bitAccuracy: 0.5, probabilityStd: 0.2) }
        XCTAssertEqual(fired, [.secretLossAtChance, .accuracyAtChance], "reported once each")
        var quiet = TrainingAlarm(window: 10)
        for step in 1...40 {
            XCTAssertTrue(quiet.observe(step: step, secretLoss: 0.3, bitAccuracy: 0.9, probabilityStd: 0.3).isEmpty)
        }
        var collapsed = TrainingAlarm(window: 10)
        var c: [TrainingAlarm.Kind] = []
        for step in 1...30 { c += collapsed.observe(step: step, secretLoss: 0.9, bitAccuracy: 0.8, probabilityStd: 0.001) }
        XCTAssertEqual(c, [.collapsed])
    }

    /// The schedules equal train.py's formulas at sample steps (paper preset = scripts/base.sh).
    func testScheduleEqualsTrainPyFormulas() throws {
        let s = Schedule(try TrainingConfig.preset("paper"))
        let v0 = s.values(at: 0)
        XCTAssertTrue(v0.secretOnly)
        XCTAssertEqual([v0.l2LossScale, v0.perceptualLossScale, v0.gLossScale, v0.l2EdgeGain, v0.secretLossScale], [0, 0, 0, 0, 1])
        XCTAssertTrue(s.values(at: 1499).secretOnly)
        let v = s.values(at: 1500)
        XCTAssertFalse(v.secretOnly)
        // min(scale * step / ramp, scale)
        XCTAssertEqual(v.l2LossScale, min(2 * 1500 / 15000, 2), accuracy: 1e-7)
        XCTAssertEqual(v.perceptualLossScale, min(1.5 * 1500 / 15000, 1.5), accuracy: 1e-7)
        XCTAssertEqual(v.secretLossScale, 1.5)
        XCTAssertEqual(v.gLossScale, min(0.5 * 1500 / 15000, 0.5), accuracy: 1e-7)
        XCTAssertEqual(v.rndTransBound, min(0.1 * 1500 / 10000, 0.1), accuracy: 1e-7)
        XCTAssertEqual(v.l2EdgeGain, 0)
        XCTAssertEqual(v.learningRate, 1e-4)
        XCTAssertEqual(v.augmentationStep, 1500)
        XCTAssertEqual(s.values(at: 20000).l2LossScale, 2)
        XCTAssertEqual(s.values(at: 20000).rndTransBound, 0.1, accuracy: 1e-7)
        XCTAssertEqual(s.values(at: 80000).l2EdgeGain, 0, "the edge gain starts after l2_edge_delay")
        XCTAssertEqual(s.values(at: 85000).l2EdgeGain, min(10 * 5000 / 10000, 10), accuracy: 1e-6)
        XCTAssertEqual(s.values(at: 139_999).l2EdgeGain, 10)
        // Learning-rate decay and the curriculum.
        var c = try TrainingConfig.preset("cpu")
        (c.steps, c.finalLearningRateFraction, c.learningRateDecayStart) = (1001, 0.1, 1)
        XCTAssertEqual(Schedule(c).values(at: 1000).learningRate, 1e-5, accuracy: 1e-10)
        XCTAssertEqual(Schedule(c).values(at: 0).learningRate, 1e-4)
        c = try TrainingConfig.preset("cpu")
        (c.steps, c.curriculum) = (1000, true)
        let cur = Schedule(c)
        XCTAssertEqual(cur.values(at: 0).randomBitShare, 0.2)
        XCTAssertEqual(cur.values(at: 100).randomBitShare, 0.4)
        XCTAssertEqual(cur.values(at: 290).randomBitShare, 0.9)
        XCTAssertEqual(cur.values(at: 700).randomBitShare, 1)
        XCTAssertEqual(cur.values(at: 700).learningRate, 0.5e-4, accuracy: 1e-10)
        XCTAssertEqual(cur.values(at: 100).augmentationStep, 50)
    }

    /// Per-step draws depend on (seed, step, example) only: a slice of a batch is the same examples.
    func testDrawsAreAFunctionOfSeedStepAndExample() throws {
        let full = StepRandom.secrets(seed: 3, step: 7, bits: 100, count: 8)
        let slice = StepRandom.secrets(seed: 3, step: 7, bits: 100, offset: 4, count: 4)
        XCTAssertEqual(Array(full.scalars[400...]), slice.scalars)
        XCTAssertNotEqual(StepRandom.secrets(seed: 3, step: 8, bits: 100, count: 8), full)
        let p = try photos()
        let a = try PhotoStream(files: p.train, size: 32, seed: 1, cropScaleMin: 0.35, textureThreshold: 0.01, log: { _ in })
        let b = try PhotoStream(files: p.train, size: 32, seed: 1, cropScaleMin: 0.35, textureThreshold: 0.01, cacheBytes: 1, log: { _ in })
        let batch = try a.batch(step: 5, count: 4)
        XCTAssertEqual(batch, try b.batch(step: 5, count: 4), "the cache changes nothing")
        XCTAssertEqual(Array(batch.scalars[(2 * 32 * 32 * 3)...]), try b.batch(step: 5, offset: 2, count: 2).scalars)
        XCTAssertNotEqual(batch, try a.batch(step: 6, count: 4))
        a.drain(); b.drain()
    }

    func testUnreadablePhotosAreSkippedAndCounted() throws {
        let p = try photos()
        let bad = tmp.appendingPathComponent("photos/broken.png").path
        try Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        var warnings: [String] = []
        let lock = NSLock()
        nonisolated(unsafe) var sink = warnings
        let s = try PhotoStream(files: [bad] + p.train, size: 32, seed: 1, cropScaleMin: 0.35, textureThreshold: 0.01,
                                log: { m in lock.lock(); sink.append(m); lock.unlock() })
        for step in 0..<6 { _ = try s.batch(step: step, count: 8) }
        s.drain()
        warnings = sink
        XCTAssertEqual(s.unreadableCount, 1)
        XCTAssertEqual(warnings.count, 1, "warned once")
        XCTAssertTrue(warnings[0].contains("broken.png"))
        let only = try PhotoStream(files: [bad], size: 32, seed: 1, cropScaleMin: 0.35, textureThreshold: 0.01, log: { _ in })
        XCTAssertThrowsError(try only.batch(step: 0, count: 1)) { XCTAssertTrue("\($0)".contains("could be decoded"), "\($0)") }
    }

    /// A corrupt, truncated or mismatched checkpoint is a clear error naming the file: never a
    /// crash, never a silent restart.
    func testBrokenOrMismatchedCheckpointsAreClearErrors() throws {
        let t = try trainer(try shortConfig(steps: 5), run: "broken")
        _ = try t.run(resume: false)
        let path = t.checkpointPath
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        // Starting again over an existing run is refused.
        XCTAssertThrowsError(try trainer(try shortConfig(steps: 10), run: "broken").run(resume: false)) {
            XCTAssertTrue("\($0)".contains("--resume"), "\($0)")
        }
        // Other bits / size / preset.
        var other = try shortConfig(steps: 10)
        other.bits = 20
        XCTAssertThrowsError(try trainer(other, run: "broken").run(resume: true)) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("bits 16"), "\($0)")
        }
        other = try shortConfig(steps: 10)
        other.size = 48
        XCTAssertThrowsError(try trainer(other, run: "broken").run(resume: true)) { XCTAssertTrue("\($0)".contains("size 32"), "\($0)") }
        // Truncated, and garbage.
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try trainer(try shortConfig(steps: 10), run: "broken").run(resume: true)) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("truncated"), "\($0)")
        }
        try Data(repeating: 0x41, count: 100).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try trainer(try shortConfig(steps: 10), run: "broken").run(resume: true)) {
            XCTAssertTrue("\($0)".contains(path), "\($0)")
        }
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try trainer(try shortConfig(steps: 10), run: "broken").run(resume: true)) {
            XCTAssertTrue("\($0)".contains("no checkpoint"), "\($0)")
        }
        // The file was never replaced by a fresh initialisation.
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    /// A 5-step run of `shortConfig` exported as a model file (what --init-from starts from).
    func exportedBaseModel() throws -> String {
        let base = try trainer(try shortConfig(steps: 5), run: "base")
        _ = try base.run(resume: false)
        let model = tmp.appendingPathComponent("base.safetensors").path
        try WatermarkModel.export(checkpoint: base.checkpointPath, to: model, strength: 1)
        return model
    }

    /// --init-from: a new run starts from an exported model's encoder and decoder (float16 as
    /// stored), initialises the rest, and a model of other bits is refused by name.
    func testFineTuningStartsFromAModelFile() throws {
        let model = try exportedBaseModel()
        var c = try shortConfig(steps: 1)
        (c.initFrom, c.learningRate, c.criticLearningRate, c.noImageLossSteps) = (model, 0, 0, 0)
        let tuned = try trainer(c, run: "tuned")
        _ = try tuned.run(resume: false)
        let exported = try ParameterStore.load(path: model)
        let after = try RunCheckpoint.read(path: tuned.checkpointPath).parameters
        var compared = 0
        for (name, t) in exported.values {
            XCTAssertEqual(after[name]?.scalars, t.scalars, "\(name) is not the model's")
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10)
        XCTAssertTrue(after.values.keys.contains { exported[$0] == nil }, "the critic and the optimizer slots are initialised")
        XCTAssertEqual(try RunCheckpoint.read(path: tuned.checkpointPath).config.initFrom, model)

        var other = c
        other.bits = 20
        XCTAssertThrowsError(try trainer(other, run: "other").run(resume: false)) {
            XCTAssertTrue("\($0)".contains("--init-from \(model)"), "\($0)")
        }
        other = c
        other.initFrom = tmp.appendingPathComponent("missing.safetensors").path
        XCTAssertThrowsError(try trainer(other, run: "missing").run(resume: false)) {
            XCTAssertTrue("\($0)".contains("--init-from") && "\($0)".contains("missing.safetensors"), "\($0)")
        }
    }

    /// --freeze-encoder with --residual-scale: the decoder learns on the fixed encoder's faint
    /// residuals; every encoder weight stays the model's, and the held-out PSNR is the scaled one.
    func testFrozenEncoderTrainsTheDecoderOnFaintResiduals() throws {
        let model = try exportedBaseModel()
        var c = try shortConfig(steps: 3)
        (c.initFrom, c.noImageLossSteps, c.freezeEncoder, c.gan) = (model, 0, true, false)
        let full = try trainer(c, run: "full")
        let fullSummary = try full.run(resume: false)
        c.residualScale = 0.25
        let tuned = try trainer(c, run: "faint")
        let summary = try tuned.run(resume: false)
        let exported = try ParameterStore.load(path: model)
        let after = try RunCheckpoint.read(path: tuned.checkpointPath).parameters
        var encoderWeights = 0, decoderChanged = 0
        for (name, t) in exported.values {
            if name.hasPrefix("encoder.") {
                XCTAssertEqual(after[name]?.scalars, t.scalars, "\(name) moved with the encoder frozen")
                encoderWeights += 1
            } else if name.hasPrefix("decoder."), after[name]?.scalars != t.scalars { decoderChanged += 1 }
        }
        XCTAssertGreaterThan(encoderWeights, 10)
        XCTAssertGreaterThan(decoderChanged, 0, "the decoder did not learn")
        // A quarter of the residual: up to 20 log10(4) = 12.04 dB more PSNR (less where the full
        // residual of this barely trained encoder clips at 0 and 1).
        let (p1, p2) = (try XCTUnwrap(fullSummary.lastEvaluation?.psnr), try XCTUnwrap(summary.lastEvaluation?.psnr))
        XCTAssertGreaterThan(p2 - p1, 4, "held-out PSNR \(p1) dB at scale 1, \(p2) dB at 0.25")
        XCTAssertLessThan(p2 - p1, 12.6, "held-out PSNR \(p1) dB at scale 1, \(p2) dB at 0.25")
        c.residualScale = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--residual-scale")) }
        c.residualScale = 0.25
        c.initFrom = nil
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--init-from")) }
    }

    func testBadConfigurationsAreClearErrors() throws {
        XCTAssertThrowsError(try TrainingConfig.preset("huge")) { XCTAssertTrue("\($0)".contains("paper, cpu, tiny, small")) }
        var c = try TrainingConfig.preset("cpu")
        c.size = 100
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--size 100")) }
        c = try TrainingConfig.preset("cpu")
        c.borders = "purple"
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--borders")) }
        XCTAssertThrowsError(try PhotoStream.photoFiles(in: tmp.path)) { XCTAssertTrue("\($0)".contains("no .png")) }
        XCTAssertThrowsError(try PhotoStream.photoFiles(in: tmp.path + "/missing")) { XCTAssertTrue("\($0)".contains("no such folder")) }
    }

    /// 256-bit secrets build and take a step (the notes wanted them).
    func testTwoHundredFiftySixBits() throws {
        var c = try shortConfig(steps: 2)
        c.bits = 256
        let s = try trainer(c, run: "b256").run(resume: false)
        XCTAssertEqual(s.lastStep, 2)
        XCTAssertNotNil(s.lastEvaluation)
    }
}
