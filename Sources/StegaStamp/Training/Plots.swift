import Foundation

/// An RGB canvas with lines, rectangles and a 3 x 5 pixel font (drawn at 2x): enough for the
/// training curves and sample grids a run writes as PNG, with no plotting library.
public struct Canvas {
    public let width: Int, height: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, background: (Float, Float, Float) = (1, 1, 1)) {
        self.width = width
        self.height = height
        pixels = [Float](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { (pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]) = background }
    }

    public var image: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }

    public mutating func set(_ x: Int, _ y: Int, _ c: (Float, Float, Float)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        (pixels[i], pixels[i + 1], pixels[i + 2]) = c
    }

    public mutating func rect(_ x0: Int, _ y0: Int, _ w: Int, _ h: Int, _ c: (Float, Float, Float)) {
        for y in y0..<(y0 + h) { for x in x0..<(x0 + w) { set(x, y, c) } }
    }

    /// A 2-pixel-wide line.
    public mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: (Float, Float, Float)) {
        let n = max(1, Int(max(abs(x1 - x0), abs(y1 - y0)).rounded(.up)))
        for k in 0...n {
            let t = Double(k) / Double(n)
            let x = Int((x0 + (x1 - x0) * t).rounded()), y = Int((y0 + (y1 - y0) * t).rounded())
            set(x, y, c); set(x + 1, y, c); set(x, y + 1, c)
        }
    }

    /// Pastes an image (already at its size).
    public mutating func paste(_ img: RGBImage, x: Int, y: Int) {
        for row in 0..<img.height { for col in 0..<img.width {
            let i = (row * img.width + col) * 3
            set(x + col, y + row, (img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]))
        } }
    }

    static let glyphs: [Character: [UInt8]] = {
        // Each glyph: 5 rows of 3 bits (MSB left).
        let rows: [Character: String] = [
            "0": "111 101 101 101 111", "1": "010 110 010 010 111", "2": "111 001 111 100 111", "3": "111 001 111 001 111",
            "4": "101 101 111 001 001", "5": "111 100 111 001 111", "6": "111 100 111 101 111", "7": "111 001 010 010 010",
            "8": "111 101 111 101 111", "9": "111 101 111 001 111", ".": "000 000 000 000 010", "-": "000 000 111 000 000",
            "+": "000 010 111 010 000", "_": "000 000 000 000 111", ":": "000 010 000 010 000", "/": "001 001 010 100 100",
            "%": "101 001 010 100 101", "(": "010 100 100 100 010", ")": "010 001 001 001 010", "=": "000 111 000 111 000",
            ",": "000 000 000 010 100", "x": "000 101 010 101 000", " ": "000 000 000 000 000",
            "a": "010 101 111 101 101", "b": "110 101 110 101 110", "c": "011 100 100 100 011", "d": "110 101 101 101 110",
            "e": "111 100 110 100 111", "f": "111 100 110 100 100", "g": "011 100 101 101 011", "h": "101 101 111 101 101",
            "i": "111 010 010 010 111", "j": "001 001 001 101 010", "k": "101 101 110 101 101", "l": "100 100 100 100 111",
            "m": "101 111 111 101 101", "n": "110 101 101 101 101", "o": "010 101 101 101 010", "p": "110 101 110 100 100",
            "q": "010 101 101 110 011", "r": "110 101 110 101 101", "s": "011 100 010 001 110", "t": "111 010 010 010 010",
            "u": "101 101 101 101 111", "v": "101 101 101 101 010", "w": "101 101 111 111 101", "y": "101 101 010 010 010",
            "z": "111 001 010 100 111",
        ]
        return rows.mapValues { $0.split(separator: " ").map { UInt8($0, radix: 2)! } }
    }()

    /// Text at (x, y) (top left), 2x scaled: 8 pixels per character, 10 high. Upper case is drawn as lower case.
    public mutating func text(_ s: String, x: Int, y: Int, _ c: (Float, Float, Float) = (0, 0, 0)) {
        var cx = x
        for ch in s.lowercased() {
            let g = Self.glyphs[ch] ?? Self.glyphs["-"]!
            for (r, bits) in g.enumerated() { for b in 0..<3 where bits & (4 >> b) != 0 { rect(cx + 2 * b, y + 2 * r, 2, 2, c) } }
            cx += 8
        }
    }

    public static func textWidth(_ s: String) -> Int { 8 * s.count }
}

/// Line plots of training curves, one panel per metric, several series per panel.
public enum Plots {
    public struct Series {
        public var name: String
        public var points: [(Double, Double)]
        public init(_ name: String, _ points: [(Double, Double)]) { self.name = name; self.points = points }
    }

    public struct Panel {
        public var title: String
        public var series: [Series]
        /// The x axis's unit, written after its largest value.
        public var xLabel: String
        /// A logarithmic y axis (positive values only), for losses spanning decades.
        public var logY: Bool
        /// A fixed y range (rates: 0...1), so that panels and runs compare at a glance; nil: the data's.
        public var yRange: ClosedRange<Double>?
        public init(_ title: String, _ series: [Series], xLabel: String = "step", logY: Bool = false, yRange: ClosedRange<Double>? = nil) {
            self.title = title; self.series = series; self.xLabel = xLabel; self.logY = logY; self.yRange = yRange
        }
    }

    static let colours: [(Float, Float, Float)] = [(0.12, 0.47, 0.71), (0.84, 0.15, 0.16), (0.17, 0.63, 0.17), (1.0, 0.5, 0.05), (0.58, 0.4, 0.74)]

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 10000 || abs(v) < 0.01 { return String(format: "%.1e", v) }
        if abs(v) >= 100 { return String(format: "%.0f", v) }
        return String(format: abs(v) >= 10 ? "%.1f" : "%.3f", v)
    }

    /// Panels in a grid of `columns`, each 420 x 260 pixels.
    public static func render(_ panels: [Panel], columns: Int = 2) -> RGBImage {
        let pw = 420, ph = 260
        let rows = (panels.count + columns - 1) / columns
        var c = Canvas(width: pw * columns, height: ph * max(rows, 1))
        for (k, p) in panels.enumerated() {
            let ox = (k % columns) * pw, oy = (k / columns) * ph
            let legendStep = min(130, (p.series.map { Canvas.textWidth($0.name) }.max() ?? 100) + 30)
            // Legend entries that would leave the panel go on further rows, taken from the plot.
            let perRow = max(1, (pw - 80) / legendStep)
            let legendRows = max(1, (p.series.count + perRow - 1) / perRow)
            let left = ox + 70, top = oy + 30, w = pw - 90, h = ph - 70 - 12 * (legendRows - 1)
            c.text(p.title, x: ox + 10, y: oy + 8)
            func y(_ v: Double) -> Double { p.logY ? log10(max(v, 1e-12)) : v }
            func shown(_ v: Double) -> Double { p.logY ? pow(10, v) : v }
            let all = p.series.flatMap(\.points).filter { $0.1.isFinite && (!p.logY || $0.1 > 0) }.map { ($0.0, y($0.1)) }
            c.rect(left, top, w, 1, (0.6, 0.6, 0.6)); c.rect(left, top + h, w, 1, (0.6, 0.6, 0.6))
            c.rect(left, top, 1, h, (0.6, 0.6, 0.6)); c.rect(left + w, top, 1, h + 1, (0.6, 0.6, 0.6))
            guard !all.isEmpty else { continue }
            let x0 = all.map(\.0).min()!, x1 = max(all.map(\.0).max()!, x0 + 1)
            var y0 = all.map(\.1).min()!, y1 = all.map(\.1).max()!
            if let r = p.yRange, !p.logY { (y0, y1) = (min(r.lowerBound, y0), max(r.upperBound, y1)) }
            if y1 - y0 < 1e-9 { y0 -= 0.5; y1 += 0.5 }
            for g in 1..<4 { c.rect(left + 1, top + h * g / 4, w - 1, 1, (0.92, 0.92, 0.92)) }
            c.text(label(shown(y1)), x: ox + 4, y: top - 4)
            c.text(label(shown((y0 + y1) / 2)), x: ox + 4, y: top + h / 2 - 4)
            c.text(label(shown(y0)), x: ox + 4, y: top + h - 6)
            c.text(p.xLabel == "step" ? String(Int(x0)) : label(x0), x: left, y: top + h + 6)
            let xr = p.xLabel == "step" ? "step " + String(Int(x1)) : label(x1) + " " + p.xLabel
            c.text(xr, x: left + w - Canvas.textWidth(xr), y: top + h + 6)
            for (si, s) in p.series.enumerated() {
                let col = colours[si % colours.count]
                let pts = s.points.filter { $0.1.isFinite && (!p.logY || $0.1 > 0) }.map {
                    (Double(left) + ($0.0 - x0) / (x1 - x0) * Double(w), Double(top + h) - (y($0.1) - y0) / (y1 - y0) * Double(h))
                }
                if pts.count == 1 { c.rect(Int(pts[0].0) - 2, Int(pts[0].1) - 2, 5, 5, col) }
                for i in 1..<max(pts.count, 1) { c.line(pts[i - 1].0, pts[i - 1].1, pts[i].0, pts[i].1, col) }
                let lx = left + 8 + legendStep * (si % perRow), ly = top + h + 22 + 12 * (si / perRow)
                c.rect(lx, ly + 2, 12, 6, col)
                c.text(s.name, x: lx + 16, y: ly)
            }
        }
        return c.image
    }
}
