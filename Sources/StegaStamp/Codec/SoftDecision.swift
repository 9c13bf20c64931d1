import Foundation

/// Soft-decision decoding of the BCH packet (Chase II): when the hard bits (logit > 0) hold more
/// errors than the code corrects, the errors mostly sit on the bits the decoder was least sure of.
/// Chase flips every subset of the `flips` least reliable bits, lets BCH correct each, and keeps
/// the codeword closest to the logits: the least total |logit| over the bits it disagrees with.
///
/// Every extra trial is one more chance for noise to land near a codeword, so a candidate is taken
/// only when that distance, in units of the word's median |logit|, is at most `maxCost`: errors
/// on bits the decoder was sure of are not believed. The 9 bits after the codeword (the parity's
/// padding and the trailing bits) are always written as 0, so any codeword, the hard bits' own
/// included, is believed only while they read as 0: words of noise, which the hard decoder takes
/// 1.4e-3 of the time (`noiseRate`), then pass far less often.
public struct SoftDecision: Sendable, Equatable {
    /// How many of the least reliable bits are flipped in every combination (2^flips trials).
    public var flips: Int
    /// The largest distance accepted, in median |logit| units.
    public var maxCost: Float
    /// Whether the padding bits read as 1 count in the distance.
    public var countPadding: Bool
    /// The most padding read as 1 (total |logit| in median units) any codeword is believed with,
    /// the hard bits' included: marked photos read their padding as 0 (0.6 at most over 380
    /// decoded reads), while the unmarked photos the hard decoder took read 2.3-5.4.
    public var maxPadding: Float = 1

    /// 8 flips (256 trials), distance at most 3.5 with the padding counted, padding at most 1.
    /// Calibrated on the evaluation photos (`Benchmarks/soft-decision/`, where the figures are).
    public static let standard = SoftDecision(flips: 8, maxCost: 3.5)

    public init(flips: Int, maxCost: Float, countPadding: Bool = true) {
        precondition((0...12).contains(flips) && maxCost >= 0, "soft decision: flips 0...12, cost >= 0")
        self.flips = flips
        self.maxCost = maxCost
        self.countPadding = countPadding
    }

    public struct Candidate: Sendable, Equatable {
        public var data: [UInt8]
        /// Bits of the packet that differ from the hard decision.
        public var changed: Int
        /// Their total |logit| over the word's median |logit|.
        public var cost: Float
    }

    /// The closest codeword the trials find, whatever its cost (nil: none corrects).
    public func closest(_ logits: [Float], codec: SecretCodec) -> Candidate? {
        let length = 8 * codec.dataBytes + codec.code.eccBits
        guard logits.count >= codec.totalBits else { return nil }
        let (magnitude, scale) = Self.reliability(logits, codec: codec)
        let hard: [UInt8] = logits[0..<length].map { $0 > 0 ? 1 : 0 }
        // The packet's padding and the trailing bits are always written as 0: reading one as 1 is
        // an error every candidate shares.
        let padding = countPadding ? self.padding(logits, codec: codec) * scale : 0
        let weakest = (0..<length).sorted { magnitude[$0] < magnitude[$1] }.prefix(flips)
        var best: Candidate?
        for mask in 0..<(1 << weakest.count) {
            var trial = hard
            for (k, p) in weakest.enumerated() where mask >> k & 1 == 1 { trial[p] ^= 1 }
            guard codec.code.correct(&trial) != nil else { continue }
            var changed = 0, cost = padding
            for i in 0..<length where trial[i] != hard[i] { changed += 1; cost += magnitude[i] }
            cost /= scale
            if best == nil || cost < best!.cost {
                best = Candidate(data: SecretCodec.bytes(trial[0..<(8 * codec.dataBytes)]), changed: changed, cost: cost)
            }
        }
        return best
    }

    /// The padding read as 1: total |logit| of the always-zero bits read as 1, in units of the
    /// word's median |logit|.
    public func padding(_ logits: [Float], codec: SecretCodec) -> Float {
        guard logits.count >= codec.totalBits else { return .infinity }
        let (magnitude, scale) = Self.reliability(logits, codec: codec)
        var sum: Float = 0
        for i in (8 * codec.dataBytes + codec.code.eccBits)..<codec.totalBits where logits[i] > 0 { sum += magnitude[i] }
        return sum / scale
    }

    /// Whether a word whose hard bits corrected is believed: its padding reads as 0.
    public func believesHard(_ logits: [Float], codec: SecretCodec) -> Bool {
        padding(logits, codec: codec) <= maxPadding
    }

    /// The closest codeword when it is close enough to believe.
    public func decode(_ logits: [Float], codec: SecretCodec) -> Candidate? {
        guard believesHard(logits, codec: codec), let c = closest(logits, codec: codec), c.cost <= maxCost else { return nil }
        return c
    }

    /// The fraction of `trials` words of independent standard normal logits (pure noise) that
    /// `accepts` takes: the false-positive rate of a rule. Deterministic for a seed.
    public static func noiseRate(codec: SecretCodec, trials: Int, seed: UInt64 = 1, accepts: ([Float]) -> Bool) -> Double {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func uniform() -> Double {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return (Double(state >> 11) + 0.5) / Double(1 << 53)
        }
        var accepted = 0
        for _ in 0..<trials {
            let logits = (0..<codec.totalBits).map { _ in Float((-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())) }
            if accepts(logits) { accepted += 1 }
        }
        return Double(accepted) / Double(trials)
    }

    /// |logit| of each bit and the word's median |logit|, the unit of every distance.
    static func reliability(_ logits: [Float], codec: SecretCodec) -> (magnitude: [Float], scale: Float) {
        let magnitude = logits[0..<codec.totalBits].map { abs($0) }
        return (magnitude, max(median(magnitude), 1e-12))
    }

    static func median(_ x: [Float]) -> Float {
        let s = x.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
