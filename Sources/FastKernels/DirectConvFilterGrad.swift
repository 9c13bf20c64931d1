import Dispatch

extension DirectConv {
    /// dk[kh, kw, ci, co] = sum over n, oy, ox of x_padded[n, oy*sh + kh, ox*sw + kw, ci] * dy[n, oy, ox, co].
    /// Register tile: 6 consecutive (kw, ci) positions x `lanes` output channels, accumulated over a
    /// cache-sized chunk of output rows at a time; each core sums its half of the chunks into its own dk.
    public static func filterGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dk: UnsafeMutablePointer<Float>, _ g: Geometry,
                                      workspace: Workspace) {
        let wp = g.w + g.pl + g.pr
        let blocks = (g.co + lanes - 1) / lanes
        let cop = blocks * lanes
        let inner = g.kw * g.ci
        let kTiles = (inner + tile - 1) / tile
        let jobs = g.kh * kTiles * blocks
        // The output rows (b, oy) are cut into chunks (within one image) small enough to stay in
        // cache, half of them to each core; each core accumulates into its own copy of
        // dk ([kh * inner, cop]); every (kernel row, 6-position, lanes-channel) tile passes over a
        // chunk while it is in cache. A chunk's input rows are copied, zero-padded, into the core's own buffer (and dy's
        // rows too when co is not a multiple of lanes), so nothing image-sized is ever copied.
        let rows = g.n * g.oh
        let parts = rows >= 2 ? 2 : 1
        let rowBytes = g.ow * cop * 4 + g.sh * wp * g.ci * 4
        let chunk = max(1, (192 * 1024) / max(rowBytes, 1))
        let xRows = (chunk - 1) * g.sh + g.kh
        let partialSize = g.kh * inner * cop
        let partials = workspace.buffer(.partials, parts * partialSize, of: Float.self)
        partials.update(repeating: 0, count: parts * partialSize)
        // Each core's buffers, taken here (the workspace is not thread-safe).
        let xBuffers = (workspace.buffer(.rows0, xRows * wp * g.ci, of: Float.self), workspace.buffer(.rows1, xRows * wp * g.ci, of: Float.self))
        let dyBuffers: (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) = cop == g.co ? (nil, nil)
            : (workspace.buffer(.grads0, chunk * g.ow * cop, of: Float.self), workspace.buffer(.grads1, chunk * g.ow * cop, of: Float.self))
        dyBuffers.0?.update(repeating: 0, count: chunk * g.ow * cop)
        dyBuffers.1?.update(repeating: 0, count: chunk * g.ow * cop)
        let chunksPerImage = (g.oh + chunk - 1) / chunk
        let work = { (part: Int, piece: Int) in
            let acc = partials + part * partialSize
            let xBuffer = part == 0 ? xBuffers.0 : xBuffers.1
            let dyBuffer = part == 0 ? dyBuffers.0 : dyBuffers.1
            let b = piece / chunksPerImage
            let c0 = b * g.oh + (piece % chunksPerImage) * chunk
            let oy0 = c0 % g.oh
            let c1 = min(c0 + chunk, (b + 1) * g.oh)  // one image per chunk
            // Input rows oy0*sh - pt ..< that + needed, zero outside the image and in the pads.
            let top = oy0 * g.sh - g.pt
            let needed = (c1 - c0 - 1) * g.sh + g.kh
            for r in 0..<needed {
                let dst = xBuffer + r * wp * g.ci
                let iy = top + r
                if iy < 0 || iy >= g.h {
                    dst.update(repeating: 0, count: wp * g.ci)
                } else {
                    dst.update(repeating: 0, count: g.pl * g.ci)
                    (dst + g.pl * g.ci).update(from: x + (b * g.h + iy) * g.w * g.ci, count: g.w * g.ci)
                    (dst + (g.pl + g.w) * g.ci).update(repeating: 0, count: g.pr * g.ci)
                }
            }
            let gradBase: UnsafePointer<Float>
            if let dyBuffer {
                for p in 0..<((c1 - c0) * g.ow) { (dyBuffer + p * cop).update(from: dy + (c0 * g.ow + p) * g.co, count: g.co) }
                gradBase = UnsafePointer(dyBuffer)
            } else {
                gradBase = dy + c0 * g.ow * g.co
            }
            let src = UnsafePointer(xBuffer)
            for job in 0..<jobs {
                let blk = job % blocks
                let kt = (job / blocks) % kTiles
                let i = job / (blocks * kTiles)
                let j0 = kt * tile
                let count = min(tile, inner - j0)
                let a = acc + (i * inner + j0) * cop + blk * lanes  // row r of the tile at a + r * cop
                if count == tile {
                    var a0 = load(a), a1 = load(a + half), b0 = load(a + cop), b1 = load(a + cop + half)
                    var c0v = load(a + 2 * cop), c1v = load(a + 2 * cop + half), d0 = load(a + 3 * cop), d1 = load(a + 3 * cop + half)
                    var e0 = load(a + 4 * cop), e1 = load(a + 4 * cop + half), f0 = load(a + 5 * cop), f1 = load(a + 5 * cop + half)
                    for r in 0..<(c1 - c0) {
                        let row = src + ((r * g.sh + i) * wp) * g.ci + j0
                        let grad = gradBase + r * g.ow * cop + blk * lanes
                        for ox in 0..<g.ow {
                            let xr = row + ox * g.sw * g.ci
                            let gr = grad + ox * cop
                            let g0 = load(gr), g1 = load(gr + half)
                            let pa = Half(repeating: xr[0]), pb = Half(repeating: xr[1]), pc = Half(repeating: xr[2])
                            a0.addProduct(pa, g0); a1.addProduct(pa, g1)
                            b0.addProduct(pb, g0); b1.addProduct(pb, g1)
                            c0v.addProduct(pc, g0); c1v.addProduct(pc, g1)
                            let pd = Half(repeating: xr[3]), pe = Half(repeating: xr[4]), pf = Half(repeating: xr[5])
                            d0.addProduct(pd, g0); d1.addProduct(pd, g1)
                            e0.addProduct(pe, g0); e1.addProduct(pe, g1)
                            f0.addProduct(pf, g0); f1.addProduct(pf, g1)
                        }
                    }
                    store(a0, a); store(a1, a + half); store(b0, a + cop); store(b1, a + cop + half)
                    store(c0v, a + 2 * cop); store(c1v, a + 2 * cop + half); store(d0, a + 3 * cop); store(d1, a + 3 * cop + half)
                    store(e0, a + 4 * cop); store(e1, a + 4 * cop + half); store(f0, a + 5 * cop); store(f1, a + 5 * cop + half)
                } else {
                    for r in 0..<(c1 - c0) {
                        let row = src + ((r * g.sh + i) * wp) * g.ci + j0
                        let grad = gradBase + r * g.ow * cop + blk * lanes
                        for ox in 0..<g.ow {
                            let xr = row + ox * g.sw * g.ci
                            let gr = grad + ox * cop
                            let g0 = load(gr), g1 = load(gr + half)
                            for q in 0..<count {
                                let p = Half(repeating: xr[q])
                                store(load(a + q * cop).addingProduct(p, g0), a + q * cop)
                                store(load(a + q * cop + half).addingProduct(p, g1), a + q * cop + half)
                            }
                        }
                    }
                }
            }
        }
        // Fixed halves, not jobs handed out: which chunks a core sums into its partial must not
        // depend on timing, or the gradient's rounding (and training) would differ from run to run.
        let pieces = g.n * chunksPerImage
        Parallel.forEach(parts) { part in
            for piece in (pieces * part / parts)..<(pieces * (part + 1) / parts) { work(part, piece) }
        }
        for k in 0..<(g.kh * inner) {
            for o in 0..<g.co {
                var v: Float = 0
                for part in 0..<parts { v += partials[part * partialSize + k * cop + o] }
                dk[k * g.co + o] = v
            }
        }
    }

    @inline(__always)
    static func store(_ v: Half, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Half.self) }
}
