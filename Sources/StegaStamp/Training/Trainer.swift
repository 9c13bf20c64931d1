import Foundation
import GraphIR
import GraphKernels
import GraphPasses
import GraphRuntime

/// The one training loop of the code base (the `paper`, `cpu`, `tiny` and `small` presets, the
/// command line and the demo all run it). It compiles the generator step and the critic step once
/// per run, explicitly and logged, runs them on one ParameterStore, and feeds every per-step value
/// (secrets, crops, perspective pair, noise seed, every loss scale and ramp, learning rates) as a
/// graph input computed on the host by `Schedule`, as train.py does.
///
/// The run folder holds `config.json`, `checkpoint.safetensors`, `metrics.jsonl` (one object per
/// logged step), `eval.jsonl`, TensorBoard event files, `curves.png` and `samples.png` (+ one per
/// evaluation under `samples/`).
public final class Trainer {
    public let config: TrainingConfig
    public let runDirectory: String
    public let trainFiles: [String]
    public let evalFiles: [String]
    public var options = CompileOptions()
    /// Lines for a person (progress, evaluations, warnings).
    /// (Through `print`, flushed, so lines keep their order with the caller's own `print`s in a pipe.)
    public var log: @Sendable (String) -> Void = { print($0); fflush(nil) }
    /// Alarms go here too (standard error by default), so they cannot scroll by unseen.
    public var alarmLog: @Sendable (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
    /// A progress bar rewritten in place (a terminal), or plain lines at every log step.
    public var progressBar = false
    /// Polled after every step: true ends the run with a checkpoint (SIGINT / SIGTERM).
    public var stopRequested: () -> Bool = { StopSignal.requested }
    /// TensorBoard event files (off in tests that do not read them).
    public var tensorBoard = true
    /// Data-parallel training (`mpirun -np N stegastamp train`): the other ranks. Each rank
    /// computes its slice of the global batch; gradients are averaged with `all_reduce`; rank 0
    /// alone writes the run folder and logs. nil: one process.
    public var communicator: Communicator? = nil
    /// Data-parallel runs: gradients are all-reduced in buffers of about this many bytes (a run
    /// setting, not a hyperparameter: any value resumes any checkpoint).
    public var bucketBytes = 4 << 20
    public var rank: Int { communicator?.rank ?? 0 }
    public var ranks: Int { communicator?.size ?? 1 }

    public struct Summary: Sendable {
        public var firstStep, lastStep: Int
        public var interrupted: Bool
        public var lastEvaluation: TrainingEvaluation.Result?
        public var alarms: [(step: Int, kind: TrainingAlarm.Kind)]
        public var secondsPerStep: Double
        /// Share of the step loop's wall time outside the compiled steps (data, schedules, logging).
        public var hostShare: Double
        /// Analytic GFLOP per full step (generator + critic) and the rate reached.
        public var gflopPerStep: Double
        public var compileSeconds: Double
        public var lastMetrics: [String: Double]
        /// FNV-1a of every parameter's bytes, by name (equal on every rank of a data-parallel run).
        public var parameterChecksum: UInt64
        /// Data-parallel runs: bytes all-reduced per step and the share of the step loop spent
        /// inside collectives (waiting for the slowest rank included).
        public var bytesReducedPerStep: Double
        public var communicationShare: Double
        /// With `Collectives.measureWaiting`: the part of `communicationShare` spent waiting for
        /// the slowest rank (the barrier before each all_reduce); the rest is the transfer.
        public var waitingShare: Double
    }

    public var checkpointPath: String { path("checkpoint.safetensors") }
    func path(_ name: String) -> String { URL(fileURLWithPath: runDirectory).appendingPathComponent(name).path }

    public init(config: TrainingConfig, runDirectory: String, trainFiles: [String], evalFiles: [String]) throws {
        try config.validate()
        guard !trainFiles.isEmpty else { throw TrainingError("no training photos") }
        guard !evalFiles.isEmpty else { throw TrainingError("no held-out evaluation photos") }
        self.config = config
        self.runDirectory = runDirectory
        self.trainFiles = trainFiles
        self.evalFiles = evalFiles
    }

    /// Training photos and held-out photos from folders. Without an evaluation folder, every 10th
    /// photo of the training folder (by name; at least one) is held out and not trained on.
    public static func splitPhotos(images: String, evalImages: String?) throws -> (train: [String], eval: [String]) {
        let all = try PhotoStream.photoFiles(in: images)
        if let evalImages { return (all, try PhotoStream.photoFiles(in: evalImages)) }
        guard all.count >= 2 else {
            throw TrainingError("\(images): one photo only; give at least two (one is held out for evaluation) or --eval-images DIR")
        }
        let held = all.enumerated().filter { $0.offset % 10 == 9 || ($0.offset == all.count - 1 && all.count < 10) }.map(\.element)
        return (all.filter { !held.contains($0) }, held)
    }

    /// The parameters a fine-tuning run starts from: every encoder and decoder weight of `path` (a
    /// model file or a run checkpoint; all must be there, with this run's shapes), and whatever
    /// else of the training graphs the file holds with the right shape (a checkpoint's critic and
    /// optimizer slots). The rest is initialised from the seed by the caller.
    static func warmStart(from path: String, graphs: TrainingGraphSet, log: (String) -> Void) throws -> ParameterStore {
        let source: ParameterStore
        do { source = try ParameterStore.load(path: path) } catch {
            throw TrainingError("--init-from \(path): \(error)")
        }
        var store = ParameterStore()
        var required = 0
        for g in [graphs.encoder, graphs.decoder] {
            for id in g.parameters {
                let v = g[id]
                guard let t = source[v.name] else {
                    throw TrainingError("--init-from \(path): lacks '\(v.name)' (not a model of this run's architecture, size and bits?)")
                }
                guard t.shape == v.shape else {
                    throw TrainingError("--init-from \(path): '\(v.name)' is f32\(Shape.describe(t.shape)); this run needs f32\(Shape.describe(v.shape))")
                }
                if store[v.name] == nil { required += 1 }
                store[v.name] = t
            }
        }
        var extra = 0
        for g in [graphs.generator] + (graphs.critic.map { [$0] } ?? []) {
            for id in g.parameters {
                let v = g[id]
                if store[v.name] == nil, let t = source[v.name], t.shape == v.shape { store[v.name] = t; extra += 1 }
            }
        }
        log("fine-tuning from \(path): \(required) encoder and decoder weights" + (extra > 0 ? ", \(extra) other parameters (critic, optimizer slots)" : "")
            + "; the rest initialised from the seed")
        return store
    }

    /// Runs (or, with `resume`, continues) the run up to `config.steps`.
    public func run(resume: Bool) throws -> Summary {
        let fm = FileManager.default
        let isRoot = rank == 0
        if !isRoot {
            log = { @Sendable _ in }
            alarmLog = { @Sendable _ in }
            progressBar = false
        }
        if isRoot {
            do { try fm.createDirectory(atPath: runDirectory, withIntermediateDirectories: true) } catch {
                throw TrainingError("\(runDirectory): cannot create the run folder (\(error.localizedDescription))")
            }
        }
        var options = self.options
        options.ranks = ranks
        if let communicator { Collectives.communicator = communicator }
        let localBatch = config.batch / max(ranks, 1), offset = rank * localBatch
        var store = ParameterStore()
        var start = 0
        if resume && isRoot {
            let ck = try RunCheckpoint.read(path: checkpointPath)
            let mismatches = config.identityMismatches(ck.config)
            guard mismatches.isEmpty else {
                throw TrainingError("\(checkpointPath): the checkpoint was made with \(mismatches.joined(separator: ", ")); "
                                    + "resume with its settings or start a new --run")
            }
            guard ck.step <= config.steps else {
                throw TrainingError("\(checkpointPath): the checkpoint is at step \(ck.step), past --steps \(config.steps)")
            }
            store = ck.parameters
            start = ck.step
            log("resuming \(runDirectory) from step \(start) (\(checkpointPath))")
        } else if fm.fileExists(atPath: checkpointPath) && isRoot && !resume {
            throw TrainingError("\(runDirectory) already holds a run (\(checkpointPath)): pass --resume to continue it, or choose another --run")
        }
        if isRoot { try Self.writeAtomically(config.json() + "\n", to: path("config.json")) }
        if ranks > 1 { log("data-parallel run: \(ranks) ranks, \(localBatch) examples each of the global batch \(config.batch)") }

        // Compile once per run, explicitly.
        let t0 = Date()
        let graphs = try TrainingGraphSet(config, ranks: ranks, rank: rank, bucketBytes: bucketBytes)
        let generator = try Compiler.compile(graphs.generator, for: Signature.of(graphs.generator), options: options)
        log(String(format: "compiled the generator step: %d ops, %.1f GFLOP per step, %.1f s", PassManager.opCount(generator.graph),
                   Double(generator.graph.flops) / 1e9, Date().timeIntervalSince(t0)))
        let t1 = Date()
        let critic = try graphs.critic.map { try Compiler.compile($0, for: Signature.of($0), options: options) }
        if let critic {
            log(String(format: "compiled the critic step: %d ops, %.1f GFLOP per step, %.1f s", PassManager.opCount(critic.graph),
                       Double(critic.graph.flops) / 1e9, Date().timeIntervalSince(t1)))
        }
        let t2 = Date()
        var evalOptions = options
        evalOptions.ranks = 1
        let evaluation = isRoot ? try TrainingEvaluation(config: config, files: evalFiles, graphs: graphs, options: evalOptions, log: log) : nil
        log(String(format: "compiled the evaluation graphs (encoder, decoder, damage, SSIM) for %d held-out crops of %d photos, %.1f s",
                   (config.evalImages + config.batch - 1) / config.batch * config.batch, evalFiles.count, Date().timeIntervalSince(t2)))
        let compileSeconds = Date().timeIntervalSince(t0)

        // Parameters: the checkpoint's must be complete and of the right shapes; a fresh run
        // initialises, after taking what --init-from holds.
        if !resume && isRoot, let source = config.initFrom {
            store = try Self.warmStart(from: source, graphs: graphs, log: log)
        }
        for g in [graphs.generator] + (graphs.critic.map { [$0] } ?? []) {
            if resume && isRoot {
                for id in g.parameters {
                    let v = g[id]
                    guard let t = store[v.name] else { throw TrainingError("\(checkpointPath): the checkpoint lacks '\(v.name)'") }
                    guard t.shape == v.shape else {
                        throw TrainingError("\(checkpointPath): '\(v.name)' is f32\(Shape.describe(t.shape)); this run needs f32\(Shape.describe(v.shape))")
                    }
                }
            } else {
                store.initializeMissing(for: g)
            }
        }
        if let communicator, ranks > 1 {
            // Every rank starts from rank 0's parameters and step (its checkpoint when resuming).
            // Ranks reach this point after compiling different graphs (rank 0 also compiles the
            // evaluation): the first collective may wait long.
            communicator.allowDelay(seconds: 600)
            var s = [Float(start)]
            try s.withUnsafeMutableBufferPointer { try communicator.broadcast($0.baseAddress!, count: 1, root: 0) }
            start = Int(s[0])
            for name in store.values.keys.sorted() {
                var t = store[name]!
                try t.scalars.withUnsafeMutableBufferPointer { try communicator.broadcast($0.baseAddress!, count: $0.count, root: 0) }
                store[name] = t
            }
        }

        let logCopy = log
        let stream = try PhotoStream(files: trainFiles, size: config.size, seed: config.seed, cropScaleMin: config.cropScaleMin,
                                     textureThreshold: config.textureThreshold, log: logCopy)
        let metrics = isRoot ? try JSONLines(path: path("metrics.jsonl"), keepingStepsUpTo: start) : nil
        let evals = isRoot ? try JSONLines(path: path("eval.jsonl"), keepingStepsUpTo: start) : nil
        let board = tensorBoard && isRoot ? try TensorBoardWriter(directory: runDirectory, resumingAt: resume ? start + 1 : nil) : nil
        let schedule = Schedule(config)
        var alarm = TrainingAlarm(window: config.alarmSteps)
        var window = MetricWindow()
        var lastEval: TrainingEvaluation.Result? = nil
        var lastMetrics: [String: Double] = [:]
        var interrupted = false
        let flopPerStep = Double(generator.graph.flops + (critic?.graph.flops ?? 0))
        var loopSeconds = 0.0, compiledSeconds = 0.0, loopSteps = 0
        var windowStart = Date()
        var windowCompiled = 0.0

        if start >= config.steps { log("the run is already at step \(start) of \(config.steps): nothing to train") }
        let reduced0 = Collectives.bytesReduced, reducing0 = Collectives.secondsReducing, waiting0 = Collectives.secondsWaiting
        var step = start
        while step < config.steps {
            let stepStart = Date()
            let v = schedule.values(at: step)
            // This rank's examples offset ..< offset + localBatch of the global batch (all of it in one process).
            let perspective = StepRandom.perspective(seed: config.seed, step: step, size: config.size, bound: v.rndTransBound,
                                                      zoom: v.rndZoomBound, batch: config.batch)
            let feeds: [String: Tensor] = [
                "secret": StepRandom.secrets(seed: config.seed, step: step, bits: config.bits, offset: offset, count: localBatch,
                                             randomShare: v.randomBitShare),
                "image": try stream.batch(step: step, offset: offset, count: localBatch),
                "M": ranks == 1 ? perspective : Tensor(shape: [localBatch, 2, 8], scalars: Array(perspective.scalars[(offset * 16)..<((offset + localBatch) * 16)])),
                "seed": Tensor(StepRandom.graphSeed(seed: config.seed, step: step)),
                "augmentation_step": Tensor(v.augmentationStep),
                "step": Tensor(Float(step + 1)),
                "l2_loss_scale": Tensor(v.l2LossScale), "perceptual_loss_scale": Tensor(v.perceptualLossScale),
                "secret_loss_scale": Tensor(v.secretLossScale), "G_loss_scale": Tensor(v.gLossScale),
                "l2_edge_gain": Tensor(v.l2EdgeGain), "learning_rate": Tensor(v.learningRate),
            ]
            let c0 = Date()
            let out = try generator.run(feeding: feeds, parameters: &store)
            var dLoss: Float? = nil
            if let critic, !v.secretOnly {
                var f = feeds
                f["learning_rate"] = Tensor(config.criticLearningRate)
                let o = try critic.run(feeding: f, parameters: &store)
                dLoss = (o["reported_D_loss"] ?? o["D_loss"]!).scalar
            }
            let compiled = Date().timeIntervalSince(c0)
            step += 1
            let loss = (out["reported_loss"] ?? out["loss"]!).scalar
            guard loss.isFinite else {
                throw TrainingError("the loss became \(loss) at step \(step); nothing was written after the last checkpoint "
                                    + "(\(checkpointPath)). Try a lower --learning-rate or another --seed.")
            }
            var reported = out
            if let r = out["reported_loss"] { reported["loss"] = r }
            window.add(reported, dLoss: dLoss)
            for kind in alarm.observe(step: step, secretLoss: out["secret_loss"]!.scalar, bitAccuracy: out["bit_accuracy"]!.scalar,
                                      probabilityStd: out["probability_std"]?.scalar) {
                let text = TrainingAlarm.message(kind, step: step, window: config.alarmSteps)
                if progressBar { log("") }
                alarmLog(text)
                if isRoot { try? Self.writeAtomically(text + "\n", to: path("ALARM.txt")) }
                window.alarms.append(kind.rawValue)
            }

            var stop = stopRequested()
            if let communicator, ranks > 1 {
                // A signal reaches the ranks at different steps: they stop together, at the first
                // step any of them saw it.
                var flag: [Float] = [stop ? 1 : 0]
                try flag.withUnsafeMutableBufferPointer { try communicator.allReduce($0.baseAddress!, count: 1, op: .sum) }
                stop = flag[0] > 0
            }
            if step % config.logEvery == 0 || step == config.steps || stop {
                let elapsed = Date().timeIntervalSince(windowStart)
                var m = window.means()
                m["steps_per_s"] = Double(window.count) / max(elapsed, 1e-9)
                m["host_share"] = max(0, elapsed - windowCompiled - compiled) / max(elapsed, 1e-9)
                for (k, x) in [("l2_loss_scale", v.l2LossScale), ("perceptual_loss_scale", v.perceptualLossScale),
                               ("secret_loss_scale", v.secretLossScale), ("G_loss_scale", v.gLossScale), ("l2_edge_gain", v.l2EdgeGain),
                               ("rnd_trans", v.rndTransBound), ("learning_rate", v.learningRate), ("random_bit_share", v.randomBitShare)] {
                    m[k] = Double(x)
                }
                lastMetrics = m
                try metrics?.append(step: step, m, strings: ["alarms": window.alarms])
                try board?.scalars(m.sorted { $0.key < $1.key }.map { (Self.boardTag($0.key), $0.value) }, step: step)
                report(step: step, m)
                window = MetricWindow()
                windowStart = Date()
                windowCompiled = 0
            } else {
                windowCompiled += compiled
            }
            loopSeconds += Date().timeIntervalSince(stepStart)
            compiledSeconds += compiled
            loopSteps += 1

            if let evaluation, let metrics, let evals, step % config.evalEvery == 0 || step == config.steps {
                let e0 = Date()
                let (r, samples) = try evaluation.run(step: step, parameters: store)
                lastEval = r
                try evals.append(step: step, Dictionary(uniqueKeysWithValues: r.fields))
                try board?.scalars(r.fields.map { ("eval/" + $0.0.replacingOccurrences(of: "eval_", with: ""), $0.1) }, step: step)
                let grid = TrainingEvaluation.sampleGrid(samples)
                try fm.createDirectory(atPath: path("samples"), withIntermediateDirectories: true)
                try ImageIO.write(grid, path: path("samples/step-\(String(format: "%07d", step)).png"))
                try ImageIO.write(grid, path: path("samples.png"))
                try board?.image("samples/cover_encoded_residual_transformed", png: try ImageIO.encodePNG(grid),
                                 width: grid.width, height: grid.height, step: step)
                try writePlots(metrics: metrics, evals: evals)
                if progressBar { log("") }
                log(String(format: "eval at step %d (%d held-out crops, %.1f s): bit accuracy %.3f, decoded %.1f %%, PSNR %.2f dB, SSIM %.4f; "
                           + "after JPEG q50: bit accuracy %.3f, decoded %.1f %%", step, r.images, Date().timeIntervalSince(e0),
                           r.bitAccuracy, 100 * r.decodedRate, r.psnr, r.ssim, r.jpegBitAccuracy, 100 * r.jpegDecodedRate))
                windowStart = windowStart.addingTimeInterval(Date().timeIntervalSince(e0))
            }
            // Rank 0 evaluates while the others wait in the next step's first collective: every
            // rank knows when, and allows for it (a checkpoint write must fit the timeout).
            if ranks > 1, step % config.evalEvery == 0 { communicator?.allowDelay(seconds: 600) }
            if isRoot, step % config.checkpointEvery == 0 || step == config.steps || stop {
                let k0 = Date()
                try RunCheckpoint(step: step, config: config, parameters: store, unreadablePhotos: stream.unreadableCount).write(path: checkpointPath)
                board?.flush()
                windowStart = windowStart.addingTimeInterval(Date().timeIntervalSince(k0))
            }
            if stop {
                interrupted = true
                if progressBar { log("") }
                log("stopped at step \(step) of \(config.steps): checkpoint written to \(checkpointPath); continue with --resume")
                break
            }
        }
        stream.drain()
        if progressBar, !interrupted, loopSteps > 0 { log("") }
        if lastEval == nil, start >= config.steps { lastEval = try evaluation?.run(step: start, parameters: store).0 }
        if loopSteps > 0, let metrics, let evals { try writePlots(metrics: metrics, evals: evals) }
        var checksum: UInt64 = 0xcbf29ce484222325
        for name in store.values.keys.sorted() {
            for byte in name.utf8 { checksum = (checksum ^ UInt64(byte)) &* 0x100000001b3 }
            store[name]!.scalars.withUnsafeBytes { for byte in $0 { checksum = (checksum ^ UInt64(byte)) &* 0x100000001b3 } }
        }
        return Summary(firstStep: start, lastStep: step, interrupted: interrupted, lastEvaluation: lastEval, alarms: alarm.fired,
                       secondsPerStep: loopSteps > 0 ? loopSeconds / Double(loopSteps) : 0,
                       hostShare: loopSeconds > 0 ? (loopSeconds - compiledSeconds) / loopSeconds : 0,
                       gflopPerStep: flopPerStep / 1e9, compileSeconds: compileSeconds, lastMetrics: lastMetrics,
                       parameterChecksum: checksum,
                       bytesReducedPerStep: loopSteps > 0 ? Double(Collectives.bytesReduced - reduced0) / Double(loopSteps) : 0,
                       communicationShare: loopSeconds > 0 ? (Collectives.secondsReducing - reducing0) / loopSeconds : 0,
                       waitingShare: loopSeconds > 0 ? (Collectives.secondsWaiting - waiting0) / loopSeconds : 0)
    }

    static func boardTag(_ key: String) -> String {
        if key.hasSuffix("_scale") || key == "l2_edge_gain" || key == "rnd_trans" || key == "learning_rate" || key == "random_bit_share" {
            return "schedule/" + key
        }
        return "train/" + key
    }

    func report(step: Int, _ m: [String: Double]) {
        let rate = m["steps_per_s"] ?? 0
        let eta = rate > 0 ? Double(config.steps - step) / rate : 0
        let numbers = String(format: "loss %.4f  secret %.4f  bit acc %.3f  PSNR %.1f dB  %.2f steps/s  ETA %@",
                             m["loss"] ?? 0, m["secret_loss"] ?? 0, m["bit_accuracy"] ?? 0, m["psnr"] ?? 0, rate, Self.duration(eta))
        if progressBar {
            let width = 24, filled = Int(Double(width) * Double(step) / Double(config.steps))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            print("\r[\(bar)] \(step)/\(config.steps)  \(numbers)\u{1B}[K", terminator: "")
            fflush(nil)
        } else {
            log("step \(step)/\(config.steps)  \(numbers)")
        }
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }

    func writePlots(metrics: JSONLines, evals: JSONLines) throws {
        func series(_ lines: JSONLines, _ key: String, _ name: String? = nil) -> Plots.Series {
            Plots.Series(name ?? key, lines.rows.compactMap { r in r.values[key].map { (Double(r.step), $0) } })
        }
        let panels = [
            Plots.Panel("secret loss (ln 2 = 0.693: chance)", [series(metrics, "secret_loss")]),
            Plots.Panel("bit accuracy", [series(metrics, "bit_accuracy", "train"), series(evals, "eval_bit_accuracy", "eval"),
                                         series(evals, "eval_jpeg50_bit_accuracy", "eval jpeg50")]),
            Plots.Panel("psnr (db)", [series(metrics, "psnr", "train"), series(evals, "eval_psnr", "eval")]),
            Plots.Panel("image losses (log)", [series(metrics, "image_loss", "l2 yuv"), series(metrics, "perceptual_loss", "perceptual")], logY: true),
            Plots.Panel("critic", [series(metrics, "g_loss", "g loss"), series(metrics, "d_loss", "d loss")]),
            Plots.Panel("decoded messages (eval)", [series(evals, "eval_decoded_rate", "clean"), series(evals, "eval_jpeg50_decoded_rate", "jpeg50")]),
        ]
        try ImageIO.write(Plots.render(panels), path: path("curves.png"))
    }

    static func writeAtomically(_ text: String, to path: String) throws {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TrainingError("\(path): cannot write (\(error.localizedDescription))")
        }
    }
}

/// Means of the generator's (and critic's) outputs over the steps since the last log line.
struct MetricWindow {
    var sums: [String: Double] = [:]
    var count = 0
    var dCount = 0
    var alarms: [String] = []

    static let keys = [("loss", "loss"), ("secret_loss", "secret_loss"), ("image_loss", "image_loss"), ("perceptual_loss", "perceptual_loss"),
                       ("G_loss", "g_loss"), ("bit_accuracy", "bit_accuracy"), ("string_accuracy", "string_accuracy"), ("mse", "mse"),
                       ("probability_std", "probability_std")]

    mutating func add(_ out: [String: Tensor], dLoss: Float?) {
        for (output, key) in Self.keys { sums[key, default: 0] += Double(out[output]?.scalar ?? 0) }
        if let dLoss { sums["d_loss", default: 0] += Double(dLoss); dCount += 1 }
        count += 1
    }

    func means() -> [String: Double] {
        var m: [String: Double] = [:]
        for (_, key) in Self.keys { m[key] = (sums[key] ?? 0) / Double(max(count, 1)) }
        m["d_loss"] = dCount > 0 ? (sums["d_loss"] ?? 0) / Double(dCount) : 0
        let mse = m["mse"] ?? 0
        m["psnr"] = mse > 0 ? -10 * log10(mse) : 100
        return m
    }
}

/// A JSON-lines log (`metrics.jsonl`, `eval.jsonl`): one object per step, keys sorted, numbers
/// printed the same way every run. Opening it for a resumed run drops the lines past the
/// checkpoint, so a resumed run's file reads like a straight run's.
final class JSONLines {
    struct Row { var step: Int; var values: [String: Double] }
    let path: String
    private(set) var rows: [Row] = []
    let handle: FileHandle

    init(path: String, keepingStepsUpTo last: Int) throws {
        self.path = path
        var kept: [String] = []
        if last > 0, let d = FileManager.default.contents(atPath: path) {
            for line in String(decoding: d, as: UTF8.self).split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = (obj["step"] as? NSNumber)?.intValue, step <= last else { continue }
                kept.append(String(line))
                var values: [String: Double] = [:]
                for (k, v) in obj { if let n = v as? NSNumber, k != "step" { values[k] = n.doubleValue } }
                rows.append(Row(step: step, values: values))
            }
        }
        try Trainer.writeAtomically(kept.map { $0 + "\n" }.joined(), to: path)
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.9g", v)
    }

    func append(step: Int, _ values: [String: Double], strings: [String: [String]] = [:]) throws {
        var parts = ["\"step\":\(step)"]
        for k in values.keys.sorted() { parts.append("\"\(k)\":\(Self.number(values[k]!))") }
        for k in strings.keys.sorted() where !(strings[k]!.isEmpty) {
            parts.append("\"\(k)\":[" + strings[k]!.map { "\"\($0)\"" }.joined(separator: ",") + "]")
        }
        try handle.write(contentsOf: Data(("{" + parts.joined(separator: ",") + "}\n").utf8))
        rows.append(Row(step: step, values: values))
    }
}

/// SIGINT / SIGTERM end a run with a checkpoint instead of killing it.
public enum StopSignal {
    nonisolated(unsafe) static var flag: Int32 = 0
    public static var requested: Bool { flag != 0 }

    public static func install() {
        signal(SIGINT) { _ in StopSignal.flag = 1 }
        signal(SIGTERM) { _ in StopSignal.flag = 1 }
    }
}
