import Dispatch

extension DirectConv {
    /// dk[kh, kw, ci, co] = sum over n, oy, ox of x_padded[n, oy*sh + kh, ox*sw + kw, ci] * dy[n, oy, ox, co].
    /// Register tile: 6 consecutive (kw, ci) positions x 16 output channels, accumulated over every
    /// output pixel; the tiles partition dk, so threads never write the same weights.
    public static func filterGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dk: UnsafeMutablePointer<Float>, _ g: Geometry) {
        let hp = g.h + g.pt + g.pb, wp = g.w + g.pl + g.pr
        let padded = g.pt + g.pb + g.pl + g.pr > 0
        let xp: UnsafeMutablePointer<Float>? = padded ? .allocate(capacity: g.n * hp * wp * g.ci) : nil
        defer { xp?.deallocate() }
        if let xp {
            xp.initialize(repeating: 0, count: g.n * hp * wp * g.ci)
            for b in 0..<g.n {
                for row in 0..<g.h {
                    (xp + ((b * hp + row + g.pt) * wp + g.pl) * g.ci).update(from: x + (b * g.h + row) * g.w * g.ci, count: g.w * g.ci)
                }
            }
        }
        let src = UnsafePointer(xp) ?? x
        // dy with channels padded to a multiple of 16: [n*oh*ow, cop].
        let blocks = (g.co + lanes - 1) / lanes
        let cop = blocks * lanes
        let pixels = g.n * g.oh * g.ow
        let dyp = UnsafeMutablePointer<Float>.allocate(capacity: pixels * cop)
        defer { dyp.deallocate() }
        dyp.initialize(repeating: 0, count: pixels * cop)
        for p in 0..<pixels { (dyp + p * cop).update(from: dy + p * g.co, count: g.co) }
        let inner = g.kw * g.ci
        let kTiles = (inner + tile - 1) / tile
        let jobs = g.kh * kTiles * blocks
        let work = { (job: Int) in
            let blk = job % blocks
            let kt = (job / blocks) % kTiles
            let i = job / (blocks * kTiles)
            let j0 = kt * tile
            let count = min(tile, inner - j0)
            var acc = [SIMD8<Float>](repeating: SIMD8<Float>(), count: 2 * tile)
            acc.withUnsafeMutableBufferPointer { a in
                for b in 0..<g.n {
                    for oy in 0..<g.oh {
                        let row = src + ((b * hp + oy * g.sh + i) * wp) * g.ci + j0
                        let grad = UnsafePointer(dyp + ((b * g.oh + oy) * g.ow) * cop + blk * lanes)
                        if count == tile {
                            var a0 = a[0], a1 = a[1], b0 = a[2], b1 = a[3], c0 = a[4], c1 = a[5]
                            var d0 = a[6], d1 = a[7], e0 = a[8], e1 = a[9], f0 = a[10], f1 = a[11]
                            for ox in 0..<g.ow {
                                let xr = row + ox * g.sw * g.ci
                                let gr = grad + ox * cop
                                let g0 = load(gr), g1 = load(gr + 8)
                                let pa = SIMD8<Float>(repeating: xr[0]), pb = SIMD8<Float>(repeating: xr[1]), pc = SIMD8<Float>(repeating: xr[2])
                                a0.addProduct(pa, g0); a1.addProduct(pa, g1)
                                b0.addProduct(pb, g0); b1.addProduct(pb, g1)
                                c0.addProduct(pc, g0); c1.addProduct(pc, g1)
                                let pd = SIMD8<Float>(repeating: xr[3]), pe = SIMD8<Float>(repeating: xr[4]), pf = SIMD8<Float>(repeating: xr[5])
                                d0.addProduct(pd, g0); d1.addProduct(pd, g1)
                                e0.addProduct(pe, g0); e1.addProduct(pe, g1)
                                f0.addProduct(pf, g0); f1.addProduct(pf, g1)
                            }
                            (a[0], a[1], a[2], a[3], a[4], a[5]) = (a0, a1, b0, b1, c0, c1)
                            (a[6], a[7], a[8], a[9], a[10], a[11]) = (d0, d1, e0, e1, f0, f1)
                        } else {
                            for ox in 0..<g.ow {
                                let xr = row + ox * g.sw * g.ci
                                let gr = grad + ox * cop
                                let g0 = load(gr), g1 = load(gr + 8)
                                for r in 0..<count {
                                    let p = SIMD8<Float>(repeating: xr[r])
                                    a[2 * r].addProduct(p, g0); a[2 * r + 1].addProduct(p, g1)
                                }
                            }
                        }
                    }
                }
                let valid = min(lanes, g.co - blk * lanes)
                for r in 0..<count {
                    let out = dk + (i * inner + j0 + r) * g.co + blk * lanes
                    for l in 0..<valid { out[l] = l < 8 ? a[2 * r][l] : a[2 * r + 1][l - 8] }
                }
            }
        }
        if jobs >= 2 {
            DispatchQueue.concurrentPerform(iterations: jobs) { work($0) }
        } else {
            for j in 0..<jobs { work(j) }
        }
    }
}
