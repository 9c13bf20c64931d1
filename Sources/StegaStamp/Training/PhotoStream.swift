import Foundation
import GraphIR

/// Training images streamed from a folder of photographs (PNG / JPEG, any size): example i of
/// step t is a random square crop (scale jitter: U(cropScaleMin, 1) of the short side, random
/// position, horizontal flip with p = 1/2) resized to the training size, redrawn while it is flat
/// (texture filter). Every draw is a function of (seed, t, i) alone, so a run reproduces and
/// resumes exactly whatever was cached. Decoded photos are kept in a cache bounded in bytes
/// (never every crop in memory); the next step's batch is prepared on a background thread.
public final class PhotoStream: @unchecked Sendable {
    public let files: [String]
    public let size: Int
    let seed: Int
    let cropScaleMin: Float
    let textureThreshold: Float
    let cacheBytes: Int
    let log: @Sendable (String) -> Void

    private let lock = NSLock()
    private var cache: [Int: RGBImage] = [:]
    private var cacheOrder: [Int] = []
    private var cached = 0
    /// Files that failed to decode (skipped, warned about once, counted in the log).
    public private(set) var unreadable: Set<Int> = []
    private var prefetched: (step: Int, offset: Int, count: Int, result: Result<Tensor, Error>)?
    private var pending: (step: Int, offset: Int, count: Int, done: DispatchSemaphore)?
    private let worker = DispatchQueue(label: "stegastamp.photo-stream")

    /// The photo files of `directory` (sorted by name), or a clear error when there are none.
    public static func photoFiles(in directory: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw TrainingError("\(directory): no such folder")
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw TrainingError("\(directory): cannot list the folder")
        }
        let files = names.filter { ["png", "jpg", "jpeg"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }.sorted()
        guard !files.isEmpty else { throw TrainingError("\(directory): no .png, .jpg or .jpeg files to train on") }
        return files.map { URL(fileURLWithPath: directory).appendingPathComponent($0).path }
    }

    public init(files: [String], size: Int, seed: Int, cropScaleMin: Float, textureThreshold: Float,
                cacheBytes: Int = 512 << 20, unreadable: Set<Int> = [], log: @escaping @Sendable (String) -> Void) throws {
        guard !files.isEmpty else { throw TrainingError("no photos to train on") }
        self.files = files
        self.size = size
        self.seed = seed
        self.cropScaleMin = cropScaleMin
        self.textureThreshold = textureThreshold
        self.cacheBytes = cacheBytes
        self.unreadable = unreadable
        self.log = log
    }

    /// The photo with index k, decoded and shrunk so that its short side is at most what the
    /// smallest crop needs at full detail; nil if it cannot be decoded.
    func photo(_ k: Int) -> RGBImage? {
        lock.lock()
        if unreadable.contains(k) { lock.unlock(); return nil }
        if let p = cache[k] { lock.unlock(); return p }
        lock.unlock()
        let image: RGBImage
        do { image = try ImageIO.read(path: files[k]) } catch {
            lock.lock()
            let first = unreadable.insert(k).inserted
            let n = unreadable.count
            lock.unlock()
            if first { log("warning: skipping \(files[k]): \(error) (\(n) unreadable photo(s) so far)") }
            return nil
        }
        let short = min(image.width, image.height)
        let wanted = Int((Float(size) / cropScaleMin).rounded(.up))
        let base = short > wanted && short >= 2
            ? Resize.resize(image, width: max(1, image.width * wanted / short), height: max(1, image.height * wanted / short)) : image
        lock.lock()
        defer { lock.unlock() }
        if cache[k] == nil {
            cache[k] = base
            cacheOrder.append(k)
            cached += base.pixels.count * 4
            while cached > cacheBytes, cacheOrder.count > 1 {
                let old = cacheOrder.removeFirst()
                cached -= (cache.removeValue(forKey: old)?.pixels.count ?? 0) * 4
            }
        }
        return base
    }

    /// Mean absolute difference of neighbouring luminance samples: ~0 for flat sky or walls.
    static func texture(_ img: RGBImage) -> Float {
        var total: Float = 0, n = 0
        let w = img.width, p = img.pixels
        func lum(_ i: Int) -> Float { 0.299 * p[3 * i] + 0.587 * p[3 * i + 1] + 0.114 * p[3 * i + 2] }
        for y in 0..<(img.height - 1) { for x in 0..<(w - 1) {
            let i = y * w + x
            total += abs(lum(i + 1) - lum(i)) + abs(lum(i + w) - lum(i))
            n += 2
        } }
        return n == 0 ? 0 : total / Float(n)
    }

    /// Example `index` of step `step`: [size, size, 3] samples in [0, 1].
    public func example(step: Int, index: Int) throws -> [Float] {
        let s = CounterRandom.mix(UInt64(seed) &* 0x2545_F491_4F6C_DD1D &+ UInt64(step))
        var best: [Float]? = nil
        var counter: UInt64 = UInt64(index) << 20
        func u() -> Double { defer { counter += 1 }; return Double(CounterRandom.uniform(seed: s, key: 0xDA7A, counter: counter)) }
        for attempt in 0..<64 {
            let k = Int(u() * Double(files.count)) % files.count
            guard let base = photo(k) else {
                if unreadableCount == files.count { throw TrainingError("none of the \(files.count) photos could be decoded") }
                continue
            }
            let short = min(base.width, base.height)
            let side = max(1, min(short, Int(Double(short) * (Double(cropScaleMin) + (1 - Double(cropScaleMin)) * u()))))
            let x = Int(u() * Double(base.width - side + 1)), y = Int(u() * Double(base.height - side + 1))
            let flip = u() < 0.5
            var crop = Resize.resize(Resize.crop(base, x: min(x, base.width - side), y: min(y, base.height - side), width: side, height: side),
                                     width: size, height: size).clamped()
            if flip {
                var f = crop.pixels
                for row in 0..<size { for col in 0..<size { for c in 0..<3 {
                    f[(row * size + col) * 3 + c] = crop.pixels[(row * size + (size - 1 - col)) * 3 + c]
                } } }
                crop = RGBImage(width: size, height: size, pixels: f)
            }
            if best == nil { best = crop.pixels }
            // Flat crops teach the encoder nothing about hiding in texture: redraw a few times,
            // then take the first crop (a folder of flat photos still trains).
            if Self.texture(crop) >= textureThreshold || attempt >= 7 { return attempt >= 7 ? best! : crop.pixels }
        }
        throw TrainingError("could not draw a training crop from \(files.count) photos (\(unreadableCount) unreadable)")
    }

    public var unreadableCount: Int { lock.lock(); defer { lock.unlock() }; return unreadable.count }

    func compute(step: Int, offset: Int, count: Int) -> Result<Tensor, Error> {
        Result {
            var out: [Float] = []
            out.reserveCapacity(count * size * size * 3)
            for i in 0..<count { out += try example(step: step, index: offset + i) }
            return Tensor(shape: [count, size, size, 3], scalars: out)
        }
    }

    /// Examples offset ..< offset + count of step `step` ([count, size, size, 3]); starts
    /// preparing step + 1 in the background.
    public func batch(step: Int, offset: Int = 0, count: Int) throws -> Tensor {
        var result: Result<Tensor, Error>? = nil
        if let p = pending, p.step == step, p.offset == offset, p.count == count {
            p.done.wait()
            lock.lock()
            result = prefetched.map { $0.result }
            prefetched = nil
            pending = nil
            lock.unlock()
        } else if let p = pending {
            p.done.wait()
            pending = nil
        }
        let r = result ?? compute(step: step, offset: offset, count: count)
        let done = DispatchSemaphore(value: 0)
        pending = (step + 1, offset, count, done)
        worker.async { [self] in
            let next = compute(step: step + 1, offset: offset, count: count)
            lock.lock()
            prefetched = (step + 1, offset, count, next)
            lock.unlock()
            done.signal()
        }
        return try r.get()
    }

    /// Waits for the background work (before a checkpoint records `unreadable`, or at the end).
    public func drain() {
        if let p = pending { p.done.wait() }
    }
}
