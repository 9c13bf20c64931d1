import Foundation

/// What `stegastamp demo` does, as library calls (the command prints their results): a fresh
/// training run of the real networks, and a message hidden in a real photo, damaged by real JPEG
/// and read back.
public enum DemoPipeline {
    /// The training and held-out photos: `cache`'s train/ and eval/ (from scripts/fetch-photos.sh),
    /// or, without a cache, 12 synthetic photos written to `syntheticDirectory` (10 train, 2 held out).
    public static func photos(cache: String?, syntheticDirectory: String) throws -> (train: [String], eval: [String]) {
        if let cache {
            return (try PhotoStream.photoFiles(in: cache + "/train"), try PhotoStream.photoFiles(in: cache + "/eval"))
        }
        let files = try SyntheticImages.writePhotos(directory: syntheticDirectory, count: 12, width: 96, height: 72)
        return (Array(files.prefix(10)), Array(files.suffix(2)))
    }

    /// A fresh run of `stegastamp train` in `runDirectory` (what was there is removed).
    public static func train(_ config: TrainingConfig, runDirectory: String, photos: (train: [String], eval: [String]),
                             progressBar: Bool) throws -> (trainer: Trainer, summary: Trainer.Summary) {
        try? FileManager.default.removeItem(atPath: runDirectory)
        let t = try Trainer(config: config, runDirectory: runDirectory, trainFiles: photos.train, evalFiles: photos.eval)
        t.progressBar = progressBar
        return (t, try t.run(resume: false))
    }

    /// One message through a photo: encoded, saved as PNG and as JPEG, the JPEG read back and decoded.
    public struct RoundTrip: Sendable {
        public let photo: String
        public let width: Int, height: Int
        public let encodedPath: String, damagedPath: String
        /// PSNR of the encoded photo against the original, dB.
        public let psnr: Double
        /// Bits read from the JPEG that differ from the encoded ones.
        public let wrongBits: Int
        public let bits: Int
        /// The message BCH recovered from the JPEG (nil: too many errors), and how many bits it corrected.
        public let decoded: String?
        public let corrected: Int
    }

    public static func roundTrip(model: WatermarkModel, photo: String, message: String, jpegQuality: Int,
                                 outDirectory: String) throws -> RoundTrip {
        let original = try ImageIO.read(path: photo)
        let bits = try SecretCodec.standard.encode(message)
        let encoded = try model.encode([original], bits: bits)[0]
        let out = URL(fileURLWithPath: outDirectory)
        let encodedPath = out.appendingPathComponent("encoded.png").path
        let damagedPath = out.appendingPathComponent("damaged-q\(jpegQuality).jpg").path
        try ImageIO.write(encoded, path: encodedPath)
        try ImageIO.write(encoded, path: damagedPath, jpegQuality: jpegQuality)
        let read = try model.decodeBits([try ImageIO.read(path: damagedPath)])[0]
        let wrong = zip(read, bits).filter { $0 != $1 }.count
        let decoded = try? SecretCodec.standard.decode(read)
        return RoundTrip(photo: photo, width: original.width, height: original.height, encodedPath: encodedPath,
                         damagedPath: damagedPath, psnr: Quality.psnr(encoded, original), wrongBits: wrong, bits: bits.count,
                         decoded: decoded?.text, corrected: decoded?.corrected ?? 0)
    }
}
