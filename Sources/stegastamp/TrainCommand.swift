import ArgumentParser
import Foundation
import FastKernelSupport
import GraphKernels
import GraphRuntime
import StegaStamp

/// `stegastamp train`: a thin layer over `Trainer`: preset, then every flag given over it.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train StegaStamp (encoder, STN decoder, critic, transform net) through the compiled executor.",
        discussion: """
            Presets: paper (400x400, 100 bits, batch 4, 140k steps, scripts/base.sh), cpu (128x128, 100 bits, batch 4, \
            30k steps, base.sh's ramps compressed: the default), tiny (32x32, 16 bits, 400 steps: a few minutes), small \
            (the codec demo's 32x32 model). Every flag overrides the preset; the resolved configuration is written to \
            RUN/config.json. The run folder gets checkpoint.safetensors (every --checkpoint-every steps and on \
            Ctrl-C / SIGTERM), metrics.jsonl, eval.jsonl, TensorBoard event files (tensorboard --logdir RUN), curves.png \
            and samples.png. --resume continues a run exactly where its checkpoint left it, with the configuration \
            it was trained with (RUN/config.json; a flag given with it changes that setting only). \
            Data-parallel: mpirun -np N stegastamp train ... (Open MPI): --batch stays the global batch, each rank \
            takes its slice, gradients are averaged over the ranks; rank 0 writes the run folder.
            """)

    @Option(help: "paper, cpu, tiny or small (default: cpu; with --resume, the run's own).") var preset: String?
    @Option(help: "Folder of training photos (PNG/JPEG). Default: the training photos of scripts/fetch-photos.sh, fetched if missing.")
    var images: String?
    @Option(help: "Folder of held-out evaluation photos. Default: the evaluation photos of scripts/fetch-photos.sh with the default --images, else every 10th photo of --images.")
    var evalImages: String?
    @Option(name: .customLong("run"), help: "Run folder (checkpoint, logs, plots).") var runFolder = "runs/stegastamp"
    @Option(help: "Total steps of the run.") var steps: Int?
    @Flag(help: "Continue the run in --run from its checkpoint, with the configuration it was trained with (flags given change only those settings).")
    var resume = false
    @Option(help: "Fine-tune: start a new run from the encoder and decoder of this model file (e.g. Models/stegastamp.safetensors) or run checkpoint.")
    var initFrom: String?
    @Option(help: "Seed of the initial weights and of every random draw.") var seed: Int?
    @Option(help: "Secret bits (100: 7 characters under BCH; 256 works too).") var bits: Int?
    @Option(help: "Global batch.") var batch: Int?
    @Option(help: "Image size (square; a multiple of 16).") var size: Int?
    @Option(help: "Checkpoint every N steps.") var checkpointEvery: Int?
    @Option(help: "Evaluate on the held-out photos every N steps.") var evalEvery: Int?
    @Option(help: "Log metrics every N steps.") var logEvery: Int?
    @Flag(help: "Secrets, augmentation and learning rate in phases (see the README).") var curriculum = false
    @Option(help: "Under mpirun: stop the run when a collective waits this many seconds for the other ranks.") var collectiveTimeout: Double = 120
    @Option(help: "Threads per process (default: every core; give each of N ranks on one machine cores / N).") var threads: Int?
    @Option(help: "Under mpirun: gradients are all-reduced in buckets of this many MiB (one collective each).") var bucketMb: Double = 4
    @Flag(help: "Under mpirun: a barrier before each all_reduce splits the time in collectives into waiting for the slowest rank and the transfer (a diagnostic; costs a round trip per bucket).")
    var measureWaiting = false
    @OptionGroup(title: "Compiler") var compile: CompileFlags

    @Option(help: "Adam learning rate.") var learningRate: Float?
    @Option(help: "Decay the learning rate linearly to this fraction by the last step.") var finalLrFraction: Float?
    @Option(help: "Step the decay starts at.") var lrDecayStart: Int?
    @Option(help: "Secret-only steps at the start (train.py's no_im_loss_steps).") var noImageLossSteps: Int?
    @Option var l2LossScale: Float?
    @Option var l2LossRamp: Int?
    @Option(help: "Perceptual (SSIM, or LPIPS) loss scale (train.py's lpips_loss_scale).") var perceptualLossScale: Float?
    @Option var perceptualLossRamp: Int?
    @Option var secretLossScale: Float?
    @Option var secretLossRamp: Int?
    @Option(name: .customLong("g-loss-scale")) var gLossScale: Float?
    @Option(name: .customLong("g-loss-ramp")) var gLossRamp: Int?
    @Option var l2EdgeGain: Float?
    @Option var l2EdgeRamp: Int?
    @Option var l2EdgeDelay: Int?
    @Option(help: "Y, U and V weights of the L2 loss, comma-separated.") var yuvScales: String?
    @Option(help: "ssim, lpips or none.") var perceptual: String?
    @Flag(help: "No critic (train.py's --no_gan).") var noGan = false
    @Option(help: "Scale the encoder's residual by this before adding it (default 1): with --freeze-encoder, fits the decoder to residuals as faint as the codec's --strength.") var residualScale: Float?
    @Flag(help: "Train the decoder only; the encoder keeps the --init-from weights.") var freezeEncoder = false
    @Option var criticLearningRate: Float?
    @Option(help: "no_edge, black, white, random, randomrgb or image.") var borders: String?
    @Option var rndTrans: Float?
    @Option var rndTransRamp: Int?
    @Option(help: "Each example's warp also zooms by 1 + U(-z, z): crops and margins (not in the original; default 0).") var rndZoom: Float?
    @Option var rndBri: Float?
    @Option var rndHue: Float?
    @Option var rndNoise: Float?
    @Option var rndSat: Float?
    @Option var contrastLow: Float?
    @Option var contrastHigh: Float?
    @Option var jpegQuality: Float?
    @Flag(help: "No differentiable JPEG in the transform net.") var noJpeg = false
    @Option(help: "Smallest crop as a fraction of the photo's short side.") var cropScaleMin: Float?
    @Option(help: "Crops flatter than this (mean luminance gradient) are redrawn.") var textureThreshold: Float?
    @Option(help: "Held-out crops per evaluation.") var evalImagesCount: Int?
    @Option(help: "Steps at chance before the alarm fires.") var alarmSteps: Int?
    @Flag(help: "Plain log lines even on a terminal.") var noProgress = false

    func resolvedConfig() throws -> TrainingConfig {
        // A resumed run starts from its own configuration, a new one from the preset.
        var c: TrainingConfig
        if resume {
            c = try RunCheckpoint.configuration(ofRun: runFolder)
            if let preset, preset != c.preset { throw CLIError("--resume: \(runFolder) is a '\(c.preset)' run, not '\(preset)'") }
        } else {
            c = try TrainingConfig.preset(preset ?? "cpu")
        }
        func set<T>(_ v: T?, _ kp: WritableKeyPath<TrainingConfig, T>) { if let v { c[keyPath: kp] = v } }
        if let initFrom { c.initFrom = initFrom }
        set(steps, \.steps); set(seed, \.seed); set(bits, \.bits); set(batch, \.batch); set(size, \.size)
        set(checkpointEvery, \.checkpointEvery); set(evalEvery, \.evalEvery); set(logEvery, \.logEvery)
        set(learningRate, \.learningRate); set(finalLrFraction, \.finalLearningRateFraction); set(lrDecayStart, \.learningRateDecayStart)
        set(noImageLossSteps, \.noImageLossSteps); set(l2LossScale, \.l2LossScale); set(l2LossRamp, \.l2LossRamp)
        set(perceptualLossScale, \.perceptualLossScale); set(perceptualLossRamp, \.perceptualLossRamp)
        set(secretLossScale, \.secretLossScale); set(secretLossRamp, \.secretLossRamp); set(gLossScale, \.gLossScale); set(gLossRamp, \.gLossRamp)
        set(l2EdgeGain, \.l2EdgeGain); set(l2EdgeRamp, \.l2EdgeRamp); set(l2EdgeDelay, \.l2EdgeDelay)
        set(perceptual, \.perceptual); set(criticLearningRate, \.criticLearningRate); set(borders, \.borders)
        set(rndTrans, \.rndTrans); if let rndZoom { c.rndZoom = rndZoom }; set(rndTransRamp, \.rndTransRamp); set(rndBri, \.rndBri); set(rndHue, \.rndHue)
        set(rndNoise, \.rndNoise); set(rndSat, \.rndSat); set(contrastLow, \.contrastLow); set(contrastHigh, \.contrastHigh)
        set(jpegQuality, \.jpegQuality); set(cropScaleMin, \.cropScaleMin); set(textureThreshold, \.textureThreshold)
        set(evalImagesCount, \.evalImages); set(alarmSteps, \.alarmSteps)
        if let yuvScales {
            let v = yuvScales.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 3, v.allSatisfy({ $0 != nil }) else { throw CLIError("--yuv-scales expects three numbers like 1,100,100, got '\(yuvScales)'") }
            c.yuvScales = v.map { $0! }
        }
        if curriculum { c.curriculum = true }
        if noGan { c.gan = false }
        if let residualScale { c.residualScale = residualScale }
        if freezeEncoder { c.freezeEncoder = true }
        if noJpeg { c.jpeg = false }
        try c.validate()
        return c
    }

    func run() throws {
        let config: TrainingConfig
        do { config = try resolvedConfig() } catch let e as TrainingError { throw CLIError(e.description) }
        guard collectiveTimeout > 0 else { throw CLIError("--collective-timeout must be positive") }
        guard bucketMb > 0, bucketMb <= 4096 else { throw CLIError("--bucket-mb must be in (0, 4096], got \(bucketMb)") }
        if let threads {
            guard threads >= 1 else { throw CLIError("--threads must be at least 1") }
            Parallel.threads = threads
        }
        // Under mpirun with several ranks: the MPI communicator (a single process never touches MPI).
        let mpi = MPICommunicator.launchedRanks != nil ? try MPICommunicator(timeout: collectiveTimeout) : nil
        defer { mpi?.finish() }
        let root = (mpi?.rank ?? 0) == 0
        let (trainFiles, evalFiles) = try photoFolders()
        let trainer = try Trainer(config: config, runDirectory: runFolder, trainFiles: trainFiles, evalFiles: evalFiles)
        // Under mpirun the ranks keep to the built-in rules: timing kernels while the other ranks
        // share the cores would measure the neighbours, and every rank should run the same kernels.
        trainer.options = compile.options(tune: mpi == nil)
        trainer.bucketBytes = max(4, Int(bucketMb * 1_048_576))
        trainer.progressBar = !noProgress && isatty(STDOUT_FILENO) != 0
        trainer.communicator = mpi
        Collectives.communicator = mpi
        Collectives.measureWaiting = measureWaiting
        StopSignal.install()
        if !root {
            // Other ranks: only errors, and the parameter checksum at the end.
            let s: Trainer.Summary
            do { s = try trainer.run(resume: resume) } catch let e as TrainingError { throw CLIError(e.description) }
            FileHandle.standardError.write("rank \(trainer.rank): parameters checksum \(String(s.parameterChecksum, radix: 16))\n".data(using: .utf8)!)
            if s.interrupted { throw ExitCode(130) }
            return
        }
        print("training \(config.preset) (\(config.architecture.rawValue), \(config.size)x\(config.size), \(config.bits) bits, batch \(config.batch)) "
              + "for \(config.steps) steps on \(trainFiles.count) photos, \(evalFiles.count) held out; run folder \(runFolder)")
        let s: Trainer.Summary
        do { s = try trainer.run(resume: resume) } catch let e as TrainingError { throw CLIError(e.description) }
        if s.lastStep > s.firstStep {
            print(String(format: "trained steps %d..%d: %.3f s per step (generator, + critic after the secret-only phase), %.1f GFLOP per full step (%.1f GFLOP/s), "
                         + "%.1f %% of the step loop outside the compiled steps; compiling took %.1f s", s.firstStep + 1, s.lastStep,
                         s.secondsPerStep, s.gflopPerStep, s.gflopPerStep / max(s.secondsPerStep, 1e-9), 100 * s.hostShare, s.compileSeconds))
        }
        if let e = s.lastEvaluation {
            print(String(format: "held-out evaluation at step %d: bit accuracy %.3f, decoded %.1f %%, PSNR %.2f dB, SSIM %.4f; JPEG q50: %.3f, %.1f %%",
                         e.step, e.bitAccuracy, 100 * e.decodedRate, e.psnr, e.ssim, e.jpegBitAccuracy, 100 * e.jpegDecodedRate))
        }
        if !s.alarms.isEmpty { print("alarms: " + s.alarms.map { "\($0.kind.rawValue) at step \($0.step)" }.joined(separator: ", ")) }
        if let mpi {
            print(String(format: "data-parallel: %d ranks, %.1f MB all-reduced per step, %.1f %% of the step loop in collectives (rank 0)",
                         mpi.size, s.bytesReducedPerStep / 1e6, 100 * s.communicationShare))
            if measureWaiting {
                print(String(format: "collectives: %.1f %% of the step loop waiting for the slowest rank (barrier), %.1f %% transferring (rank 0)",
                             100 * s.waitingShare, 100 * (s.communicationShare - s.waitingShare)))
            }
            FileHandle.standardError.write("rank \(mpi.rank): parameters checksum \(String(s.parameterChecksum, radix: 16))\n".data(using: .utf8)!)
        }
        if s.interrupted { throw ExitCode(130) }
    }

    /// --images / --eval-images, or the photo cache of scripts/fetch-photos.sh (fetched if missing).
    func photoFolders() throws -> ([String], [String]) {
        do {
            if let images { return try Trainer.splitPhotos(images: images, evalImages: evalImages) }
            let cache = ProcessInfo.processInfo.environment["STEGASTAMP_PHOTOS"]
                ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/stegastamp/photos").path
            let train = cache + "/train", eval = cache + "/eval"
            if (try? PhotoStream.photoFiles(in: train)) == nil || (evalImages == nil && (try? PhotoStream.photoFiles(in: eval)) == nil) {
                try fetchPhotos(into: cache)
            }
            return (try PhotoStream.photoFiles(in: train), try PhotoStream.photoFiles(in: evalImages ?? eval))
        } catch let e as TrainingError { throw CLIError(e.description) }
    }

    func fetchPhotos(into cache: String) throws {
        // The script sits in the repository the binary was built in (…/.build/<config>/stegastamp).
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        var script: String? = nil
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("scripts/fetch-photos.sh").path
            if FileManager.default.fileExists(atPath: candidate) { script = candidate; break }
            dir.deleteLastPathComponent()
        }
        guard let script else {
            throw CLIError("no training photos in \(cache) and scripts/fetch-photos.sh not found: pass --images DIR (a folder of PNG/JPEG photos)")
        }
        print("fetching the training photos: \(script) \(cache)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script, cache]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CLIError("\(script) failed (exit \(p.terminationStatus)): pass --images DIR instead") }
    }
}
