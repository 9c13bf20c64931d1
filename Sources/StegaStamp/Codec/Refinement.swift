import Foundation
import GraphAutodiff
import GraphIR
import GraphRuntime

/// Encoder-side refinement: the encoder's residual is a good first guess, not the best residual of
/// its size for this photo and this message. Refinement keeps the residual's energy (so the PSNR at
/// a strength does not change) and moves it, by normalised gradient steps through the fixed decoder,
/// towards what the decoder reads best after the damage it was trained on: each step decodes a batch
/// of `views` damaged copies (a random perspective warp with white borders and the model's own
/// transform net: blur, noise, colour, differentiable JPEG) and lowers their mean secret loss.
/// Deterministic: every draw is keyed by the step number.
public struct Refinement: Sendable, Equatable {
    /// Gradient steps (0: the encoder's residual unchanged).
    public var steps: Int
    /// Damaged copies decoded per step. 4 (half the former 8, half the time): on 10 photos x 6
    /// secrets at strength 0.32, 4 views with every other one recoloured decoded as well as 8 with
    /// every fourth (brightened 59/60 both, perspective 57 against 56, print-like 55 both).
    public var views = 4
    /// Corner displacement of the warps, as a share of the model's side (the evaluation's
    /// perspective moves corners by 2 % of the photo). Small on purpose: on 4 hard photos at
    /// strength 0.3, 0.03 (zoom 0.05) decoded 7 of 12 clean and 0 cropped, 0.01 (zoom 0.01) 12 and 7;
    /// the decoder's own transformer and view search take up the rest of the geometry.
    public var warp = 0.01
    /// Common zoom of the warps' corners (a crop or a margin of up to this share).
    public var zoom = 0.01
    /// Every other view loses a frame of up to this share of each side to white (what the
    /// decoder's zoomed-out views see of a cropped photo).
    public var frame = 0.07
    /// Every `colourEvery`-th view has its contrast about mid-grey changed by up to this share and
    /// its brightness by up to a third of it, clipped to 0...1, before the other
    /// damage: a brightened photo loses what the residual put into its highlights, which the
    /// transform net's milder colour shifts rarely clip. 0: off.
    public var colour: Float = 0.25
    /// Which views get the colour change: every `colourEvery`-th, from view colourEvery / 2 (with
    /// the defaults, views 1 and 3, which also lose a frame).
    public var colourEvery = 2
    /// The transform net's differentiable JPEG (off only to check the gradient: its rounding
    /// jumps at half a quantisation step, which finite differences cannot follow).
    public var jpeg = true
    /// First step's length, as a share of the residual's norm (decays linearly to a tenth).
    public var rate = 0.25
    /// Optimise what the decoder reads: the residual after its upsampling into the photo and the
    /// photo's resizing back (`RoundTrip`), not the residual itself.
    public var roundTrip = true
    /// The transform net's photometric damage as a share of what the model was trained against
    /// (`TransformConfig.scaled`): the training's full noise, colour and JPEG q50 at the model's
    /// size are far harsher than the same damage to a large photo, which its resizing averages
    /// away, and a residual fitted to them reads worse undamaged.
    public var severity: Float = 0.3
    /// The transform net's random blur (a 7x7 kernel at the model's size is a much stronger blur
    /// than any the evaluation applies to the photo).
    public var blur = false

    public init(steps: Int) { self.steps = steps }
}

extension WatermarkModel {
    /// The graph of one refinement step: cover and delta (the residual at its strength) at the
    /// model's size, the secret repeated per view, forward warps [views, 8], the transform net's
    /// seed, each view's lost frame, contrast and brightness; outputs the mean secret loss, the
    /// views' bit accuracy and d loss / d delta.
    /// Only `damage`'s views, severity, jpeg and blur shape the graph.
    func refinementGraph(_ damage: Refinement) throws -> Graph {
        let k = damage.views
        guard case .stegastamp(let c) = networks else {
            throw ModelError("\(path): refinement needs a StegaStamp model (this is the small demo model)")
        }
        let b = GraphBuilder(name: "watermark_refinement")
        let cover = b.input("cover", [1, height, width, 3]), delta = b.input("delta", [1, height, width, 3])
        let secret = b.input("secret", [k, bits]), warps = b.input("warps", [k, 8]), seed = b.input("seed", [])
        let frames = b.input("frames", [k, height, width, 1])
        let encoded = TransformNet.clip(b, b.add(cover, delta), 0, 1)
        let contrast = b.input("contrast", [k, 1, 1, 1]), brightness = b.input("brightness", [k, 1, 1, 1])
        let copies = TransformNet.clip(b, b.add(b.mul(b.sub(b.broadcast(encoded, to: [k, height, width, 3]), b.constant(0.5)), contrast),
                                                b.add(brightness, b.constant(0.5))), 0, 1)
        let ones = b.constant(1, shape: [k, height, width, 3])
        func warp(_ x: ValueID) -> ValueID { b.apply(.projectiveWarp(inverse: false, gradient: .exact), [x, warps]) }
        // White outside the warped photo, as in training.
        let warped = b.add(warp(copies), b.sub(b.constant(1), warp(ones)))
        // A lost frame is white too.
        let framed = b.add(b.mul(warped, frames), b.sub(b.constant(1), frames))
        var transform = c.transform.scaled(damage.severity)
        transform.globalBatch = nil
        transform.jpeg = transform.jpeg && damage.jpeg
        transform.blur = transform.blur && damage.blur
        let damaged = TransformNet.apply(b, framed, seed: seed, step: b.constant(1e9), config: transform)
        let logits = StegaStampNetworks.decoder(b, image: damaged, bits: bits, prefix: "decoder.", seed: c.seed + 1).logits
        let loss = ImageOps.secretLoss(b, logits: logits, labels: secret)
        b.output("loss", loss)
        b.output("bit_accuracy", Losses.secretAccuracy(b, logits: logits, secret: secret).bit)
        b.output("gradient", try Autodiff.gradient(in: b, of: loss, wrt: [delta])[0])
        return try b.finish()
    }

    func refiner(_ r: Refinement) throws -> Executable {
        let key = "\(r.views) \(r.severity) \(r.jpeg) \(r.blur)"
        if let e = refiners[key] { return e }
        let e = try compileLogged(try refinementGraph(r), "the refinement step for \(r.views) views", jit: refinementJIT)
        refiners[key] = e
        return e
    }

    /// One step's views: the warps and the transform net's draws keyed by `step`.
    struct RefinementViews {
        var warps: Tensor
        var seed: Tensor
        /// 1 inside each view's kept region, 0 in its lost frame.
        var frames: Tensor
        /// Each view's contrast about mid-grey and brightness shift [views, 1, 1, 1].
        var contrast: Tensor, brightness: Tensor
        init(_ r: Refinement, size: Int, step: Int) {
            let m = PerspectiveMatrices.random(size: size, displacement: r.warp * Double(size), zoom: r.zoom,
                                               batch: r.views, seed: 0x5EF1_0000 &+ UInt64(step))
            // [views, 2, 8] -> the forward warps [views, 8].
            warps = Tensor(shape: [r.views, 8], scalars: (0..<r.views).flatMap { Array(m.scalars[($0 * 16 + 8)..<($0 * 16 + 16)]) })
            seed = Tensor(shape: [], scalars: [Float(step + 1)])
            var mask = [Float](repeating: 1, count: r.views * size * size)
            for i in stride(from: 1, to: r.views, by: 2) {
                let u = Double(CounterRandom.uniform(seed: 0x5EF1_0000 &+ UInt64(step), key: 0xF4A3, counter: UInt64(i)))
                let f = Int((u * r.frame * Double(size)).rounded())
                for y in 0..<size { for x in 0..<size where min(x, y, size - 1 - x, size - 1 - y) < f { mask[(i * size + y) * size + x] = 0 } }
            }
            frames = Tensor(shape: [r.views, size, size, 1], scalars: mask)
            var c = [Float](repeating: 1, count: r.views), bri = [Float](repeating: 0, count: r.views)
            for i in stride(from: r.colourEvery / 2, to: r.views, by: r.colourEvery) where r.colour > 0 {
                let u = (0..<2).map { CounterRandom.uniform(seed: 0x5EF1_0000 &+ UInt64(step), key: 0xC010 + UInt64($0), counter: UInt64(i)) }
                c[i] = 1 + r.colour * (2 * u[0] - 1)
                bri[i] = r.colour / 3 * (2 * u[1] - 1)
            }
            contrast = Tensor(shape: [r.views, 1, 1, 1], scalars: c)
            brightness = Tensor(shape: [r.views, 1, 1, 1], scalars: bri)
        }
    }

    /// The mean secret loss of `delta` (the residual at its strength) over the damaged views of
    /// `step`, the views' bit accuracy and the loss's gradient with respect to `delta`.
    func refinementLoss(delta: [Float], cover: Tensor, bits secretBits: [UInt8], _ r: Refinement, step: Int) throws
        -> (loss: Float, bitAccuracy: Float, gradient: [Float]) {
        let exe = try refiner(r)
        let secret = Tensor(shape: [r.views, bits], scalars: (0..<r.views).flatMap { _ in secretBits.map(Float.init) })
        let v = RefinementViews(r, size: height, step: step)
        var store = parameters
        let out = try exe.run(["cover": cover, "delta": Tensor(shape: [1, height, width, 3], scalars: delta), "secret": secret,
                               "warps": v.warps, "seed": v.seed, "frames": v.frames,
                               "contrast": v.contrast, "brightness": v.brightness], parameters: &store, profile: profile)
        return (out["loss"]!.scalars[0], out["bit_accuracy"]!.scalars[0], out["gradient"]!.scalars)
    }

    /// `residual` refined for `image` at `strength` (see `Refinement`): the same norm, each channel's
    /// mean removed. Also returns the last step's bit accuracy over its damaged views. `photoSize`:
    /// the size of the photo the residual goes into, when `image` is a smaller copy of it (a JPEG
    /// decoded at a reduced DCT scale); the round trip is the full photo's.
    public func refine(_ residual: Residual, image: RGBImage, photoSize: (width: Int, height: Int)? = nil, bits secretBits: [UInt8],
                       strength: Float, _ r: Refinement) throws -> (residual: Residual, bitAccuracy: Float) {
        guard r.steps > 0 else { return (residual, .nan) }
        guard r.views >= 1, r.rate > 0, r.warp >= 0, r.zoom >= 0, r.frame >= 0, r.severity >= 0, r.severity <= 1, r.colour >= 0, r.colour < 1, r.colourEvery >= 1, strength > 0, strength.isFinite else {
            throw ModelError("refinement needs views >= 1, a positive rate and strength, severity in 0...1, colour in 0..<1, got \(r.views) views, rate \(r.rate), severity \(r.severity), colour \(r.colour), strength \(strength)")
        }
        guard secretBits.count == bits else { throw ModelError("the model hides \(bits) bits, got \(secretBits.count)") }
        let cover = batchTensor([image])
        var delta = residual.pixels.pixels.map { $0 * strength }
        let target = Self.norm(delta)
        guard target > 0 else { return (residual, .nan) }
        var accuracy: Float = .nan
        // The decoder reads the residual after its round trip through the photo's resolution.
        let size = photoSize ?? (image.width, image.height)
        let trip = r.roundTrip ? RoundTrip(width: width, height: height, photoWidth: size.width, photoHeight: size.height) : nil
        for step in 0..<r.steps {
            let read = trip?.apply(delta) ?? delta
            let (_, acc, gRead) = try refinementLoss(delta: read, cover: cover, bits: secretBits, r, step: step)
            let g = trip?.apply(gRead, transposed: true) ?? gRead
            accuracy = acc
            let gn = Self.norm(g)
            if !(gn > 0) || !gn.isFinite { break }
            let length = r.rate * (1 - 0.9 * Double(step) / Double(max(r.steps - 1, 1))) * target / gn
            for i in delta.indices { delta[i] -= Float(length) * g[i] }
            // Back onto the energy of the start, without a per-channel tint.
            let centred = Embedding.removeChannelMeans(RGBImage(width: width, height: height, pixels: delta)).pixels
            let scale = Float(target / max(Self.norm(centred), 1e-12))
            delta = centred.map { $0 * scale }
        }
        return (Residual(pixels: RGBImage(width: width, height: height, pixels: delta.map { $0 / strength })), accuracy)
    }

    static func norm(_ v: [Float]) -> Double { sqrt(v.reduce(0.0) { $0 + Double($1) * Double($1) }) }
}
