import Dispatch
@_exported import FastKernelSupport

/// Direct NHWC convolution with a register tile of 6 output pixels x `lanes` output channels (12
/// accumulators: 16 channels with AVX2, 32 with AVX-512), weights repacked into blocks of `lanes`
/// channels, implicit padding so the inner loop has no bounds checks, and output rows spread over the cores. Convolutions with few output
/// channels are what BLAS does worst (N = 32 of an im2col GEMM); this kernel has no such shape.
public enum DirectConv {
    public typealias Geometry = DirectConvGeometry

    static let tile = 6
    /// Output channels per register-tile row: two `Half` vectors (16 with AVX2, 32 with AVX-512).
    static let lanes = 2 * half
    static let half = Half.scalarCount

    /// One part of an image that is the channel concatenation of several NHWC tensors (a U-Net's
    /// skip connection beside its upsampled path): `channels` of the image's channels, in order.
    public struct Part {
        public var x: UnsafePointer<Float>
        public var channels: Int
        public init(_ x: UnsafePointer<Float>, channels: Int) { (self.x, self.channels) = (x, channels) }
    }

    /// y = conv(x, k): x [n,h,w,ci], k [kh,kw,ci,co] (HWIO), y [n,oh,ow,co]. Zero padding is
    /// implicit: rows outside the image are skipped, and output pixels whose window leaves the image
    /// on the left or right take a one-pixel path over the valid columns only.
    /// With `bias` (co values) and `relu`, the epilogue of a fused conv + bias (+ ReLU) kernel is
    /// applied as each tile is stored, so the output is written once.
    public static func forward(_ x: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: Geometry,
                               bias: UnsafePointer<Float>? = nil, relu: Bool = false, workspace: Workspace) {
        forward(parts: [Part(x, channels: g.ci)], k, y, g, bias: bias, relu: relu, workspace: workspace)
    }

    /// The same over an image given as the concatenation of `parts` along its channels (their
    /// channels add up to g.ci): each register tile sums over the parts in turn, so the
    /// concatenated image is never written. One part is the plain convolution, bit for bit.
    public static func forward(parts: [Part], _ k: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: Geometry,
                               bias: UnsafePointer<Float>? = nil, relu: Bool = false, workspace: Workspace) {
        precondition(parts.reduce(0) { $0 + $1.channels } == g.ci, "the parts' channels must add up to the image's")
        // Weights: [block][part][kh][kw * part's channels][lanes], zero lanes past co.
        let blocks = (g.co + lanes - 1) / lanes
        let blockSize = g.kh * g.kw * g.ci * lanes
        let packed = workspace.buffer(.packedWeights, blocks * blockSize, of: Float.self)
        packed.initialize(repeating: 0, count: blocks * blockSize)
        // Per part: its channels, first channel, and where its weights start in a block.
        var layout: [(x: UnsafePointer<Float>, ci: Int, inner: Int, weights: Int)] = []
        var first = 0
        for part in parts {
            let (ci, inner) = (part.channels, g.kw * part.channels)
            layout.append((part.x, ci, inner, g.kh * g.kw * first * lanes))
            for i in 0..<g.kh {
                for jx in 0..<g.kw {
                    for q in 0..<ci {
                        let src = k + ((i * g.kw + jx) * g.ci + first + q) * g.co
                        let dst = packed + g.kh * g.kw * first * lanes + (i * inner + jx * ci + q) * lanes
                        for o in 0..<g.co { dst[o / lanes * blockSize + o % lanes] = src[o] }
                    }
                }
            }
            first += ci
        }
        layout = layout.filter { $0.ci > 0 }
        // Bias padded to whole blocks of lanes (zeros without a bias).
        let biasPadded = workspace.buffer(.bias, blocks * lanes, of: Float.self)
        biasPadded.initialize(repeating: 0, count: blocks * lanes)
        if let bias { biasPadded.update(from: bias, count: g.co) }
        let epilogue = Epilogue(relu: relu)
        // Output columns whose whole window is inside the image: [first, last).
        var interior = 0
        while interior < g.ow && interior * g.sw - g.pl < 0 { interior += 1 }
        var last = g.ow
        while last > interior && (last - 1) * g.sw - g.pl + g.kw > g.w { last -= 1 }
        let rows = g.n * g.oh
        let work = { (r: Int) in
            let b = r / g.oh, oy = r % g.oh
            let out = y + b * g.outImageStride + oy * g.outRowStride
            let ps = g.outPixelStride
            // Kernel rows that land inside the image.
            let top = oy * g.sh - g.pt
            let i0 = max(0, -top), i1 = min(g.kh, g.h - top)
            withUnsafeTemporaryAllocation(of: Half.self, capacity: 12) { accBuffer in
            let acc = accBuffer.baseAddress!
            for blk in 0..<blocks {
                let valid = min(lanes, g.co - blk * lanes)
                let wBlock = UnsafePointer(packed + blk * blockSize)
                let outBlock = out + blk * lanes
                var e = epilogue
                e.b0 = load(biasPadded + blk * lanes)
                e.b1 = load(biasPadded + blk * lanes + half)
                if i1 <= i0 || layout.isEmpty {
                    for ox in 0..<g.ow { e.store(Half(), Half(), outBlock + ox * ps, valid: valid) }
                    continue
                }
                let kh = i1 - i0
                // Part p's input at image column `column` of the first valid kernel row, and its weights from that row.
                @inline(__always) func input(_ p: Int, _ column: Int) -> UnsafePointer<Float> {
                    layout[p].x + ((b * g.h + top + i0) * g.w + column) * layout[p].ci
                }
                @inline(__always) func weights(_ p: Int) -> UnsafePointer<Float> { wBlock + layout[p].weights + i0 * layout[p].inner * lanes }
                func edge(_ ox: Int) {
                    let left = ox * g.sw - g.pl
                    let j0 = max(0, -left), j1 = min(g.kw, g.w - left)
                    if j1 <= j0 { e.store(Half(), Half(), outBlock + ox * ps, valid: valid); return }
                    for p in layout.indices {
                        let ci = layout[p].ci
                        sums1(input(p, left + j0), rowStride: g.w * ci, weights(p) + j0 * ci * lanes, kh: kh, inner: layout[p].inner,
                              length: (j1 - j0) * ci, acc, accumulate: p > 0)
                    }
                    e.store(acc[0], acc[1], outBlock + ox * ps, valid: valid)
                }
                for ox in 0..<interior { edge(ox) }
                var ox = interior
                // A block with at most half its lanes valid (few output channels): 12 pixels on
                // one vector each instead of 6 on two, half the instructions per output.
                if valid <= half {
                    while ox + 2 * tile <= last {
                        for p in layout.indices {
                            let ci = layout[p].ci
                            sums12Half(input(p, ox * g.sw - g.pl), pixelStride: g.sw * ci, rowStride: g.w * ci, weights(p), kh: kh,
                                       inner: layout[p].inner, acc, accumulate: p > 0)
                        }
                        for q in 0..<(2 * tile) { e.storeHalf(acc[q], outBlock + (ox + q) * ps, valid: valid) }
                        ox += 2 * tile
                    }
                }
                // Whole tiles, then 3 to 5 interior pixels left as one tile with its last pixel
                // repeated (it costs a full tile, less than 3 latency-bound single pixels).
                while ox + tile <= last || last - ox >= 3 {
                    let pixels = min(tile, last - ox), lastPixel = pixels - 1
                    for p in layout.indices {
                        let ci = layout[p].ci, pixelStride = g.sw * ci
                        sums6(input(p, ox * g.sw - g.pl),
                              strides: (min(1, lastPixel) * pixelStride, min(2, lastPixel) * pixelStride, min(3, lastPixel) * pixelStride,
                                        min(4, lastPixel) * pixelStride, min(5, lastPixel) * pixelStride),
                              rowStride: g.w * ci, weights(p), kh: kh, inner: layout[p].inner, acc, accumulate: p > 0)
                    }
                    for q in 0..<pixels { e.store(acc[2 * q], acc[2 * q + 1], outBlock + (ox + q) * ps, valid: valid) }
                    ox += pixels
                }
                while ox < g.ow { edge(ox); ox += 1 }
            }
            }
        }
        if rows >= 2 && g.oh * g.ow * g.co * g.kw * g.ci * g.kh >= 1 << 15 {
            Parallel.forEach(rows) { work($0) }
        } else {
            for r in 0..<rows { work(r) }
        }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Half { UnsafeRawPointer(p).loadUnaligned(as: Half.self) }

    /// Bias (+ ReLU) applied to a tile row as it is stored.
    struct Epilogue {
        var relu: Bool
        var b0 = Half(), b1 = Half()
        init(relu: Bool) { self.relu = relu }

        @inline(__always)
        func store(_ v0: Half, _ v1: Half, _ out: UnsafeMutablePointer<Float>, valid: Int) {
            var r0 = v0 + b0, r1 = v1 + b1
            if relu {
                r0 = r0.replacing(with: 0, where: r0 .< 0)
                r1 = r1.replacing(with: 0, where: r1 .< 0)
            }
            DirectConv.store(r0, r1, out, valid: valid)
        }

        /// The first `valid` (<= half) lanes of a half-width result.
        @inline(__always)
        func storeHalf(_ v: Half, _ out: UnsafeMutablePointer<Float>, valid: Int) {
            var r = v + b0
            if relu { r = r.replacing(with: 0, where: r .< 0) }
            for l in 0..<valid { out[l] = r[l] }
        }
    }

    @inline(__always)
    static func store(_ v0: Half, _ v1: Half, _ out: UnsafeMutablePointer<Float>, valid: Int) {
        if valid == lanes {
            UnsafeMutableRawPointer(out).storeBytes(of: v0, as: Half.self)
            UnsafeMutableRawPointer(out + half).storeBytes(of: v1, as: Half.self)
        } else {
            for l in 0..<valid { out[l] = l < half ? v0[l] : v1[l - half] }
        }
    }

    /// Six output pixels, `lanes` channels. With `pixels` < 6, only that many: the others repeat
    /// the last one's input and are not stored.
    @inline(__always)
    static func tile6(_ x: UnsafePointer<Float>, pixelStride ps: Int, rowStride rs: Int, _ w: UnsafePointer<Float>, kh: Int, inner: Int,
                      _ out: UnsafeMutablePointer<Float>, outStride os: Int, valid: Int, _ e: Epilogue, pixels: Int = 6) {
        withUnsafeTemporaryAllocation(of: Half.self, capacity: 12) { acc in
            let last = pixels - 1
            sums6(x, strides: (min(1, last) * ps, min(2, last) * ps, min(3, last) * ps, min(4, last) * ps, min(5, last) * ps),
                  rowStride: rs, w, kh: kh, inner: inner, acc.baseAddress!, accumulate: false)
            for p in 0..<pixels { e.store(acc[2 * p], acc[2 * p + 1], out + p * os, valid: valid) }
        }
    }

    /// The sums of `tile6` into `acc` (pixel p's two halves at 2p, 2p + 1). One loop over every
    /// (kernel row, position) with the row step a branch, in a function of its own: a loop nest
    /// inlined into the caller had LLVM give the inner loop's accumulators other registers than the
    /// outer loop's and copy 8 of them on every inner iteration (20 instructions beside 12 FMAs,
    /// seen in the AVX-512 build, 2026-12-02).
    @inline(never)
    static func sums6(_ x: UnsafePointer<Float>, strides: (Int, Int, Int, Int, Int), rowStride rs: Int, _ w: UnsafePointer<Float>,
                      kh: Int, inner: Int, _ acc: UnsafeMutablePointer<Half>, accumulate: Bool) {
        var a0 = Half(), a1 = Half(), b0 = Half(), b1 = Half()
        var c0 = Half(), c1 = Half(), d0 = Half(), d1 = Half()
        var e0 = Half(), e1 = Half(), f0 = Half(), f1 = Half()
        if accumulate {
            (a0, a1, b0, b1, c0, c1) = (acc[0], acc[1], acc[2], acc[3], acc[4], acc[5])
            (d0, d1, e0, e1, f0, f1) = (acc[6], acc[7], acc[8], acc[9], acc[10], acc[11])
        }
        let (s1, s2, s3, s4, s5) = strides
        // The loop runs at least once: nothing to sum leaves the sums as they are.
        guard kh > 0 && inner > 0 else { if !accumulate { acc.initialize(repeating: Half(), count: 12) }; return }
        var r0 = x, wr = w, j = 0, rows = kh
        repeat {
            let w0 = load(wr), w1 = load(wr + half)
            let pa = Half(repeating: r0[j]), pb = Half(repeating: r0[j + s1])
            let pc = Half(repeating: r0[j + s2])
            a0.addProduct(pa, w0); a1.addProduct(pa, w1)
            b0.addProduct(pb, w0); b1.addProduct(pb, w1)
            c0.addProduct(pc, w0); c1.addProduct(pc, w1)
            let pd = Half(repeating: r0[j + s3]), pe = Half(repeating: r0[j + s4])
            let pf = Half(repeating: r0[j + s5])
            d0.addProduct(pd, w0); d1.addProduct(pd, w1)
            e0.addProduct(pe, w0); e1.addProduct(pe, w1)
            f0.addProduct(pf, w0); f1.addProduct(pf, w1)
            wr += lanes
            j += 1
            if j == inner { j = 0; r0 += rs; rows -= 1 }
        } while rows > 0
        acc[0] = a0; acc[1] = a1; acc[2] = b0; acc[3] = b1; acc[4] = c0; acc[5] = c1
        acc[6] = d0; acc[7] = d1; acc[8] = e0; acc[9] = e1; acc[10] = f0; acc[11] = f1
    }

    /// Twelve output pixels, the first `half` channels of a block (`valid` <= half of them stored).
    @inline(__always)
    static func tile12Half(_ x: UnsafePointer<Float>, pixelStride ps: Int, rowStride rs: Int, _ w: UnsafePointer<Float>, kh: Int,
                           inner: Int, _ out: UnsafeMutablePointer<Float>, outStride os: Int, valid: Int, _ e: Epilogue) {
        withUnsafeTemporaryAllocation(of: Half.self, capacity: 12) { acc in
            sums12Half(x, pixelStride: ps, rowStride: rs, w, kh: kh, inner: inner, acc.baseAddress!, accumulate: false)
            for p in 0..<12 { e.storeHalf(acc[p], out + p * os, valid: valid) }
        }
    }

    /// The sums of `tile12Half` into acc[0..<12] (added to what is there with `accumulate`).
    @inline(never)
    static func sums12Half(_ x: UnsafePointer<Float>, pixelStride ps: Int, rowStride rs: Int, _ w: UnsafePointer<Float>, kh: Int,
                           inner: Int, _ acc: UnsafeMutablePointer<Half>, accumulate: Bool) {
        var a0 = Half(), a1 = Half(), a2 = Half(), a3 = Half(), a4 = Half(), a5 = Half()
        var a6 = Half(), a7 = Half(), a8 = Half(), a9 = Half(), a10 = Half(), a11 = Half()
        if accumulate {
            (a0, a1, a2, a3, a4, a5) = (acc[0], acc[1], acc[2], acc[3], acc[4], acc[5])
            (a6, a7, a8, a9, a10, a11) = (acc[6], acc[7], acc[8], acc[9], acc[10], acc[11])
        }
        // One loop, as in `tile6`.
        let (s1, s2, s3, s4, s5, s6) = (ps, 2 * ps, 3 * ps, 4 * ps, 5 * ps, 6 * ps)
        var p = x, wr = w, j = 0, rows = kh
        if kh > 0 && inner > 0 { repeat {
            let wv = load(wr)
            let q = p + s6
            a0.addProduct(Half(repeating: p[j]), wv); a1.addProduct(Half(repeating: p[j + s1]), wv)
            a2.addProduct(Half(repeating: p[j + s2]), wv); a3.addProduct(Half(repeating: p[j + s3]), wv)
            a4.addProduct(Half(repeating: p[j + s4]), wv); a5.addProduct(Half(repeating: p[j + s5]), wv)
            a6.addProduct(Half(repeating: q[j]), wv); a7.addProduct(Half(repeating: q[j + s1]), wv)
            a8.addProduct(Half(repeating: q[j + s2]), wv); a9.addProduct(Half(repeating: q[j + s3]), wv)
            a10.addProduct(Half(repeating: q[j + s4]), wv); a11.addProduct(Half(repeating: q[j + s5]), wv)
            wr += lanes
            j += 1
            if j == inner { j = 0; p += rs; rows -= 1 }
        } while rows > 0 }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5
        acc[6] = a6; acc[7] = a7; acc[8] = a8; acc[9] = a9; acc[10] = a10; acc[11] = a11
    }

    /// One output pixel, `lanes` channels: `length` consecutive (kw, ci) positions of each kernel row
    /// (the valid columns at an image border; all of them inside).
    @inline(__always)
    static func tile1(_ x: UnsafePointer<Float>, rowStride rs: Int, _ w: UnsafePointer<Float>, kh: Int, inner: Int, length: Int,
                      _ out: UnsafeMutablePointer<Float>, valid: Int, _ e: Epilogue) {
        withUnsafeTemporaryAllocation(of: Half.self, capacity: 2) { acc in
            sums1(x, rowStride: rs, w, kh: kh, inner: inner, length: length, acc.baseAddress!, accumulate: false)
            e.store(acc[0], acc[1], out, valid: valid)
        }
    }

    /// The sums of `tile1` into acc[0], acc[1] (added to what is there with `accumulate`).
    @inline(__always)
    static func sums1(_ x: UnsafePointer<Float>, rowStride rs: Int, _ w: UnsafePointer<Float>, kh: Int, inner: Int, length: Int,
                      _ acc: UnsafeMutablePointer<Half>, accumulate: Bool) {
        // Four independent pairs of sums (positions j mod 4), so the FMAs do not wait on each
        // other's latency: one pixel has no other pixels to interleave.
        var a0 = Half(), a1 = Half(), b0 = Half(), b1 = Half(), c0 = Half(), c1 = Half(), d0 = Half(), d1 = Half()
        for i in 0..<kh {
            let row = x + i * rs
            var wr = w + i * inner * lanes
            var j = 0
            while j + 4 <= length {
                let p = Half(repeating: row[j]), q = Half(repeating: row[j + 1])
                let r = Half(repeating: row[j + 2]), s = Half(repeating: row[j + 3])
                a0.addProduct(p, load(wr)); a1.addProduct(p, load(wr + half))
                b0.addProduct(q, load(wr + lanes)); b1.addProduct(q, load(wr + lanes + half))
                c0.addProduct(r, load(wr + 2 * lanes)); c1.addProduct(r, load(wr + 2 * lanes + half))
                d0.addProduct(s, load(wr + 3 * lanes)); d1.addProduct(s, load(wr + 3 * lanes + half))
                wr += 4 * lanes
                j += 4
            }
            while j < length {
                let p = Half(repeating: row[j])
                a0.addProduct(p, load(wr)); a1.addProduct(p, load(wr + half))
                wr += lanes
                j += 1
            }
        }
        let s0 = (a0 + b0) + (c0 + d0), s1 = (a1 + b1) + (c1 + d1)
        if accumulate { acc[0] += s0; acc[1] += s1 } else { acc[0] = s0; acc[1] = s1 }
    }
}
