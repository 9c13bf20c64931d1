/// `--strength auto`: per photo, the lowest strength at which the encoded photo still gives back
/// its message after each of the chosen damages. The encoder runs once; each trial only re-adds the
/// residual at another strength, damages the result and reads it as `decode` does. Trials double the strength from
/// `start` until one decodes, then bisect (in log scale) between the last failure and the first
/// success; the answer is that success times `margin`, so a damage a little worse than the one
/// searched with still decodes.
public struct StrengthSearch: Sendable {
    /// Damage chains (each applied left to right); a trial passes when every one decodes.
    public var survive: [[Distortion]]
    public var start: Float = 0.25
    public var maximum: Float = 4
    public var bisections = 5
    public var margin: Float = 1.15
    /// Damage seeds every trial must pass (random damages differ per seed). Far from the seeds
    /// `eval` damages with (photo x 1000 + secret), so evaluating `auto` does not test the very
    /// draws the search passed.
    public var seeds: [UInt64] = Self.seeds(2)
    /// The first `count` seeds of the search's own series.
    public static func seeds(_ count: Int) -> [UInt64] { (0..<UInt64(max(count, 0))).map { 0x5EA2_0001 + $0 } }
    /// The decoder's views (`decode`'s search by default).
    public var views: [DecoderView] = DecoderView.search
    /// The soft decision of the reads (`decode`'s by default; nil: hard bits only).
    public var soft: SoftDecision? = .standard

    public init(survive: [[Distortion]]) { self.survive = survive }

    public struct Result: Sendable {
        public var strength: Float
        public var image: RGBImage
        /// False when no strength up to `maximum` survived every damage (the photo then gets the
        /// trial that survived the most).
        public var survived: Bool
        public var trials: Int
    }

    /// `expected` is the message's bit string (the decoder's output must equal it after BCH
    /// correction when the model carries the standard 100 bits; exactly, otherwise).
    public func run(model: WatermarkModel, cover: RGBImage, residual: WatermarkModel.Residual, expected: [UInt8]) throws -> Result {
        var trials = 0
        // Without a strength that survives every damage, the photo gets the trial that survived
        // the most of them (the lowest such strength): a residual scaled far past what the model
        // makes clips, and can read worse than a weaker one.
        var best: (passed: Int, strength: Float, image: RGBImage)? = nil
        func decodes(_ s: Float) throws -> (Bool, RGBImage) {
            trials += 1
            let img = Embedding.apply(residual.pixels, to: cover, strength: s)
            var passed = 0
            for chain in survive {
                var ok = true
                for seed in seeds where ok {
                    let damaged = try Distortion.apply(chain, to: img, seed: seed)
                    ok = Self.matches(try model.read(damaged, views: views, soft: soft), expected)
                    if !chain.contains(where: \.isRandom) { break }
                }
                if ok { passed += 1 }
            }
            if best == nil || passed > best!.passed || (passed == best!.passed && s < best!.strength) { best = (passed, s, img) }
            return (passed == survive.count, img)
        }
        var s = min(start, maximum)
        var failed: Float? = nil
        var (ok, img) = try decodes(s)
        if ok {
            // Below start: halve until it fails (at most 4 times).
            for _ in 0..<4 {
                let (lower, limg) = try decodes(s / 2)
                if !lower { failed = s / 2; break }
                (s, img) = (s / 2, limg)
            }
        } else {
            failed = s
            while !ok && s < maximum {
                s = min(s * 2, maximum)
                (ok, img) = try decodes(s)
                if !ok { failed = s }
            }
            if !ok { return Result(strength: best!.strength, image: best!.image, survived: false, trials: trials) }
        }
        if var lo = failed {
            var hi = s
            for _ in 0..<bisections {
                let mid = (lo * hi).squareRoot()
                let (good, mimg) = try decodes(mid)
                if good { (hi, img) = (mid, mimg) } else { lo = mid }
            }
            s = hi
        }
        let chosen = min(s * margin, maximum)
        return Result(strength: chosen, image: Embedding.apply(residual.pixels, to: cover, strength: chosen), survived: true, trials: trials)
    }

    /// Whether a reading gives the message of `expected`: the corrected data when the model
    /// carries the standard 100 bits, the bits exactly otherwise.
    static func matches(_ reading: WatermarkModel.Reading, _ expected: [UInt8]) -> Bool {
        if reading.bits.count == SecretCodec.standard.totalBits, expected.count == reading.bits.count {
            guard let got = reading.data, let want = try? SecretCodec.standard.decodeData(expected) else { return false }
            return got == want.data
        }
        return reading.bits == expected
    }
}

extension Distortion {
    /// Whether the damage draws random numbers (perspective, noise...).
    public var isRandom: Bool { [.noise, .perspective, .rotate, .print].contains(self) }
}
