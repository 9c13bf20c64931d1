import Foundation

/// Watches every step for the failure that froze an earlier TensorFlow port unseen: a decoder that
/// never leaves chance. After the warm-up (`alarmSteps` steps) it fires when
/// - the secret loss has stayed within 0.01 of ln 2 = 0.6931 for `alarmSteps` steps in a row,
/// - the bit accuracy averaged over the last `alarmSteps` steps is below 0.53 (chance is 0.5), or
/// - the decoder's probabilities have collapsed (standard deviation < 0.01) for max(10, alarmSteps / 10) steps.
/// Each alarm is reported once when it starts, then every 5 x alarmSteps steps while it lasts.
public struct TrainingAlarm: Sendable {
    public enum Kind: String, Sendable { case secretLossAtChance = "secret_loss_at_ln2", accuracyAtChance = "bit_accuracy_at_chance", collapsed = "probabilities_collapsed" }

    public let window: Int
    var atLn2 = 0, collapsed = 0
    var accuracies: [Float] = []
    var accuracySum: Float = 0
    var lastReported: [Kind: Int] = [:]
    public private(set) var fired: [(step: Int, kind: Kind)] = []

    public init(window: Int) { self.window = window }

    public static let ln2: Float = 0.693_147_2

    /// Feeds one step; returns the alarms to report now.
    public mutating func observe(step: Int, secretLoss: Float, bitAccuracy: Float, probabilityStd: Float?) -> [Kind] {
        atLn2 = abs(secretLoss - Self.ln2) < 0.01 ? atLn2 + 1 : 0
        if let p = probabilityStd { collapsed = p < 0.01 ? collapsed + 1 : 0 }
        accuracies.append(bitAccuracy)
        accuracySum += bitAccuracy
        if accuracies.count > window { accuracySum -= accuracies.removeFirst() }
        guard step > window else { return [] }
        var active: [Kind] = []
        if atLn2 >= window { active.append(.secretLossAtChance) }
        if accuracies.count == window, accuracySum / Float(window) < 0.53 { active.append(.accuracyAtChance) }
        if collapsed >= max(10, window / 10) { active.append(.collapsed) }
        var report: [Kind] = []
        for k in active where lastReported[k].map({ step - $0 >= 5 * window }) ?? true {
            lastReported[k] = step
            fired.append((step, k))
            report.append(k)
        }
        for k in [Kind.secretLossAtChance, .accuracyAtChance, .collapsed] where !active.contains(k) { lastReported[k] = nil }
        return report
    }

    /// What the alarm means and what to try, for a person reading the log.
    public static func message(_ k: Kind, step: Int, window: Int) -> String {
        let what: String
        switch k {
        case .secretLossAtChance:
            what = "the secret loss has stayed within 0.01 of ln 2 = 0.6931 for \(window) steps: the decoder is guessing every bit."
        case .accuracyAtChance:
            what = "the bit accuracy of the last \(window) steps averages below 0.53: the decoder reads nothing (chance is 0.5)."
        case .collapsed:
            what = "the decoder's probabilities have collapsed (standard deviation < 0.01): it outputs the same value for every bit and image."
        }
        let bar = String(repeating: "!", count: 78)
        return """
            \(bar)
            ALARM at step \(step): \(what)
            This is how a training run that will never learn looks (an earlier TensorFlow port sat at loss 0.6931
            for its whole run). What to try: restart with another --seed; change --learning-rate (1e-4 is the
            original's; too high collapses, 0 cannot learn); lengthen the secret-only phase (--no-image-loss-steps)
            or lower the image-loss scales so the decoder learns before the residual is squeezed; check that
            --images holds varied photos.
            \(bar)
            """
    }
}
