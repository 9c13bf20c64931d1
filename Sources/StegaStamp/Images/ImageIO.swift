import CPNG
import CPNGReduce
import CTurboJPEG
import Foundation

/// PNG through libpng's simplified API (no longjmp reaches Swift: errors come back as messages)
/// and JPEG through libjpeg-turbo. Every colour type and bit depth of PNG reads as 8-bit sRGB RGB
/// (alpha composited onto white, palettes expanded, 16-bit reduced).
public enum ImageIO {
    public enum Format: String, Sendable { case png, jpeg }

    /// By magic bytes, not by the file name.
    public static func format(of data: [UInt8]) -> Format? {
        if data.count >= 8 && data[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if data.count >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF { return .jpeg }
        return nil
    }

    /// Whether the file starts as a JPEG does (false when it cannot be read).
    static func isJPEG(path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = [UInt8](h.readData(ofLength: 3))
        return format(of: head) == .jpeg
    }

    public static func read(path: String) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError(path, "cannot read file") }
        return try decode([UInt8](data), path: path)
    }

    /// Reads a photo that is only needed with its short side at least `minimumShortSide` (a
    /// decoder's input): JPEGs decode at the smallest of libjpeg-turbo's DCT scales (1/8 ... 1)
    /// that keeps it, several times faster for large photos; PNGs row by row into the means of
    /// 2x2, 4x4 or 8x8 blocks likewise (`decodePNGReduced`), or whole where that does not apply.
    /// Also returns the photo's full size.
    public static func read(path: String, minimumShortSide: Int) throws -> (image: RGBImage, width: Int, height: Int) {
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError(path, "cannot read file") }
        let bytes = [UInt8](data)
        switch format(of: bytes) {
        case .jpeg: return try decodeJPEG(bytes, path: path, minimumShortSide: minimumShortSide)
        case .png:
            if let reduced = try decodePNGReduced(bytes, path: path, minimumShortSide: minimumShortSide) { return reduced }
        case nil: break
        }
        let img = try decode(bytes, path: path)
        return (img, img.width, img.height)
    }

    /// A PNG read row by row into the means of f x f blocks, f the largest of 8, 4, 2 that keeps
    /// the short side at least `minimumShortSide` (the whole image is never held; for a 20-megapixel
    /// photo most of the time is zlib's). Nil where no reduction keeps it or the row path does not
    /// apply (alpha, transparency, palette, interlacing, a tagged colour space or a gamma other than
    /// sRGB's: those decode whole, through libpng's simplified API, which converts them).
    static func decodePNGReduced(_ data: [UInt8], path: String?, minimumShortSide: Int) throws -> (image: RGBImage, width: Int, height: Int)? {
        var w: UInt32 = 0, h: UInt32 = 0
        var message = [CChar](repeating: 0, count: 256)
        func call(_ factor: Int, _ out: UnsafeMutablePointer<UInt8>?) -> Int32 {
            data.withUnsafeBufferPointer { stegastamp_png_read_reduced($0.baseAddress, $0.count, Int32(factor), out, &w, &h, &message) }
        }
        func failure() -> ImageError {
            ImageError(path, "corrupt or truncated PNG: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        let header = call(1, nil)
        if header < 0 { throw failure() }
        guard header == 0, w > 0, h > 0, Int(w) * Int(h) <= maxPixels,
              let f = [8, 4, 2].first(where: { Int(min(w, h)) / $0 >= minimumShortSide }) else { return nil }
        let (ow, oh) = ((Int(w) + f - 1) / f, (Int(h) + f - 1) / f)
        var buffer = [UInt8](repeating: 0, count: ow * oh * 3)
        let r = buffer.withUnsafeMutableBufferPointer { call(f, $0.baseAddress) }
        if r < 0 { throw failure() }
        guard r == 0 else { return nil }
        return (RGBImage(width: ow, height: oh, bytes: buffer), Int(w), Int(h))
    }

    public static func decode(_ data: [UInt8], path: String? = nil) throws -> RGBImage {
        switch format(of: data) {
        case .png: return try decodePNG(data, path: path)
        case .jpeg: return try decodeJPEG(data, path: path)
        case nil: throw ImageError(path, "not a PNG or JPEG file (unrecognised header)")
        }
    }

    /// Writes PNG or JPEG by the extension (.png, .jpg, .jpeg), atomically.
    public static func write(_ image: RGBImage, path: String, jpegQuality: Int = 95) throws {
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        let data: [UInt8]
        switch ext {
        case "png": data = try encodePNG(image)
        case "jpg", "jpeg": data = try encodeJPEG(image, quality: jpegQuality)
        default: throw ImageError(path, "unknown image extension '.\(ext)' (use .png, .jpg or .jpeg)")
        }
        do { try Data(data).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw ImageError(path, "cannot write: \(error.localizedDescription)")
        }
    }

    static let maxPixels = 1 << 28

    public static func decodePNG(_ data: [UInt8], path: String? = nil) throws -> RGBImage {
        // libpng keeps a pointer to the input from begin_read to finish_read: one scope for both.
        try data.withUnsafeBytes { raw -> RGBImage in
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            defer { png_image_free(&image) }
            func failure(_ what: String) -> ImageError {
                let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                return ImageError(path, "\(what): \(message.isEmpty ? "unknown libpng error" : message)")
            }
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else { throw failure("corrupt or unsupported PNG") }
            let (w, h) = (Int(image.width), Int(image.height))
            guard w > 0, h > 0, w * h <= maxPixels else { throw ImageError(path, "PNG of \(w)x\(h) pixels is empty or too large") }
            image.format = UInt32(PNG_FORMAT_FLAG_COLOR)  // 8-bit RGB
            var buffer = [UInt8](repeating: 0, count: w * h * 3)
            var white = png_color(red: 255, green: 255, blue: 255)
            let done = buffer.withUnsafeMutableBytes { png_image_finish_read(&image, &white, $0.baseAddress, Int32(w * 3), nil) }
            guard done != 0 else { throw failure("corrupt or truncated PNG") }
            return RGBImage(width: w, height: h, bytes: buffer)
        }
    }

    public static func encodePNG(_ img: RGBImage) throws -> [UInt8] {
        try PNGWriter.encode(width: img.width, height: img.height, rgb: img.eightBitSamples())
    }

    static func tjError(_ handle: tjhandle?) -> String {
        guard let handle, let s = tjGetErrorStr2(handle) else { return "unknown libjpeg-turbo error" }
        return String(cString: s)
    }

    public static func decodeJPEG(_ data: [UInt8], path: String? = nil) throws -> RGBImage {
        try decodeJPEG(data, path: path, minimumShortSide: nil).image
    }

    /// The size of the smallest of libjpeg-turbo's DCT downscales that keeps the short side at
    /// least `minimumShortSide` (the full size when none does).
    static func jpegScale(width w: Int32, height h: Int32, minimumShortSide: Int) -> (Int32, Int32) {
        var (sw, sh) = (w, h)
        var n: Int32 = 0
        if let factors = tjGetScalingFactors(&n) {
            func scaled(_ d: Int32, _ f: tjscalingfactor) -> Int32 { (d * f.num + f.denom - 1) / f.denom }
            for f in UnsafeBufferPointer(start: factors, count: Int(n)) where f.num <= f.denom {
                let (cw, ch) = (scaled(w, f), scaled(h, f))
                if Int(min(cw, ch)) >= minimumShortSide && Int(cw) * Int(ch) < Int(sw) * Int(sh) { (sw, sh) = (cw, ch) }
            }
        }
        return (sw, sh)
    }

    /// A JPEG file decoded at a reduced DCT scale that keeps its short side at least
    /// `minimumShortSide`, with its full size; nil, without decoding, for other files and for
    /// JPEGs no downscale keeps large enough.
    public static func readReducedJPEG(path: String, minimumShortSide: Int) throws -> (image: RGBImage, width: Int, height: Int)? {
        guard isJPEG(path: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError(path, "cannot read file") }
        return try decodeJPEG([UInt8](data), path: path, minimumShortSide: minimumShortSide, onlyIfReduced: true)
    }

    static func decodeJPEG(_ data: [UInt8], path: String?, minimumShortSide: Int?) throws -> (image: RGBImage, width: Int, height: Int) {
        try decodeJPEG(data, path: path, minimumShortSide: minimumShortSide, onlyIfReduced: false)!
    }

    /// `onlyIfReduced`: nil, after the header only, when no downscale applies.
    static func decodeJPEG(_ data: [UInt8], path: String?, minimumShortSide: Int?, onlyIfReduced: Bool) throws -> (image: RGBImage, width: Int, height: Int)? {
        guard let handle = tjInitDecompress() else { throw ImageError(path, "cannot initialise libjpeg-turbo") }
        defer { tjDestroy(handle) }
        var w: Int32 = 0, h: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
        let header = data.withUnsafeBufferPointer { tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &w, &h, &sub, &cs) }
        guard header == 0 else { throw ImageError(path, "corrupt or unsupported JPEG: \(tjError(handle))") }
        guard w > 0, h > 0, Int(w) * Int(h) <= maxPixels else { throw ImageError(path, "JPEG of \(w)x\(h) pixels is empty or too large") }
        let (sw, sh) = minimumShortSide.map { jpegScale(width: w, height: h, minimumShortSide: $0) } ?? (w, h)
        if onlyIfReduced && (sw, sh) == (w, h) { return nil }
        var buffer = [UInt8](repeating: 0, count: Int(sw) * Int(sh) * 3)
        let r = data.withUnsafeBufferPointer { src in
            buffer.withUnsafeMutableBufferPointer {
                tjDecompress2(handle, src.baseAddress, UInt(src.count), $0.baseAddress, sw, 0, sh, Int32(TJPF_RGB.rawValue),
                              Int32(TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING))
            }
        }
        guard r == 0 else { throw ImageError(path, "corrupt or truncated JPEG: \(tjError(handle))") }
        return (RGBImage(width: Int(sw), height: Int(sh), bytes: buffer), Int(w), Int(h))
    }

    /// Baseline JPEG, 4:2:0, quality 1...100.
    public static func encodeJPEG(_ img: RGBImage, quality: Int) throws -> [UInt8] {
        guard (1...100).contains(quality) else { throw ImageError(nil, "JPEG quality must be in 1...100, got \(quality)") }
        guard let handle = tjInitCompress() else { throw ImageError(nil, "cannot initialise libjpeg-turbo") }
        defer { tjDestroy(handle) }
        let bytes = img.eightBitSamples()
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let r = bytes.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(img.width), 0, Int32(img.height), Int32(TJPF_RGB.rawValue), &out, &size,
                        Int32(TJSAMP_420.rawValue), Int32(quality), Int32(TJFLAG_ACCURATEDCT))
        }
        defer { if let out { tjFree(out) } }
        guard r == 0, let out else { throw ImageError(nil, "cannot encode JPEG: \(tjError(handle))") }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }
}
