import Foundation
import GraphRuntime
import GraphIR

/// What `stegastamp eval` measures: each photo encoded with several random 7-byte secrets at each
/// strength, damaged by each distortion of the suite, decoded; PSNR and SSIM of the encoded photo
/// against the cover; bit accuracy and the rate of messages recovered exactly through BCH.
public enum CodecEvaluation {
    public struct Row: Sendable {
        public var distortion: Distortion
        public var bitAccuracy: Double
        public var decodedRate: Double
    }

    public struct PerImage: Sendable {
        public var name: String
        public var width: Int, height: Int
        public var psnr: Double, ssim: Double
        /// Messages decoded per distortion, out of the secrets per photo.
        public var decoded: [Int]
    }

    /// How each message's strength is set: one for all, or searched per message.
    public enum Strength: Sendable {
        case fixed(Float)
        case auto(StrengthSearch)
    }

    public struct AtStrength: Sendable {
        /// The fixed strength, or the mean over messages of the strengths the search chose.
        public var strength: Float
        /// With `.auto`: the lowest and highest strength chosen, and how many messages did not
        /// survive the search's damage even at its maximum.
        public var auto: (lowest: Float, highest: Float, unsurvived: Int)?
        public var psnrMean: Double, psnrMin: Double, ssimMean: Double
        public var rows: [Row]
        public var perImage: [PerImage]
    }

    /// Secret k of photo i: 7 uniformly random bytes (text secrets would bias the bits: ASCII
    /// letters share their high bits).
    public static func secret(photo i: Int, index k: Int) -> [UInt8] {
        (0..<SecretCodec.standard.dataBytes).map { b in
            UInt8(truncatingIfNeeded: CounterRandom.bits(seed: 77, key: UInt64(i) << 16 | UInt64(k), counter: UInt64(b)))
        }
    }

    /// The decoder's logits in every view of one damaged photo: marked (with its message's bits and
    /// whether it was decoded) or, once per photo and damage, the unmarked cover. What the soft
    /// decision is calibrated on (`eval --logits`, `Benchmarks/soft-decision/`).
    public struct LogitRecord: Sendable, Encodable {
        public var photo: String
        public var secret: Int?
        /// Index into the strengths evaluated (nil: unmarked).
        public var strength: Int?
        public var distortion: Distortion
        public var bits: [UInt8]?
        public var decoded: Bool?
        public var views: [[Float]]
    }

    public static func run(model: WatermarkModel, files: [String], secretsPerImage: Int, strengths: [Strength],
                           distortions: [Distortion] = Distortion.suite, views: [DecoderView] = DecoderView.search, soft: SoftDecision? = .standard,
                           refinement: Refinement? = nil, autoRefinementStrength: Float? = nil,
                           dump: ((LogitRecord) throws -> Void)? = nil,
                           progress: (String) -> Void = { _ in }) throws -> [AtStrength] {
        precondition(secretsPerImage >= 1 && !strengths.isEmpty)
        let codec = SecretCodec.standard
        var bitsRight = [[Int]](repeating: [Int](repeating: 0, count: distortions.count), count: strengths.count)
        var decodedCount = bitsRight
        var perImage = [[PerImage]](repeating: [], count: strengths.count)
        var chosen = [[Float]](repeating: [], count: strengths.count), unsurvived = [Int](repeating: 0, count: strengths.count)
        for (i, path) in files.enumerated() {
            let cover = try ImageIO.read(path: path)
            let name = URL(fileURLWithPath: path).lastPathComponent
            var psnr = [Double](repeating: 0, count: strengths.count), ssim = psnr
            var decoded = [[Int]](repeating: [Int](repeating: 0, count: distortions.count), count: strengths.count)
            for k in 0..<secretsPerImage {
                let data = secret(photo: i, index: k)
                let bits = codec.encode(data: data)
                let residual = try model.residuals([cover], bits: bits)[0]
                var refined: [Float: WatermarkModel.Residual] = [:]  // a fixed strength and auto may refine at the same one
                for (si, choice) in strengths.enumerated() {
                    // Refinement is made for one strength: one refined residual per strength (the
                    // search, as encode's, scales the one refined at `autoRefinementStrength`,
                    // by default the model's).
                    var at = autoRefinementStrength ?? model.defaultStrength
                    if case .fixed(let s) = choice { at = s }
                    let used = try refined[at] ?? refinement.map { try model.refine(residual, image: cover, bits: bits, strength: at, $0).residual } ?? residual
                    refined[at] = used
                    let encoded: RGBImage
                    switch choice {
                    case .fixed(let s):
                        encoded = Embedding.apply(used.pixels, to: cover, strength: s)
                    case .auto(let search):
                        let found = try search.run(model: model, cover: cover, residual: used, expected: bits)
                        encoded = found.image
                        chosen[si].append(found.strength)
                        if !found.survived { unsurvived[si] += 1 }
                    }
                    psnr[si] += Quality.psnr(encoded, cover) / Double(secretsPerImage)
                    ssim[si] += try Quality.ssim(encoded, cover) / Double(secretsPerImage)
                    for (d, distortion) in distortions.enumerated() {
                        let damaged = try distortion.apply(encoded, seed: UInt64(i * 1000 + k))
                        let read = try model.read(damaged, views: views, soft: soft)
                        bitsRight[si][d] += zip(read.bits, bits).filter { $0 == $1 }.count
                        if read.data == data { decodedCount[si][d] += 1; decoded[si][d] += 1 }
                        if let dump {
                            try dump(LogitRecord(photo: name, secret: k, strength: strengths.count > 1 ? si : 0, distortion: distortion,
                                                 bits: bits, decoded: read.data == data, views: try model.allViewLogits(damaged, views: views)))
                            if si == 0, k == 0 {
                                let bare = try distortion.apply(cover, seed: UInt64(i * 1000 + k))
                                try dump(LogitRecord(photo: name, secret: nil, strength: nil, distortion: distortion, bits: nil, decoded: nil,
                                                     views: try model.allViewLogits(bare, views: views)))
                            }
                        }
                    }
                }
            }
            for si in strengths.indices {
                perImage[si].append(PerImage(name: name, width: cover.width, height: cover.height, psnr: psnr[si], ssim: ssim[si], decoded: decoded[si]))
            }
            progress("evaluated \(i + 1)/\(files.count): \(name) (\(cover.width)x\(cover.height))")
        }
        let messages = Double(files.count * secretsPerImage)
        return strengths.enumerated().map { si, choice in
            let p = perImage[si]
            var strength: Float, auto: (Float, Float, Int)? = nil
            switch choice {
            case .fixed(let s): strength = s
            case .auto:
                strength = chosen[si].reduce(0, +) / Float(chosen[si].count)
                auto = (chosen[si].min()!, chosen[si].max()!, unsurvived[si])
            }
            return AtStrength(
                strength: strength, auto: auto, psnrMean: p.map(\.psnr).reduce(0, +) / Double(p.count), psnrMin: p.map(\.psnr).min() ?? 0,
                ssimMean: p.map(\.ssim).reduce(0, +) / Double(p.count),
                rows: distortions.enumerated().map { d, dist in
                    Row(distortion: dist, bitAccuracy: Double(bitsRight[si][d]) / (messages * Double(codec.totalBits)),
                        decodedRate: Double(decodedCount[si][d]) / messages)
                },
                perImage: p)
        }
    }

    /// Decoded rate against PSNR, one series per distortion, over the strengths swept.
    public static func sweepPlot(_ results: [AtStrength]) -> RGBImage {
        guard let first = results.first else { return Plots.render([]) }
        let sorted = results.sorted { $0.psnrMean < $1.psnrMean }
        let groups: [(String, [Distortion])] = [
            ("decoded rate vs PSNR dB: clean, jpeg", [.none, .jpeg90, .jpeg70, .jpeg50]),
            ("decoded rate vs PSNR dB: blur, noise, colour", [.blur, .noise, .brighter, .darker]),
            ("decoded rate vs PSNR dB: geometry", [.rescale, .perspective, .crop, .rotate]),
            ("decoded rate vs PSNR dB: print-like", [.print]),
        ]
        let panels = groups.map { title, ds in
            Plots.Panel(title, ds.compactMap { d in
                guard let idx = first.rows.firstIndex(where: { $0.distortion == d }) else { return nil }
                return Plots.Series(d.rawValue, sorted.map { ($0.psnrMean, $0.rows[idx].decodedRate) })
            }, xLabel: "dB", yRange: 0...1)
        }
        return Plots.render(panels)
    }
}

extension Distortion: Encodable {}
