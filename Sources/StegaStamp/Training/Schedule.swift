import Foundation
import GraphIR

/// The host-side values of one training step, as `train.py` computes them from `global_step`
/// (the number of steps already taken, from 0). They reach the compiled steps as graph inputs.
public struct StepValues: Equatable, Sendable {
    public var step: Int
    /// train.py: `global_step < no_im_loss_steps`: the secret loss alone, no critic step.
    public var secretOnly: Bool
    public var l2LossScale: Float
    public var perceptualLossScale: Float
    public var secretLossScale: Float
    public var gLossScale: Float
    public var l2EdgeGain: Float
    /// min(rnd_trans * step / ramp, rnd_trans): the bound of the per-step displacement draw.
    public var rndTransBound: Float
    /// The bound of each example's zoom draw (`--rnd-zoom`, ramped like rnd_trans; 0: none).
    public var rndZoomBound: Float = 0
    public var learningRate: Float
    /// The step the transform net's ramps read (scaled by the curriculum's augmentation strength).
    public var augmentationStep: Float
    /// Curriculum: the share of each secret's bits that are random (1: all, the original).
    public var randomBitShare: Float
}

/// train.py's schedules, plus the optional curriculum.
public struct Schedule: Sendable {
    public let config: TrainingConfig
    public init(_ config: TrainingConfig) { self.config = config }

    /// train.py's ramp: min(scale * step / ramp, scale).
    public static func ramp(_ scale: Float, _ step: Int, _ ramp: Int) -> Float {
        min(scale * Float(step) / Float(ramp), scale)
    }

    public func values(at step: Int) -> StepValues {
        let c = config
        let secretOnly = step < c.noImageLossSteps
        var edge: Float = 0
        if step > c.l2EdgeDelay { edge = min(c.l2EdgeGain * Float(step - c.l2EdgeDelay) / Float(c.l2EdgeRamp), c.l2EdgeGain) }
        var lr = c.learningRate
        if c.finalLearningRateFraction < 1, step >= c.learningRateDecayStart {
            let span = max(c.steps - 1 - c.learningRateDecayStart, 1)
            let f = min(Float(step - c.learningRateDecayStart) / Float(span), 1)
            lr *= 1 - (1 - c.finalLearningRateFraction) * f
        }
        var v = StepValues(
            step: step, secretOnly: secretOnly,
            // The secret-only phase minimises the secret loss alone (train_secret_op: unscaled).
            l2LossScale: secretOnly ? 0 : Self.ramp(c.l2LossScale, step, c.l2LossRamp),
            perceptualLossScale: secretOnly ? 0 : Self.ramp(c.perceptualLossScale, step, c.perceptualLossRamp),
            secretLossScale: secretOnly ? 1 : Self.ramp(c.secretLossScale, step, c.secretLossRamp),
            gLossScale: secretOnly || !c.gan ? 0 : Self.ramp(c.gLossScale, step, c.gLossRamp),
            l2EdgeGain: secretOnly ? 0 : edge,
            rndTransBound: Self.ramp(c.rndTrans, step, c.rndTransRamp),
            learningRate: lr, augmentationStep: Float(step), randomBitShare: 1)
        v.rndZoomBound = Self.ramp(c.rndZoom ?? 0, step, c.rndTransRamp)
        if c.curriculum { Curriculum.apply(&v, steps: c.steps) }
        return v
    }
}

/// The curriculum of the notes this project comes from, over the run's fraction f = step / steps:
/// - f < 0.3: "constant secrets": the share of random bits per secret goes 0.2, 0.4, 0.6, 0.9 in
///   four equal stages (the other bits keep one run-wide constant pattern, easy to learn first);
///   augmentation at half strength; learning rate x1.
/// - 0.3 <= f < 0.6: "gradually random": the share rises linearly 0.9 -> 1; augmentation ramps
///   from half to full strength.
/// - f >= 0.6: random secrets, full augmentation; the learning rate x0.5 to f = 0.85, x0.1 after.
public enum Curriculum {
    public static func apply(_ v: inout StepValues, steps: Int) {
        let f = Float(v.step) / Float(max(steps, 1))
        let strength: Float
        if f < 0.3 {
            v.randomBitShare = [0.2, 0.4, 0.6, 0.9][min(Int(f / 0.075), 3)]
            strength = 0.5
        } else if f < 0.6 {
            let g = (f - 0.3) / 0.3
            v.randomBitShare = 0.9 + 0.1 * g
            strength = 0.5 + 0.5 * g
        } else {
            v.randomBitShare = 1
            strength = 1
            v.learningRate *= f < 0.85 ? 0.5 : 0.1
        }
        v.augmentationStep = Float(v.step) * strength
        v.rndTransBound *= strength
        v.rndZoomBound *= strength
    }
}

/// The random draws of global step t: a function of (seed, t) and the example's index alone, so
/// runs reproduce, resume exactly, and a data-parallel run can take slices of the same batch.
public enum StepRandom {
    static let secretKey: UInt64 = 0x5EC7, warpKey: UInt64 = 0xA4B, patternKey: UInt64 = 0xC0457

    static func stream(_ seed: Int, _ step: Int) -> UInt64 {
        CounterRandom.mix(UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step))
    }

    /// [count, bits] of 0/1 for examples `offset ..< offset + count` of step `step`.
    public static func secrets(seed: Int, step: Int, bits: Int, offset: Int = 0, count: Int, randomShare: Float = 1) -> Tensor {
        let s = stream(seed, step)
        var out = [Float](repeating: 0, count: count * bits)
        for i in 0..<count {
            let example = UInt64(offset + i)
            for j in 0..<bits {
                let counter = example * UInt64(bits) + UInt64(j)
                var bit = CounterRandom.bits(seed: s, key: secretKey, counter: counter) & 1
                if randomShare < 1 {
                    // A fixed subset of positions (the first by a run-wide random order) stays constant.
                    let rank = CounterRandom.uniform(seed: UInt64(seed), key: patternKey, counter: UInt64(j))
                    if rank >= randomShare { bit = CounterRandom.bits(seed: UInt64(seed), key: patternKey + 1, counter: UInt64(j)) & 1 }
                }
                out[i * bits + j] = Float(bit)
            }
        }
        return Tensor(shape: [count, bits], scalars: out)
    }

    /// train.py: `rnd_tran = U(0, 1) * bound`, `M = get_rand_transform_matrix(width, floor(width * rnd_tran), batch)`.
    public static func perspective(seed: Int, step: Int, size: Int, bound: Float, zoom: Float = 0, batch: Int) -> Tensor {
        let s = stream(seed, step)
        let u = CounterRandom.uniform(seed: s, key: warpKey, counter: 0)
        let displacement = (Double(size) * Double(u * bound)).rounded(.down)
        return PerspectiveMatrices.random(size: size, displacement: displacement, zoom: Double(zoom), batch: batch, seed: s)
    }

    /// The graph's noise seed of step t (a float input: kept below 2^24 so it is exact).
    public static func graphSeed(seed: Int, step: Int) -> Float {
        Float(stream(seed, step) % (1 << 24))
    }
}
