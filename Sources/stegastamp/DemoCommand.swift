import ArgumentParser
import Foundation
import GraphAutodiff
import GraphIR
import GraphPasses
import GraphRuntime
import StegaStamp

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The default job: train the real StegaStamp networks from scratch, then hide a message in a real photo.",
        discussion: """
            1. Trains the StegaStamp networks (encoder, STN decoder, critic, transform net) with the tiny preset \
            (`stegastamp train --preset tiny`) on the training photos (synthetic photos without --photos) and checks \
            the held-out bit accuracy (>= 0.7). 2. With --photos (scripts/demo.sh passes the photos \
            scripts/fetch-photos.sh fetched): hides a message in an evaluation photo (at the photo's resolution) with the \
            shipped model (Models/; or --model), damages it with real JPEG, decodes it and says what happened, including \
            failure. Without a shipped model, the 100-bit small model is trained (small preset) into --small-model.
            """)
    @Option(help: "Training steps of the tiny StegaStamp run.") var steps = 400
    @Option(help: "Photo cache with train/ and eval/ (from scripts/fetch-photos.sh).") var photos: String?
    @Option(help: "The 100-bit model for the photo (default: the shipped model).") var model: String?
    @Option(help: "Without a shipped model: the small 100-bit model, trained (small preset) and written here if missing.") var smallModel = "stegastamp-small-100bit.safetensors"
    @Option(help: "Training steps of the 100-bit model.") var modelSteps = 4000
    @Option(help: "The message (at most 7 bytes).") var message = "Hello!"
    @Option(help: "JPEG quality of the damage.") var jpegQuality = 70
    @Option(help: "Where to write the runs, the encoded and the damaged images.") var out = "demo-output"

    func run() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        StopSignal.install()
        print("== 1. The StegaStamp networks from scratch: `stegastamp train --preset tiny` (32x32, 16 bits, full transform net and critic)")
        var config = try TrainingConfig.preset("tiny")
        config.steps = steps
        config.evalEvery = max(1, steps / 4)
        let files = try DemoPipeline.photos(cache: photos, syntheticDirectory: out + "/synthetic-photos")
        /// A fresh run of `stegastamp train` in OUT/NAME.
        func train(_ c: TrainingConfig, _ name: String) throws -> (Trainer, Trainer.Summary) {
            let r = try DemoPipeline.train(c, runDirectory: out + "/" + name, photos: files, progressBar: isatty(STDOUT_FILENO) != 0)
            if r.summary.interrupted { throw ExitCode(130) }
            return r
        }
        let (tiny, s) = try train(config, "tiny-run")
        let acc = s.lastEvaluation?.bitAccuracy ?? 0
        let ok = acc >= 0.7
        print(String(format: "result: held-out bit accuracy %.3f after %d steps (target 0.7), PSNR %.1f dB, %.3f s per step; run folder %@ "
                     + "(curves.png, samples.png, metrics.jsonl, TensorBoard events): %@", acc, s.lastStep, s.lastEvaluation?.psnr ?? 0,
                     s.secondsPerStep, tiny.runDirectory, ok ? "PASS" : "FAIL"))
        guard let photos else {
            if !ok { throw ExitCode(1) }
            return
        }
        print("\n== 2. A message in a real photo")
        let evalDir = URL(fileURLWithPath: photos).appendingPathComponent("eval").path
        var model = self.model ?? smallModel
        if self.model == nil, let shipped = try? shippedModelPath() {
            model = shipped
            print("using the shipped model \(shipped)")
        } else if !fm.fileExists(atPath: model) {
            print("no model at \(model): training the 100-bit codec model (`stegastamp train --preset small`, \(modelSteps) steps)")
            var small = try TrainingConfig.preset("small")
            small.steps = modelSteps
            small.evalEvery = max(1, modelSteps / 4)
            let (t, r) = try train(small, "small-run")
            try fm.createDirectory(at: URL(fileURLWithPath: model).deletingLastPathComponent(), withIntermediateDirectories: true)
            try? fm.removeItem(atPath: model)
            try fm.copyItem(atPath: t.checkpointPath, toPath: model)
            print(String(format: "wrote %@ (held-out bit accuracy %.3f)", model, r.lastEvaluation?.bitAccuracy ?? 0))
        } else {
            print("using the model \(model)")
        }
        let m = try loadModel(model, backend: .cpu)
        let r = try DemoPipeline.roundTrip(model: m, photo: try imagePaths(evalDir).files[0], message: message, jpegQuality: jpegQuality,
                                           outDirectory: out)
        print(String(format: "hid \"%@\" in %@ (%dx%d): %@, PSNR %.1f dB; saved as JPEG quality %d: %@",
                     message, r.photo, r.width, r.height, r.encodedPath, r.psnr, jpegQuality, r.damagedPath))
        if let text = r.decoded {
            let verdict = text == message ? "the message survived" : "WRONG MESSAGE"
            print("decoded from the JPEG: \"\(text)\" (\(r.wrongBits) of \(r.bits) bits wrong, \(r.corrected) corrected by BCH): \(verdict)")
        } else {
            print("decoded from the JPEG: no message could be recovered (\(r.wrongBits) of \(r.bits) bits wrong; BCH corrects at most 5)")
        }
        if !ok { throw ExitCode(1) }
    }
}
