import Foundation
import GraphIR
import GraphRuntime

/// Evaluation on held-out photos (never the training crops): a fixed set of crops of the
/// evaluation photos at the training size, fixed secrets (BCH-protected 7-byte messages when the
/// model carries 100 bits), encoded, saved to 8 bits, decoded clean and after real libjpeg q50.
public final class TrainingEvaluation {
    public struct Result: Sendable {
        public var step: Int
        public var bitAccuracy, decodedRate, psnr, ssim: Double
        public var jpegBitAccuracy, jpegDecodedRate: Double
        public var images: Int

        public var fields: [(String, Double)] {
            [("eval_bit_accuracy", bitAccuracy), ("eval_decoded_rate", decodedRate), ("eval_psnr", psnr), ("eval_ssim", ssim),
             ("eval_jpeg50_bit_accuracy", jpegBitAccuracy), ("eval_jpeg50_decoded_rate", jpegDecodedRate)]
        }
    }

    let config: TrainingConfig
    let covers: [Tensor]     // batches of held-out crops
    let secrets: [Tensor]
    let messages: [[UInt8]?]  // the 7-byte payload of each secret (100-bit models)
    let encoder, decoder, damage, ssim: Executable

    public init(config c: TrainingConfig, files: [String], graphs: TrainingGraphSet, options: CompileOptions,
                log: (String) -> Void) throws {
        config = c
        let n = c.batch
        let count = (c.evalImages + n - 1) / n * n
        // Crops: the centre of every photo first, then seeded random crops, cycling through the photos.
        var crops: [[Float]] = []
        var photos: [RGBImage] = []
        for f in files {
            do { photos.append(try ImageIO.read(path: f)) } catch { log("warning: evaluation photo skipped: \(error)") }
        }
        guard !photos.isEmpty else { throw TrainingError("none of the \(files.count) evaluation photos could be decoded") }
        var k = 0
        while crops.count < count {
            let p = photos[k % photos.count]
            if k < photos.count {
                crops.append(Resize.fit(p, width: c.size, height: c.size).clamped().pixels)
            } else {
                let short = min(p.width, p.height)
                let side = max(1, Int(Double(short) * (0.5 + 0.5 * Double(CounterRandom.uniform(seed: 77, key: 1, counter: UInt64(k))))))
                let x = Int(Double(p.width - side) * Double(CounterRandom.uniform(seed: 77, key: 2, counter: UInt64(k))))
                let y = Int(Double(p.height - side) * Double(CounterRandom.uniform(seed: 77, key: 3, counter: UInt64(k))))
                crops.append(Resize.resize(Resize.crop(p, x: x, y: y, width: side, height: side), width: c.size, height: c.size).clamped().pixels)
            }
            k += 1
        }
        covers = stride(from: 0, to: count, by: n).map { Tensor(shape: [n, c.size, c.size, 3], scalars: Array(crops[$0..<($0 + n)].joined())) }
        var secretBatches: [Tensor] = [], msgs: [[UInt8]?] = []
        for b in 0..<(count / n) {
            var bits: [Float] = []
            for i in 0..<n {
                if c.bits == SecretCodec.standard.totalBits {
                    let data = (0..<SecretCodec.standard.dataBytes).map { UInt8(CounterRandom.bits(seed: 99, key: UInt64(b * n + i), counter: UInt64($0)) & 0xFF) }
                    msgs.append(data)
                    bits += SecretCodec.standard.encode(data: data).map(Float.init)
                } else {
                    msgs.append(nil)
                    bits += (0..<c.bits).map { Float(CounterRandom.bits(seed: 98, key: UInt64(b * n + i), counter: UInt64($0)) & 1) }
                }
            }
            secretBatches.append(Tensor(shape: [n, c.bits], scalars: bits))
        }
        secrets = secretBatches
        messages = msgs
        encoder = try Compiler.compile(graphs.encoder, for: Signature.of(graphs.encoder), options: options)
        decoder = try Compiler.compile(graphs.decoder, for: Signature.of(graphs.decoder), options: options)
        damage = try Compiler.compile(graphs.damage, for: Signature.of(graphs.damage), options: options)
        let b = GraphBuilder(name: "eval_ssim")
        let x = b.input("a", [n, c.size, c.size, 3]), y = b.input("b", [n, c.size, c.size, 3])
        b.output("ssim", b.sub(b.constant(1), Losses.ssimLoss(b, x, y, window: min(11, c.size))))
        let sg = try b.finish()
        ssim = try Compiler.compile(sg, for: Signature.of(sg), options: options)
    }

    static func quantised(_ t: Tensor) -> Tensor {
        Tensor(shape: t.shape, scalars: t.scalars.map { (min(max($0, 0), 1) * 255).rounded() / 255 })
    }

    /// Did the decoded bits carry the message? (BCH for 100-bit models, exact bits otherwise.)
    func decoded(_ logits: ArraySlice<Float>, secret: ArraySlice<Float>, message: [UInt8]?) -> (correct: Int, ok: Bool) {
        let bits = logits.map { $0 > 0 ? UInt8(1) : 0 }
        let correct = zip(bits, secret).filter { Float($0) == $1 }.count
        if let message {
            guard let d = try? SecretCodec.standard.decodeData(bits) else { return (correct, false) }
            return (correct, d.data == message)
        }
        return (correct, correct == bits.count)
    }

    public struct Samples { public var cover, encoded, residual, transformed: Tensor }

    public func run(step: Int, parameters: ParameterStore) throws -> (Result, Samples) {
        var store = parameters
        let n = config.batch, bits = config.bits, scale = config.residualScale ?? 1
        var correct = 0, ok = 0, jCorrect = 0, jOk = 0, psnr = 0.0, ssimSum = 0.0
        var samples: Samples? = nil
        for (b, cover) in covers.enumerated() {
            let residual = try encoder.run(["secret": secrets[b], "image": cover], parameters: &store)["residual"]!
            let encoded = Self.quantised(Tensor(shape: cover.shape, scalars: zip(cover.scalars, residual.scalars).map { $0 + scale * $1 }))
            let logits = try decoder.run(["image": encoded], parameters: &store)["logits"]!
            var jpeg: [Float] = []
            for i in 0..<n {
                let img = RGBImage(encoded, index: i)
                jpeg += try ImageIO.decode(try ImageIO.encodeJPEG(img, quality: 50)).pixels
                psnr += Quality.psnr(img, RGBImage(cover, index: i))
            }
            let jLogits = try decoder.run(["image": Tensor(shape: cover.shape, scalars: jpeg)], parameters: &store)["logits"]!
            for i in 0..<n {
                let r = i * bits..<(i + 1) * bits
                let msg = messages[b * n + i]
                let clean = decoded(logits.scalars[r], secret: secrets[b].scalars[r], message: msg)
                let j = decoded(jLogits.scalars[r], secret: secrets[b].scalars[r], message: msg)
                correct += clean.correct; ok += clean.ok ? 1 : 0
                jCorrect += j.correct; jOk += j.ok ? 1 : 0
            }
            ssimSum += Double(try ssim.run(["a": cover, "b": encoded], parameters: &store)["ssim"]!.scalar) * Double(n)
            if b == 0 {
                let t = try damage.run(feeding: ["image": encoded, "seed": Tensor(12345), "step": Tensor(Float(step))], parameters: &store)
                samples = Samples(cover: cover, encoded: encoded, residual: residual, transformed: t["transformed"]!)
            }
        }
        let images = covers.count * n
        let r = Result(step: step, bitAccuracy: Double(correct) / Double(images * bits), decodedRate: Double(ok) / Double(images),
                       psnr: psnr / Double(images), ssim: ssimSum / Double(images),
                       jpegBitAccuracy: Double(jCorrect) / Double(images * bits), jpegDecodedRate: Double(jOk) / Double(images),
                       images: images)
        return (r, samples!)
    }

    /// cover | encoded | residual x 10 | transformed, one row per example (at most 4), each tile
    /// enlarged to at least 128 pixels (nearest) so small models are visible.
    public static func sampleGrid(_ s: Samples) -> RGBImage {
        let n = min(4, s.cover.shape[0]), size = s.cover.shape[1]
        let zoom = max(1, 128 / size), tile = size * zoom, gap = 4
        var canvas = Canvas(width: 4 * tile + 5 * gap, height: n * tile + (n + 1) * gap + 14)
        for (k, name) in ["cover", "encoded", "residual x10", "transformed"].enumerated() { canvas.text(name, x: gap + k * (tile + gap), y: 2) }
        for i in 0..<n {
            let res = RGBImage(s.residual, index: i)
            let tiles = [RGBImage(s.cover, index: i), RGBImage(s.encoded, index: i),
                         RGBImage(width: size, height: size, pixels: res.pixels.map { 0.5 + 10 * $0 }).clamped(),
                         RGBImage(s.transformed, index: i).clamped()]
            for (k, t) in tiles.enumerated() {
                let big = zoom == 1 ? t : RGBImage(width: tile, height: tile, pixels: (0..<(tile * tile * 3)).map { j in
                    let p = j / 3, c = j % 3
                    return t.pixels[(((p / tile) / zoom) * size + (p % tile) / zoom) * 3 + c]
                })
                canvas.paste(big, x: gap + k * (tile + gap), y: 14 + gap + i * (tile + gap))
            }
        }
        return canvas.image
    }
}
