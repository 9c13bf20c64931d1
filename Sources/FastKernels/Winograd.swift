import Dispatch

/// 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016): each
/// 2x2 block of outputs ("tile") costs 16 products per channel pair instead of 36. Per tile the 4x4
/// input patch d becomes V = Bt d B, the kernel g becomes U = G g Gt (once per call), the 16
/// positions of V . U are 16 independent [tiles x ci] x [ci x co] products (the direct kernel's
/// 6 x lanes register tile, as a 1x1 convolution), and Y = At M A gives the 2x2 outputs. Tiles are
/// processed in segments of consecutive tiles (across rows and images) small enough for the
/// transformed data to stay in cache, the segments handed out to the cores one at a time.
extension DirectConv {
    /// Whether `winograd` takes this convolution: 3x3, stride 1, and enough channels for the
    /// products to run at the register tile's speed.
    public static func winogradApplies(_ g: Geometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.ci >= 16 && g.co >= 16 && g.oh >= 2 && g.ow >= 2 && g.denseOutput
    }

    /// Tiles per segment: at most 48, fewer where the channels are many, so that a core's V and M
    /// (16 x segment x (ci + co) floats) stay near 384 KiB, inside its L2 cache (4x32x32x128 -> 64:
    /// 1.2 ms with 30-tile segments across rows, 1.6 ms with one 16-tile row each). The weight
    /// gradient keeps 48: its accumulators are per channel pair, not per tile, and longer segments
    /// amortise them.
    static func segmentLength(ci: Int, co: Int) -> Int {
        let fit = (384 * 1024 / 4) / (16 * (ci + co))
        return max(12, min(48, fit / tile * tile))
    }

    public static func winograd(_ x: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: Geometry,
                                bias: UnsafePointer<Float>? = nil, relu: Bool = false, workspace: Workspace) {
        let (ci, co) = (g.ci, g.co)
        let blocks = (co + lanes - 1) / lanes
        // U[e][block][ci][lanes]: the transformed kernel in the register tile's packed layout.
        let u = workspace.buffer(.packedWeights, 16 * blocks * ci * lanes, of: Float.self)
        u.update(repeating: 0, count: 16 * blocks * ci * lanes)
        for q in 0..<ci {
            for o in 0..<co {
                @inline(__always) func w(_ i: Int, _ j: Int) -> Float { k[((i * 3 + j) * ci + q) * co + o] }
                // t = G w (4x3): rows w0, (w0+w1+w2)/2, (w0-w1+w2)/2, w2 of the kernel's rows.
                @inline(__always) func t(_ i: Int, _ j: Int) -> Float {
                    switch i {
                    case 0: return w(0, j)
                    case 1: return 0.5 * (w(0, j) + w(1, j) + w(2, j))
                    case 2: return 0.5 * (w(0, j) - w(1, j) + w(2, j))
                    default: return w(2, j)
                    }
                }
                // U = t Gt (4x4), the same combination along the columns.
                for i in 0..<4 {
                    let (a, b, c) = (t(i, 0), t(i, 1), t(i, 2))
                    let row = (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
                    @inline(__always) func put(_ j: Int, _ value: Float) {
                        u[((((i * 4 + j) * blocks + o / lanes) * ci) + q) * lanes + o % lanes] = value
                    }
                    put(0, row.0); put(1, row.1); put(2, row.2); put(3, row.3)
                }
            }
        }
        let biasPadded = workspace.buffer(.bias, blocks * lanes, of: Float.self)
        biasPadded.update(repeating: 0, count: blocks * lanes)
        if let bias { biasPadded.update(from: bias, count: co) }
        let th = (g.oh + 1) / 2, tw = (g.ow + 1) / 2
        let tiles = g.n * th * tw
        let segment = segmentLength(ci: ci, co: co)
        let jobs = (tiles + segment - 1) / segment
        let parts = jobs >= 2 ? 2 : 1
        // Per core: V [16][segment][ci] and M [16][segment][co].
        let vSize = 16 * segment * ci, mSize = 16 * segment * co
        let buffers = (workspace.buffer(.rows0, vSize + mSize, of: Float.self), workspace.buffer(.rows1, vSize + mSize, of: Float.self))
        let uPacked = UnsafePointer(u), biasP = UnsafePointer(biasPadded)
        let work = { (part: Int, job: Int) in
            let v = part == 0 ? buffers.0 : buffers.1
            let m = v + vSize
            let e = Epilogue(relu: false)  // plain stores into M
            let first = job * segment, count = min(segment, tiles - first)
            inputTransform(x, g, first: first, count: count, segment: segment, into: v)
            // 16 products [count x ci] x [ci x co] into M.
            for p in 0..<16 {
                let vp = UnsafePointer(v + p * segment * ci), mp = m + p * segment * co
                for blk in 0..<blocks {
                    let wBlock = uPacked + (p * blocks + blk) * ci * lanes
                    let valid = min(lanes, co - blk * lanes)
                    var t = 0
                    if valid <= half {
                        while t + 2 * tile <= count {
                            tile12Half(vp + t * ci, pixelStride: ci, rowStride: 0, wBlock, kh: 1, inner: ci,
                                       mp + t * co + blk * lanes, outStride: co, valid: valid, e)
                            t += 2 * tile
                        }
                    }
                    while t + tile <= count {
                        tile6(vp + t * ci, pixelStride: ci, rowStride: 0, wBlock, kh: 1, inner: ci,
                              mp + t * co + blk * lanes, outStride: co, valid: valid, e)
                        t += tile
                    }
                    while t < count {
                        tile1(vp + t * ci, rowStride: 0, wBlock, kh: 1, inner: ci, length: ci, mp + t * co + blk * lanes, valid: valid, e)
                        t += 1
                    }
                }
            }
            outputTransform(UnsafePointer(m), g, first: first, count: count, segment: segment, bias: biasP, relu: relu, into: y)
        }
        Parallel.forEachJob(jobs, slots: parts) { work($0, $1) }
    }

    /// Image, tile row and tile column of tile `q` (tiles numbered along rows, image after image):
    /// a segment is any run of consecutive tiles, so small images fill whole segments too.
    @inline(__always)
    static func tileOrigin(_ q: Int, _ g: Geometry) -> (b: Int, ty: Int, tx: Int) {
        let th = (g.oh + 1) / 2, tw = (g.ow + 1) / 2
        return (q / (th * tw), (q / tw) % th, q % tw)
    }

    /// V[e][t][c] = (Bt d B)[e] for the tiles first..<first+count, d the zero-padded 4x4 patch.
    static func inputTransform(_ x: UnsafePointer<Float>, _ g: Geometry, first: Int, count: Int, segment: Int,
                               into v: UnsafeMutablePointer<Float>) {
        let ci = g.ci
        let stride = segment * ci  // between positions e
        for t in 0..<count {
            let (b, ty, tx) = tileOrigin(first + t, g)
            let top = 2 * ty - g.pt, left = 2 * tx - g.pl
            // Rows and columns of the patch inside the image.
            func rowPointer(_ i: Int) -> UnsafePointer<Float>? {
                let iy = top + i
                return iy >= 0 && iy < g.h ? x + (b * g.h + iy) * g.w * ci : nil
            }
            let rows = (rowPointer(0), rowPointer(1), rowPointer(2), rowPointer(3))
            let inside = (left >= 0 && left < g.w, left + 1 >= 0 && left + 1 < g.w,
                          left + 2 >= 0 && left + 2 < g.w, left + 3 >= 0 && left + 3 < g.w)
            let out = v + t * ci
            var c = 0
            while c < ci {
                let n = min(8, ci - c)
                @inline(__always) func at(_ r: UnsafePointer<Float>?, _ j: Int) -> SIMD8<Float> {
                    let ok = j == 0 ? inside.0 : j == 1 ? inside.1 : j == 2 ? inside.2 : inside.3
                    guard let r, ok else { return SIMD8<Float>() }
                    let p = r + (left + j) * ci + c
                    if n == 8 { return load8(p) }
                    var s = SIMD8<Float>()
                    for l in 0..<n { s[l] = p[l] }
                    return s
                }
                // d rows -> t = Bt d (rows), then V = t B (columns).
                let d0 = (at(rows.0, 0), at(rows.0, 1), at(rows.0, 2), at(rows.0, 3))
                let d1 = (at(rows.1, 0), at(rows.1, 1), at(rows.1, 2), at(rows.1, 3))
                let d2 = (at(rows.2, 0), at(rows.2, 1), at(rows.2, 2), at(rows.2, 3))
                let d3 = (at(rows.3, 0), at(rows.3, 1), at(rows.3, 2), at(rows.3, 3))
                let t0 = (d0.0 - d2.0, d0.1 - d2.1, d0.2 - d2.2, d0.3 - d2.3)
                let t1 = (d1.0 + d2.0, d1.1 + d2.1, d1.2 + d2.2, d1.3 + d2.3)
                let t2 = (d2.0 - d1.0, d2.1 - d1.1, d2.2 - d1.2, d2.3 - d1.3)
                let t3 = (d1.0 - d3.0, d1.1 - d3.1, d1.2 - d3.2, d1.3 - d3.3)
                @inline(__always) func put(_ i: Int, _ r: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
                    let vals = (r.0 - r.2, r.1 + r.2, r.2 - r.1, r.1 - r.3)
                    store8(vals.0, out + (i * 4 + 0) * stride + c, n)
                    store8(vals.1, out + (i * 4 + 1) * stride + c, n)
                    store8(vals.2, out + (i * 4 + 2) * stride + c, n)
                    store8(vals.3, out + (i * 4 + 3) * stride + c, n)
                }
                put(0, t0); put(1, t1); put(2, t2); put(3, t3)
                c += 8
            }
        }
    }

    /// y = At M A (+ bias, ReLU) for the tiles of one segment, clipped to the output.
    static func outputTransform(_ m: UnsafePointer<Float>, _ g: Geometry, first: Int, count: Int, segment: Int,
                                bias: UnsafePointer<Float>, relu: Bool, into y: UnsafeMutablePointer<Float>) {
        let co = g.co
        let stride = segment * co
        for t in 0..<count {
            let (b, ty, tx) = tileOrigin(first + t, g)
            let oy = 2 * ty, ox = 2 * tx
            let src = m + t * co
            var c = 0
            while c < co {
                let n = min(8, co - c)
                @inline(__always) func at(_ e: Int) -> SIMD8<Float> {
                    let p = src + e * stride + c
                    if n == 8 { return load8(p) }
                    var s = SIMD8<Float>()
                    for l in 0..<n { s[l] = p[l] }
                    return s
                }
                // r = At m (rows), Y = r A (columns).
                let m0 = (at(0), at(1), at(2), at(3)), m1 = (at(4), at(5), at(6), at(7))
                let m2 = (at(8), at(9), at(10), at(11)), m3 = (at(12), at(13), at(14), at(15))
                let r0 = (m0.0 + m1.0 + m2.0, m0.1 + m1.1 + m2.1, m0.2 + m1.2 + m2.2, m0.3 + m1.3 + m2.3)
                let r1 = (m1.0 - m2.0 - m3.0, m1.1 - m2.1 - m3.1, m1.2 - m2.2 - m3.2, m1.3 - m2.3 - m3.3)
                let bv = load8(bias + c)
                @inline(__always) func emit(_ i: Int, _ r: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
                    let row = oy + i
                    if row >= g.oh { return }
                    var a = r.0 + r.1 + r.2 + bv, z = r.1 - r.2 - r.3 + bv
                    if relu { a = a.replacing(with: 0, where: a .< 0); z = z.replacing(with: 0, where: z .< 0) }
                    let base = y + ((b * g.oh + row) * g.ow + ox) * co + c
                    store8(a, base, n)
                    if ox + 1 < g.ow { store8(z, base + co, n) }
                }
                emit(0, r0); emit(1, r1)
                c += 8
            }
        }
    }

    /// The transforms work in 8-channel chunks whatever the build's vector width (they are
    /// memory-bound; the products are where the width matters).
    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

    @inline(__always)
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) } else { for l in 0..<n { p[l] = v[l] } }
    }
}

extension DirectConv {
    /// The weight gradient of a 3x3 stride-1 convolution by Winograd F(2x2, 3x3): for every tile,
    /// the input patch's V = Bt d B and the output gradient's W = A dy At (a 2x2 block of dy made
    /// 4x4) are multiplied position by position and summed over all tiles, M[e] += V[e]^T W[e]
    /// (16 products [ci x tiles] x [tiles x co]); then dk = Gt M G. 16 products per tile and
    /// channel pair instead of 36. Each core sums its half of the segments into its own M.
    public static func winogradFilterGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dk: UnsafeMutablePointer<Float>,
                                              _ g: Geometry, workspace: Workspace) {
        let (ci, co) = (g.ci, g.co)
        let blocks = (co + lanes - 1) / lanes
        let cop = blocks * lanes
        let th = (g.oh + 1) / 2, tw = (g.ow + 1) / 2
        let tiles = g.n * th * tw
        let segment = 48
        let jobs = (tiles + segment - 1) / segment
        let parts = jobs >= 2 ? 2 : 1
        let mSize = 16 * ci * cop
        let sums = workspace.buffer(.partials, parts * mSize, of: Float.self)
        sums.update(repeating: 0, count: parts * mSize)
        let vSize = 16 * segment * ci, wSize = 16 * segment * cop
        let buffers = (workspace.buffer(.rows0, vSize + wSize, of: Float.self), workspace.buffer(.rows1, vSize + wSize, of: Float.self))
        let ciTiles = (ci + tile - 1) / tile
        let work = { (part: Int, job: Int) in
            let v = part == 0 ? buffers.0 : buffers.1
            let w = v + vSize
            let m = sums + part * mSize  // M[e][ci][cop]
            let first = job * segment, count = min(segment, tiles - first)
            inputTransform(x, g, first: first, count: count, segment: segment, into: v)
            gradientTransform(dy, g, first: first, count: count, segment: segment, cop: cop, into: w)
            for e in 0..<16 {
                let ve = UnsafePointer(v + e * segment * ci), we = UnsafePointer(w + e * segment * cop), me = m + e * ci * cop
                for ct in 0..<ciTiles {
                    let c0 = ct * tile, rows = min(tile, ci - c0)
                    for blk in 0..<blocks {
                        let a = me + c0 * cop + blk * lanes
                        let wb = we + blk * lanes
                        if rows == tile {
                            var a0 = load(a), a1 = load(a + half), b0 = load(a + cop), b1 = load(a + cop + half)
                            var c0v = load(a + 2 * cop), c1v = load(a + 2 * cop + half), d0 = load(a + 3 * cop), d1 = load(a + 3 * cop + half)
                            var e0 = load(a + 4 * cop), e1 = load(a + 4 * cop + half), f0 = load(a + 5 * cop), f1 = load(a + 5 * cop + half)
                            var vr = ve + c0, wr = wb
                            for _ in 0..<count {
                                let g0 = load(wr), g1 = load(wr + half)
                                let pa = Half(repeating: vr[0]), pb = Half(repeating: vr[1]), pc = Half(repeating: vr[2])
                                a0.addProduct(pa, g0); a1.addProduct(pa, g1)
                                b0.addProduct(pb, g0); b1.addProduct(pb, g1)
                                c0v.addProduct(pc, g0); c1v.addProduct(pc, g1)
                                let pd = Half(repeating: vr[3]), pe = Half(repeating: vr[4]), pf = Half(repeating: vr[5])
                                d0.addProduct(pd, g0); d1.addProduct(pd, g1)
                                e0.addProduct(pe, g0); e1.addProduct(pe, g1)
                                f0.addProduct(pf, g0); f1.addProduct(pf, g1)
                                vr += ci; wr += cop
                            }
                            store(a0, a); store(a1, a + half); store(b0, a + cop); store(b1, a + cop + half)
                            store(c0v, a + 2 * cop); store(c1v, a + 2 * cop + half); store(d0, a + 3 * cop); store(d1, a + 3 * cop + half)
                            store(e0, a + 4 * cop); store(e1, a + 4 * cop + half); store(f0, a + 5 * cop); store(f1, a + 5 * cop + half)
                        } else {
                            for t in 0..<count {
                                let g0 = load(wb + t * cop), g1 = load(wb + t * cop + half)
                                for r in 0..<rows {
                                    let p = Half(repeating: ve[t * ci + c0 + r])
                                    store(load(a + r * cop).addingProduct(p, g0), a + r * cop)
                                    store(load(a + r * cop + half).addingProduct(p, g1), a + r * cop + half)
                                }
                            }
                        }
                    }
                }
            }
        }
        // Fixed halves: the segments a core sums into its M must not depend on timing (run-to-run
        // identical gradients).
        Parallel.forEach(parts) { part in
            for job in (jobs * part / parts)..<(jobs * (part + 1) / parts) { work(part, job) }
        }
        // dk[i][j][q][o] = (Gt M G)[i][j], M summed over the cores.
        for q in 0..<ci {
            for o in 0..<co {
                @inline(__always) func mm(_ e: Int) -> Float {
                    var s = sums[(e * ci + q) * cop + o]
                    if parts == 2 { s += sums[mSize + (e * ci + q) * cop + o] }
                    return s
                }
                // t = Gt M (3x4): rows M0 + (M1+M2)/2, (M1-M2)/2, (M1+M2)/2 + M3.
                @inline(__always) func t(_ i: Int, _ j: Int) -> Float {
                    let (r0, r1, r2, r3) = (mm(j), mm(4 + j), mm(8 + j), mm(12 + j))
                    switch i {
                    case 0: return r0 + 0.5 * (r1 + r2)
                    case 1: return 0.5 * (r1 - r2)
                    default: return 0.5 * (r1 + r2) + r3
                    }
                }
                for i in 0..<3 {
                    let (a, b, c, d) = (t(i, 0), t(i, 1), t(i, 2), t(i, 3))
                    dk[((i * 3 + 0) * ci + q) * co + o] = a + 0.5 * (b + c)
                    dk[((i * 3 + 1) * ci + q) * co + o] = 0.5 * (b - c)
                    dk[((i * 3 + 2) * ci + q) * co + o] = 0.5 * (b + c) + d
                }
            }
        }
    }

    /// W[e][t][o] = (A y At)[e] for the 2x2 blocks of dy of the tiles first..<first+count (zero past the output's edge),
    /// channels padded to `cop` with zeros.
    static func gradientTransform(_ dy: UnsafePointer<Float>, _ g: Geometry, first: Int, count: Int, segment: Int, cop: Int,
                                  into w: UnsafeMutablePointer<Float>) {
        let co = g.co
        let stride = segment * cop
        for t in 0..<count {
            let (b, ty, tx) = tileOrigin(first + t, g)
            let oy = 2 * ty, ox = 2 * tx
            let out = w + t * cop
            var c = 0
            while c < cop {
                let n = max(0, min(8, co - c))
                @inline(__always) func at(_ i: Int, _ j: Int) -> SIMD8<Float> {
                    let row = oy + i, col = ox + j
                    if n == 0 || row >= g.oh || col >= g.ow { return SIMD8<Float>() }
                    let p = dy + ((b * g.oh + row) * g.ow + col) * co + c
                    if n == 8 { return load8(p) }
                    var s = SIMD8<Float>()
                    for l in 0..<n { s[l] = p[l] }
                    return s
                }
                let (y00, y01, y10, y11) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1))
                // Rows of A y: y0, y0 + y1, y0 - y1, -y1 (y0, y1 the rows of the block).
                let rows = ((y00, y01), (y00 + y10, y01 + y11), (y00 - y10, y01 - y11), (-y10, -y11))
                @inline(__always) func put(_ i: Int, _ r: (SIMD8<Float>, SIMD8<Float>)) {
                    let (p, q) = r
                    store8(p, out + (i * 4 + 0) * stride + c, 8)
                    store8(p + q, out + (i * 4 + 1) * stride + c, 8)
                    store8(p - q, out + (i * 4 + 2) * stride + c, 8)
                    store8(-q, out + (i * 4 + 3) * stride + c, 8)
                }
                put(0, rows.0); put(1, rows.1); put(2, rows.2); put(3, rows.3)
                c += 8
            }
        }
    }
}
