import ArgumentParser
import Foundation
import GraphRuntime
import StegaStamp

/// Where the time of `encode` and `decode` goes on one (large) photo: each phase timed alone,
/// median of --iterations, after one untimed warm-up (which also compiles the networks).
struct CodecBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-codec", abstract: "Time each phase of encoding and decoding one photo (Benchmarks/codec-speed.sh).")
    @Option(help: "Model; default: the shipped model.") var model: String?
    @Option(help: "The photo (JPEG or PNG).") var image: String
    @Option(help: "Timed iterations per phase.") var iterations = 3

    func run() throws {
        let m = try loadModel(model, backend: .cpu)
        m.log = { _ in }
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: image)))
        let bits = SecretCodec.standard.encode(data: Array("Bench!!".utf8))
        var rows: [(String, Double)] = []
        func time<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            var result = try body()
            var t: [Double] = []
            for _ in 0..<max(1, iterations) {
                let t0 = Date()
                result = try body()
                t.append(Date().timeIntervalSince(t0))
            }
            rows.append((name, t.sorted()[t.count / 2]))
            return result
        }
        let cover = try time("read (decode file to float)") { try ImageIO.decode(data) }
        _ = time("photo -> model input (antialiased resize)") { Embedding.modelInput(cover, width: m.width, height: m.height) }
        let residual = try time("encoder network (incl. resize)") { try m.residuals([cover], bits: bits)[0] }
        let encoded = time("add residual (upsample, strength, clamp)") { Embedding.apply(residual.pixels, to: cover, strength: m.defaultStrength) }
        _ = time("PSNR") { Quality.psnr(encoded, cover) }
        _ = time("float -> 8-bit") { encoded.eightBitSamples() }
        let jpeg = try time("JPEG q95 encode") { try ImageIO.encodeJPEG(encoded, quality: 95) }
        let png = try time("PNG encode") { try ImageIO.encodePNG(encoded) }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bench-codec-\(getpid()).jpg").path
        try Data(jpeg).write(to: URL(fileURLWithPath: tmp))
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let small = try time("decode: read JPEG at reduced DCT scale") { try ImageIO.read(path: tmp, minimumShortSide: 2 * max(m.width, m.height)).image }
        _ = try time("decoder network (incl. resize)") { try m.decodeBits([small])[0] }
        print(String(format: "%@: %dx%d (%.1f Mpixel), model %@ (%dx%d); JPEG %.1f MB, PNG %.1f MB", image, cover.width, cover.height,
                     Double(cover.width * cover.height) / 1e6, m.path, m.width, m.height, Double(jpeg.count) / 1e6, Double(png.count) / 1e6))
        print("| phase | ms (median of \(iterations)) |\n| --- | --- |")
        for (n, t) in rows { print(String(format: "| %@ | %.1f |", n, t * 1000)) }
        print(String(format: "peak RSS %.0f MiB (photo as float32: %.0f MiB)", peakRSSMiB(), Double(cover.pixels.count * 4) / 1048576))
    }
}
