/// Matrix products with one short side (at most 8), the dense layers of a network at batch 1-8
/// and their gradients: C = A B (m <= 8), C = A B^T (m <= 8) and C = A^T B (k <= 8), row-major,
/// C overwritten. They read the long operand once, straight from memory, which is all they can
/// do fast: the products are memory-bound (4 rows x 320000 x 128 is 164 MB of weights for 0.33
/// GFLOP). OpenBLAS packs the long operand first and took 14-19 ms for that product on Zen 5
/// (Haswell kernels); this reads it at 20-40 GB/s (5-8 ms). Work is split over the cores along
/// the long side.
public enum SkinnyGemm {
    /// The longest short side these kernels take.
    public static let maxShort = 8

    /// Whether a product of this form and shape is one of these kernels' (`transA` and `transB`
    /// both set is not).
    public static func takes(transA: Bool, transB: Bool, m: Int, n: Int, k: Int) -> Bool {
        if m == 0 || n == 0 || k == 0 { return false }
        switch (transA, transB) {
        case (false, _): return m <= maxShort
        case (true, false): return k <= maxShort
        case (true, true): return false
        }
    }

    static let h = Half.scalarCount
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Half { UnsafeRawPointer(p).loadUnaligned(as: Half.self) }
    @inline(__always) static func store(_ v: Half, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Half.self)
    }

    /// C[m x n] = op(A) op(B) as `takes` allows; lda, ldb, ldc are row strides as stored.
    public static func run(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int,
                           _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(takes(transA: transA, transB: transB, m: m, n: n, k: k), "SkinnyGemm: not a skinny product")
        nonisolated(unsafe) let (a, b, c) = (a, b, c)
        switch (transA, transB) {
        case (false, false):
            // Columns in tiles of 4 vectors; a row block of 4 at a time (two passes over B for 5-8 rows).
            let tile = 4 * h
            let tiles = (n + tile - 1) / tile
            if tiles <= 4 && k >= 4096 {
                splitK(m: m, n: n, k: k, a, lda: lda, b, ldb: ldb, c, ldc: ldc)
                return
            }
            Parallel.forEach(tiles) { t in
                let j0 = t * tile, j1 = min(n, j0 + tile)
                var i0 = 0
                while i0 < m {
                    nn(rows: min(4, m - i0), a + i0 * lda, lda: lda, b, ldb: ldb, c + i0 * ldc, ldc: ldc, k: k, j0: j0, j1: j1)
                    i0 += 4
                }
            }
        case (false, true):
            let chunk = 256
            Parallel.forEach((n + chunk - 1) / chunk) { t in
                let j1 = min(n, (t + 1) * chunk)
                var i0 = 0
                while i0 < m {
                    nt(rows: min(4, m - i0), a + i0 * lda, lda: lda, b, ldb: ldb, c + i0 * ldc, ldc: ldc, k: k, j0: t * chunk, j1: j1)
                    i0 += 4
                }
            }
        case (true, _):
            let chunk = 64
            Parallel.forEach((m + chunk - 1) / chunk) { t in
                tn(a, lda: lda, b, ldb: ldb, c, ldc: ldc, k: k, n: n, i0: t * chunk, i1: min(m, (t + 1) * chunk))
            }
        }
    }

    /// Chunks of the long side k per task (a fixed split: the sums do not depend on the threads).
    static let kChunks = 16
    /// Rows of B per pass over the column tiles within a chunk (re-read from L2 by the next tile).
    static let kBlock = 128

    /// C = A B for few column tiles and a long k (the STN's 4 x 32768 x 128): split along k, so
    /// that each core streams whole consecutive rows of B (a sequential read the prefetchers keep
    /// up with; split by columns, each core read every other 256 bytes of every row), into partial
    /// products summed in chunk order at the end.
    static func splitK(m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                       _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        let chunks = kChunks, chunk = (k + chunks - 1) / chunks, tile = 4 * h
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunks * m * n) { partials in
            nonisolated(unsafe) let partial = partials.baseAddress!
            Parallel.forEach(chunks) { t in
                let p0 = t * chunk, p1 = min(k, p0 + chunk)
                let out = partial + t * m * n
                if p0 >= p1 { out.update(repeating: 0, count: m * n); return }
                var q = p0
                while q < p1 {
                    let q1 = min(p1, q + kBlock)
                    var j0 = 0
                    while j0 < n {
                        var i0 = 0
                        while i0 < m {
                            nn(rows: min(4, m - i0), a + i0 * lda + q, lda: lda, b + q * ldb, ldb: ldb, out + i0 * n, ldc: n, k: q1 - q,
                               j0: j0, j1: min(n, j0 + tile), accumulate: q > p0)
                            i0 += 4
                        }
                        j0 += tile
                    }
                    q = q1
                }
            }
            for i in 0..<m {
                let row = c + i * ldc
                row.update(from: partial + i * n, count: n)
                for t in 1..<chunks {
                    let src = partial + t * m * n + i * n
                    for j in 0..<n { row[j] += src[j] }
                }
            }
        }
    }

    /// Rows 0..<rows (1-4) of C = A B over columns j0..<j1 (at most 4 vectors), stored or, with
    /// `accumulate`, added to C. Rows past `rows` read row 0 again (their sums are dropped), so
    /// the loop has one shape.
    static func nn(rows: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>,
                   ldc: Int, k: Int, j0: Int, j1: Int, accumulate: Bool = false) {
        @inline(__always) func store(_ v: Half, _ p: UnsafeMutablePointer<Float>) { SkinnyGemm.store(accumulate ? v + load(p) : v, p) }
        @inline(__always) func put(_ v: Float, _ p: UnsafeMutablePointer<Float>) { p.pointee = accumulate ? p.pointee + v : v }
        let a0 = a, a1 = rows > 1 ? a + lda : a, a2 = rows > 2 ? a + 2 * lda : a, a3 = rows > 3 ? a + 3 * lda : a
        if j1 - j0 == 4 * h {
            var c00 = Half(), c01 = Half(), c02 = Half(), c03 = Half()
            var c10 = Half(), c11 = Half(), c12 = Half(), c13 = Half()
            var c20 = Half(), c21 = Half(), c22 = Half(), c23 = Half()
            var c30 = Half(), c31 = Half(), c32 = Half(), c33 = Half()
            var bp = b + j0
            for p in 0..<k {
                let b0 = load(bp), b1 = load(bp + h), b2 = load(bp + 2 * h), b3 = load(bp + 3 * h)
                let x0 = Half(repeating: a0[p]), x1 = Half(repeating: a1[p]), x2 = Half(repeating: a2[p]), x3 = Half(repeating: a3[p])
                c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1); c02 = c02.addingProduct(x0, b2); c03 = c03.addingProduct(x0, b3)
                c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1); c12 = c12.addingProduct(x1, b2); c13 = c13.addingProduct(x1, b3)
                c20 = c20.addingProduct(x2, b0); c21 = c21.addingProduct(x2, b1); c22 = c22.addingProduct(x2, b2); c23 = c23.addingProduct(x2, b3)
                c30 = c30.addingProduct(x3, b0); c31 = c31.addingProduct(x3, b1); c32 = c32.addingProduct(x3, b2); c33 = c33.addingProduct(x3, b3)
                bp += ldb
            }
            let out = c + j0
            store(c00, out); store(c01, out + h); store(c02, out + 2 * h); store(c03, out + 3 * h)
            if rows > 1 { store(c10, out + ldc); store(c11, out + ldc + h); store(c12, out + ldc + 2 * h); store(c13, out + ldc + 3 * h) }
            if rows > 2 {
                let o = out + 2 * ldc
                store(c20, o); store(c21, o + h); store(c22, o + 2 * h); store(c23, o + 3 * h)
            }
            if rows > 3 {
                let o = out + 3 * ldc
                store(c30, o); store(c31, o + h); store(c32, o + 2 * h); store(c33, o + 3 * h)
            }
            return
        }
        // The last, narrower tile: whole vectors, then single columns.
        var j = j0
        while j + h <= j1 {
            var s0 = Half(), s1 = Half(), s2 = Half(), s3 = Half()
            var bp = b + j
            for p in 0..<k {
                let v = load(bp)
                s0 = s0.addingProduct(Half(repeating: a0[p]), v); s1 = s1.addingProduct(Half(repeating: a1[p]), v)
                s2 = s2.addingProduct(Half(repeating: a2[p]), v); s3 = s3.addingProduct(Half(repeating: a3[p]), v)
                bp += ldb
            }
            store(s0, c + j)
            if rows > 1 { store(s1, c + ldc + j) }
            if rows > 2 { store(s2, c + 2 * ldc + j) }
            if rows > 3 { store(s3, c + 3 * ldc + j) }
            j += h
        }
        while j < j1 {
            var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
            var bp = b + j
            for p in 0..<k {
                let v = bp.pointee
                s0 += a0[p] * v; s1 += a1[p] * v; s2 += a2[p] * v; s3 += a3[p] * v
                bp += ldb
            }
            put(s0, c + j)
            if rows > 1 { put(s1, c + ldc + j) }
            if rows > 2 { put(s2, c + 2 * ldc + j) }
            if rows > 3 { put(s3, c + 3 * ldc + j) }
            j += 1
        }
    }

    /// Rows 0..<rows (1-4) of C = A B^T over columns j0..<j1: each column a dot product of a
    /// row of B with the (cached) rows of A.
    static func nt(rows: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>,
                   ldc: Int, k: Int, j0: Int, j1: Int) {
        let a0 = a, a1 = rows > 1 ? a + lda : a, a2 = rows > 2 ? a + 2 * lda : a, a3 = rows > 3 ? a + 3 * lda : a
        let kv = k / h * h
        for j in j0..<j1 {
            let row = b + j * ldb
            var s0 = Half(), s1 = Half(), s2 = Half(), s3 = Half()
            var p = 0
            while p < kv {
                let v = load(row + p)
                s0 = s0.addingProduct(load(a0 + p), v); s1 = s1.addingProduct(load(a1 + p), v)
                s2 = s2.addingProduct(load(a2 + p), v); s3 = s3.addingProduct(load(a3 + p), v)
                p += h
            }
            var t0 = s0.sum(), t1 = s1.sum(), t2 = s2.sum(), t3 = s3.sum()
            while p < k {
                let v = row[p]
                t0 += a0[p] * v; t1 += a1[p] * v; t2 += a2[p] * v; t3 += a3[p] * v
                p += 1
            }
            c[j] = t0
            if rows > 1 { c[ldc + j] = t1 }
            if rows > 2 { c[2 * ldc + j] = t2 }
            if rows > 3 { c[3 * ldc + j] = t3 }
        }
    }

    /// Rows i0..<i1 of C = A^T B with k <= 8: each row a sum of k rows of B (cached) weighted by
    /// a column of A.
    static func tn(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>,
                   ldc: Int, k: Int, n: Int, i0: Int, i1: Int) {
        let nv = n / h * h
        for i in i0..<i1 {
            let out = c + i * ldc
            var j = 0
            while j < nv {
                var s = Half()
                for p in 0..<k { s = s.addingProduct(Half(repeating: a[p * lda + i]), load(b + p * ldb + j)) }
                store(s, out + j)
                j += h
            }
            while j < n {
                var s: Float = 0
                for p in 0..<k { s += a[p * lda + i] * b[p * ldb + j] }
                out[j] = s
                j += 1
            }
        }
    }
}
