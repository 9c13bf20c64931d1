import Foundation
import GraphIR
import GraphRuntime

/// Trains the small model through the compiled executor with Adam. Every value that changes
/// between steps (learning rate, step, noise seed, both loss scales) is fed as a graph input.
public struct SmallModelTrainer {
    public var config = SmallModelConfig()
    public var steps = 1000
    public var learningRate: Float = 1e-3
    /// Fraction of the learning rate left at the last step (linear decay; 1 = constant).
    public var finalLearningRateFraction: Float = 1
    public var secretScale: Float = 1
    /// The image loss scale ramps linearly from 0 to this over `imageRampSteps` (as the original
    /// ramps its image losses), so the decoder learns before the residual is squeezed.
    public var imageScale: Float = 20
    public var imageRampSteps = 400
    /// Steps with no image loss at all before the ramp starts (the original's no_im_loss_steps):
    /// the decoder must learn to read bits before the residual is squeezed, or both collapse.
    public var imageLossDelay = 0
    public var evalEvery = 200
    /// Evaluation batches (fresh secrets and images, never used in training).
    public var evalBatches = 8
    public var backend: Backend = .cpu
    /// Training images by (seed, count); synthetic images unless photographs are given.
    public var trainingImages: ((UInt64, Int) -> Tensor)? = nil
    /// Progress lines, flushed as they come (stdout may be a pipe or a file).
    public var log: (String) -> Void = { FileHandle.standardOutput.write(($0 + "\n").data(using: .utf8)!) }

    public init() {}

    public struct Point: Sendable {
        public var step: Int
        public var loss: Float
        public var trainBitAccuracy: Float
        public var evalBitAccuracy: Float
        public var seconds: Double
    }

    public struct Report: Sendable {
        public var history: [Point] = []
        public var finalEvalBitAccuracy: Float = 0
        public var meanResidual: Float = 0
        public var seconds: Double = 0
    }

    func imageScale(at step: Int) -> Float {
        let s = step - imageLossDelay
        if s <= 0 { return 0 }
        return imageRampSteps <= 0 ? imageScale : imageScale * min(Float(s) / Float(imageRampSteps), 1)
    }

    /// Evaluation on held-out secrets/images: mean bit accuracy and mean |residual|.
    public func evaluate(_ exe: Executable, _ store: inout ParameterStore) throws -> (accuracy: Float, residual: Float) {
        var acc: Float = 0, res: Float = 0
        for k in 0..<evalBatches {
            let seed = UInt64(1_000_000 + k)
            let feeds: [String: Tensor] = [
                "secret": SyntheticImages.secrets(count: config.batch, bits: config.bits, seed: seed),
                "image": SyntheticImages.batch(count: config.batch, height: config.height, width: config.width, seed: seed),
                "seed": Tensor(Float(500_000 + k)), "secret_scale": Tensor(1), "image_scale": Tensor(1),
            ]
            let out = try exe.run(feeds, parameters: &store)
            acc += out["bit_accuracy"]!.scalar
            res += out["residual"]!.scalars.reduce(0) { $0 + abs($1) } / Float(out["residual"]!.count)
        }
        return (acc / Float(evalBatches), res / Float(evalBatches))
    }

    /// Trains from `store` (initialised when empty) and leaves the trained parameters in it.
    public func train(_ store: inout ParameterStore) throws -> Report {
        try config.validate()
        let options = CompileOptions(backend: backend)
        let stepGraph = try SmallModel.trainingStep(config)
        let evalGraph = try SmallModel.forward(config)
        let t0 = Date()
        let stepExe = try Compiler.compile(stepGraph, for: Signature.of(stepGraph), options: options)
        let evalExe = try Compiler.compile(evalGraph, for: Signature.of(evalGraph), options: options)
        log("compiled training step (\(stepGraph.values.count) values) and evaluation (\(evalGraph.values.count) values) for \(backend)")
        store.initializeMissing(for: stepGraph)
        var report = Report()
        var lossSum: Float = 0, accSum: Float = 0, window = 0
        for step in 1...max(steps, 1) {
            let seed = UInt64(step)
            let feeds: [String: Tensor] = [
                "secret": SyntheticImages.secrets(count: config.batch, bits: config.bits, seed: seed),
                "image": trainingImages?(seed, config.batch)
                    ?? SyntheticImages.batch(count: config.batch, height: config.height, width: config.width, seed: seed),
                "seed": Tensor(Float(step)),
                "secret_scale": Tensor(secretScale),
                "image_scale": Tensor(imageScale(at: step)),
                "learning_rate": Tensor(learningRate * (1 - (1 - finalLearningRateFraction) * Float(step - 1) / Float(max(steps - 1, 1)))),
                "step": Tensor(Float(step)),
            ]
            let out = try stepExe.run(feeds, parameters: &store)
            let loss = out["loss"]!.scalar
            guard loss.isFinite else { throw ModelError("loss became \(loss) at step \(step)") }
            lossSum += loss
            accSum += out["bit_accuracy"]!.scalar
            window += 1
            if step % evalEvery == 0 || step == steps {
                let (evalAcc, _) = try evaluate(evalExe, &store)
                let elapsed = Date().timeIntervalSince(t0)
                let p = Point(step: step, loss: lossSum / Float(window), trainBitAccuracy: accSum / Float(window),
                              evalBitAccuracy: evalAcc, seconds: elapsed)
                report.history.append(p)
                log(String(format: "step %5d/%d  loss %.4f  train bit acc %.3f  eval bit acc %.3f  image scale %.2f  %.1f s",
                           step, steps, p.loss, p.trainBitAccuracy, p.evalBitAccuracy, imageScale(at: step), elapsed))
                lossSum = 0; accSum = 0; window = 0
            }
        }
        let (acc, res) = try evaluate(evalExe, &store)
        report.finalEvalBitAccuracy = acc
        report.meanResidual = res
        report.seconds = Date().timeIntervalSince(t0)
        return report
    }
}
