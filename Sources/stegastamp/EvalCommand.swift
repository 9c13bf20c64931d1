import ArgumentParser
import Foundation
import GraphRuntime
import StegaStamp

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Encode every photo of a directory with random secrets, damage it with a fixed suite, decode, and report.",
        discussion: """
            Photos keep their own resolution. Prints PSNR and SSIM of the encoded photos, then bit accuracy and the rate of \\
            messages decoded exactly (BCH) after each damage: none, real JPEG q90/70/50, Gaussian blur, noise 0.02, \\
            brightness/contrast up and down, 50 % downscale + upscale, perspective 2 %, crop 5 % per border, rotation 2 degrees, \\
            and a combined print-like damage (perspective + blur + colour + noise + JPEG q70). Decoding is `decode`'s: the plain \
            view, then views zoomed out, turned and moved a little (BCH judges; --plain-view for the plain view alone), then the soft \
            decision over every view (--hard-decision: none). --sweep repeats it at several \\
            strengths (a table of PSNR against decoded rate, and a PNG plot). Writes everything as JSON to --out.
            """)
    @Option(help: "Model; default: the shipped model.") var model: String?
    @Option(help: "Directory of photos (PNG or JPEG).") var images: String
    @Option(help: "Residual strength, or 'auto' (per message, the lowest that survives --survive); default: the model's.") var strength: StrengthSetting?
    @Option(help: "Random 7-byte secrets per photo.") var secrets = 3
    @Option(help: "Also evaluate at these strengths, comma-separated (e.g. 0.25,0.5,1,2,auto).") var sweep: String?
    @OptionGroup var auto: AutoStrengthOptions
    @Option(help: "PNG plot of the sweep (decoded rate against PSNR).") var plot = "eval-sweep.png"
    @Option(help: "JSON results file.") var out = "eval.json"
    @Option(help: "Use at most this many photos.") var limit: Int?
    @Option(help: "interpreter or cpu.") var backend: Backend = .cpu
    @Flag(help: "Decode the plain view only (no search over slightly cropped, turned and moved views).") var plainView = false
    @Option(help: "Also write the decoder's logits in every view of every damaged photo, marked and unmarked, as JSON lines (what the soft decision is calibrated on; see Benchmarks/soft-decision).") var logits: String?
    @Flag(help: "BCH on the hard bits only (no soft decision over the least reliable bits), as decode --hard-decision.") var hardDecision = false
    @Option(help: "Refine each residual with this many gradient steps through the decoder (0: off; default: the model's).") var refine: Int?
    @Option(help: "Damaged views the refinement decodes per step; default \(Refinement(steps: 1).views).") var refineViews: Int?
    @Option(help: "Every how many of the refinement's views has its colour changed; default \(Refinement(steps: 1).colourEvery).") var refineColourEvery: Int?
    @Option(help: "The refinement's first step as a share of the residual's norm (decaying linearly to a tenth of it); default \(Refinement(steps: 1).rate).") var refineRate: Double?
    @Option(help: "Corner displacement of the refinement's perspective warps, as a share of the model's side; default \(Refinement(steps: 1).warp).") var refineWarp: Double?

    func run() throws {
        guard secrets >= 1 else { throw CLIError("--secrets must be at least 1") }
        if let refine, refine < 0 { throw CLIError("--refine must be 0 or more, got \(refine)") }
        var swept: [StrengthSetting] = []
        if let sweep {
            for part in sweep.split(separator: ",") {
                guard let v = StrengthSetting(argument: part.trimmingCharacters(in: .whitespaces)) else { throw CLIError("--sweep: '\(part)' is neither a positive number nor auto") }
                swept.append(v)
            }
            if swept.isEmpty { throw CLIError("--sweep: no strengths") }
        }
        var search = try auto.search()
        if hardDecision { search.soft = nil }
        let m = try loadModel(model, backend: backend)
        guard m.bits == SecretCodec.standard.totalBits else { throw CLIError("\(m.path): the model carries \(m.bits) bits, not 100") }
        var (files, isDir) = try imagePaths(images)
        guard isDir else { throw CLIError("--images must be a directory") }
        if let limit { files = Array(files.prefix(max(limit, 1))) }
        let steps = refine ?? m.defaultRefinement
        func choice(_ s: StrengthSetting) -> CodecEvaluation.Strength {
            if case .fixed(let v) = s { return .fixed(v) }
            return .auto(search)
        }
        let main = strength ?? .fixed(m.defaultStrength)
        let strengths = ([main] + swept.filter { $0.label != main.label }).map(choice)
        var refinement = Refinement(steps: steps)
        if let refineViews {
            guard refineViews >= 1 else { throw CLIError("--refine-views must be at least 1, got \(refineViews)") }
            refinement.views = refineViews
        }
        if let refineColourEvery {
            guard refineColourEvery >= 1 else { throw CLIError("--refine-colour-every must be at least 1, got \(refineColourEvery)") }
            refinement.colourEvery = refineColourEvery
        }
        if let refineRate {
            guard refineRate > 0, refineRate.isFinite else { throw CLIError("--refine-rate must be positive, got \(refineRate)") }
            refinement.rate = refineRate
        }
        if let refineWarp {
            guard refineWarp >= 0, refineWarp < 0.25 else { throw CLIError("--refine-warp must be in 0..<0.25, got \(refineWarp)") }
            refinement.warp = refineWarp
        }
        let t0 = Date()
        let results: [CodecEvaluation.AtStrength]
        var logitLines = Data()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        do {
            results = try CodecEvaluation.run(model: m, files: files, secretsPerImage: secrets, strengths: strengths,
                                              views: plainView ? [.plain] : DecoderView.search, soft: hardDecision ? nil : .standard,
                                              refinement: steps > 0 ? refinement : nil, autoRefinementStrength: auto.refineAt,
                                              dump: logits == nil ? nil : { logitLines += try encoder.encode($0) + Data([0x0A]) }) {
                FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!)
            }
        } catch let e as CLIError { throw e } catch { throw CLIError("\(error)") }
        if let logits {
            do { try logitLines.write(to: URL(fileURLWithPath: logits), options: .atomic) } catch { throw CLIError("\(logits): cannot write: \(error)") }
            FileHandle.standardError.write("wrote \(logits)\n".data(using: .utf8)!)
        }
        let r = results[0]
        let messages = files.count * secrets
        print(String(format: "%d photos x %d secrets, strength %@: PSNR %.2f dB mean (min %.2f), SSIM %.4f mean; %.1f s",
                     files.count, secrets, Self.label(r), r.psnrMean, r.psnrMin, r.ssimMean, Date().timeIntervalSince(t0)))
        print("distortion                  bit accuracy   decoded")
        for row in r.rows {
            let n = Int((row.decodedRate * Double(messages)).rounded())
            print(row.distortion.name.padding(toLength: 27, withPad: " ", startingAt: 0) + String(format: " %12.4f %6d/%d", row.bitAccuracy, n, messages))
        }
        if results.count > 1 {
            let sorted = results.sorted { $0.strength < $1.strength }
            print("\nstrength sweep: decoded rate per damage")
            print("strength   PSNR    SSIM  " + r.rows.map { $0.distortion.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
            for x in sorted {
                print(Self.label(x, short: true).padding(toLength: 8, withPad: " ", startingAt: 0) + String(format: " %6.2f %7.4f  ", x.psnrMean, x.ssimMean) + x.rows.map { String(format: "%-12.3f", $0.decodedRate) }.joined())
            }
            do { try ImageIO.write(CodecEvaluation.sweepPlot(results), path: plot) } catch { throw CLIError("\(error)") }
            print("wrote \(plot)")
        }
        func encode(_ x: CodecEvaluation.AtStrength) -> [String: Any] {
            var o: [String: Any] = ["strength": Double(x.strength), "psnr_mean": x.psnrMean, "psnr_min": x.psnrMin, "ssim_mean": x.ssimMean,
             "summary": x.rows.map { ["distortion": $0.distortion.name, "key": $0.distortion.rawValue, "bit_accuracy": $0.bitAccuracy, "decoded_rate": $0.decodedRate] },
             "per_image": x.perImage.map { p in
                 ["image": p.name, "width": p.width, "height": p.height, "psnr": p.psnr, "ssim": p.ssim,
                  "decoded": Dictionary(uniqueKeysWithValues: zip(x.rows.map(\.distortion.rawValue), p.decoded))] as [String: Any]
             }]
            if let a = x.auto {
                o["auto"] = ["survive": auto.survive, "margin": Double(auto.autoMargin), "seeds": auto.autoSeeds, "refined_at": Double(auto.refineAt ?? m.defaultStrength), "mean_strength": Double(x.strength), "lowest": Double(a.lowest), "highest": Double(a.highest), "unsurvived": a.unsurvived]
            }
            return o
        }
        var json = encode(r)
        json["model"] = m.path
        json["images"] = files.count
        json["secrets_per_image"] = secrets
        if results.count > 1 { json["sweep"] = results.sorted { $0.strength < $1.strength }.map(encode) }
        do {
            let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: out), options: .atomic)
        } catch { throw CLIError("\(out): cannot write: \(error.localizedDescription)") }
        print("wrote \(out)")
    }

    /// "0.32", or "auto (mean 0.27, 0.18-0.41)".
    static func label(_ x: CodecEvaluation.AtStrength, short: Bool = false) -> String {
        guard let a = x.auto else { return String(format: "%.3g", x.strength) }
        if short { return "auto" }
        return String(format: "auto (mean %.3g, %.3g-%.3g%@)", x.strength, a.lowest, a.highest, a.unsurvived > 0 ? ", \(a.unsurvived) surviving no strength up to the maximum" : "")
    }
}
