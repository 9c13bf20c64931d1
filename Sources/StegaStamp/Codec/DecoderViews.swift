import Foundation

/// Where the decoder looks when the plain view of a photo does not give back a message: the
/// photo may have been cropped a little (and resized back), turned by a degree or two or moved by
/// a perspective warp, which moves the residual against the model's grid by more than the
/// decoder's spatial transformer undoes. Each view resamples the plain model input (the photo's
/// region at the model's size) zoomed out, rotated about its centre and/or moved, so a view
/// lines a cropped, turned or moved photo up with
/// the residual again; the outside of the photo reads as white (the training's border fill).
/// BCH is the judge: the first view whose bits correct is taken. Every extra view is one more
/// chance for an unmarked photo to correct by accident (1.4e-3 per view for t = 5 over the 91
/// codeword bits; `SoftDecision`'s padding veto cuts that far down), so the list is short.
public struct DecoderView: Equatable, Sendable, CustomStringConvertible {
    /// The decoder's window over the photo's region, per side (1: the region; 1.11: the region
    /// and 5.5 % more on each side, what a 5 % crop per border resized back took away).
    public var zoom: Double
    /// The turn of the photo the view undoes, in degrees (clockwise on screen when positive).
    public var degrees: Double
    /// Where the view's centre sits in the plain input, as a share of its width and height
    /// (0, 0: the centre).
    public var shiftX = 0.0, shiftY = 0.0

    public init(zoom: Double, degrees: Double, shiftX: Double = 0, shiftY: Double = 0) {
        (self.zoom, self.degrees, self.shiftX, self.shiftY) = (zoom, degrees, shiftX, shiftY)
    }

    public static let plain = DecoderView(zoom: 1, degrees: 0)

    /// The views tried, most likely first: plain; crops of 2.5 % and 5 % per border; turns of
    /// +-2 degrees, alone and with the crops; moves by 1.5 % left, right, up and down (a
    /// perspective warp's corners shift the whole photo: at strength 0.22 on 10 photos x 6
    /// secrets these took perspective 2 % from 50 to 57 of 60 and print-like from 49 to 56; moves
    /// of 2.5 % gave 52 and 51, diagonal moves added nothing, moves of the 5 % crop view nothing).
    public static let search: [DecoderView] = {
        var v: [DecoderView] = [.plain, DecoderView(zoom: 1 / 0.95, degrees: 0), DecoderView(zoom: 1 / 0.9, degrees: 0)]
        for z in [1, 1 / 0.95, 1 / 0.9] { for d in [-2.0, 2.0] { v.append(DecoderView(zoom: z, degrees: d)) } }
        for (sx, sy) in [(0.015, 0.0), (-0.015, 0.0), (0.0, 0.015), (0.0, -0.015)] { v.append(DecoderView(zoom: 1, degrees: 0, shiftX: sx, shiftY: sy)) }
        return v
    }()

    public var description: String {
        if self == .plain { return "plain" }
        var parts: [String] = []
        if zoom != 1 { parts.append(String(format: "zoomed out %.3gx (a crop of %.3g %% per border)", zoom, 50 * (1 - 1 / zoom))) }
        if degrees != 0 { parts.append(String(format: "turned %+.3g degrees", degrees)) }
        if shiftX != 0 || shiftY != 0 { parts.append(String(format: "moved by %+.3g %%, %+.3g %%", 100 * shiftX, 100 * shiftY)) }
        return parts.joined(separator: ", ")
    }

    /// The plain model input seen through this view. `aspect` is the photo region's width over its
    /// height: the region was squeezed to the model's square, so a turn of the photo is a sheared
    /// turn of the model input.
    public func apply(to input: RGBImage, aspect: Double) -> RGBImage {
        if self == .plain { return input }
        let (w, h) = (input.width, input.height)
        let (cx, cy) = (Double(w - 1) / 2, Double(h - 1) / 2)
        // Model-input pixel p (relative to the centre) -> where its content sits in the damaged
        // photo's plain input: q = zoom * S^-1 R S p, with R the turn (y grows downwards) and
        // S = diag(aspect, 1) taking the model's square back to the region's proportions.
        let a = degrees * Double.pi / 180
        let (c, s) = (cos(a), sin(a))
        let m00 = c * zoom, m01 = -s / aspect * zoom, m10 = s * aspect * zoom, m11 = c * zoom
        var out = [Float](repeating: 1, count: w * h * 3)
        let src = input.pixels
        for y in 0..<h {
            for x in 0..<w {
                let (px, py) = (Double(x) - cx, Double(y) - cy)
                let qx = cx + shiftX * Double(w) + m00 * px + m01 * py, qy = cy + shiftY * Double(h) + m10 * px + m11 * py
                // Bilinear, white outside (the sample fades to white over the last pixel).
                let x0 = Int(floor(qx)), y0 = Int(floor(qy))
                let fx = Float(qx - Double(x0)), fy = Float(qy - Double(y0))
                for ch in 0..<3 {
                    func at(_ xx: Int, _ yy: Int) -> Float {
                        (xx >= 0 && xx < w && yy >= 0 && yy < h) ? src[(yy * w + xx) * 3 + ch] : 1
                    }
                    let top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx
                    let bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx
                    out[(y * w + x) * 3 + ch] = top * (1 - fy) + bottom * fy
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}
