/// A binary BCH code over GF(2^m), as bchlib: `t` correctable bit errors, the primitive polynomial
/// given as an integer (137 = x^7 + x^3 + 1). Shortened to the data length in use; the codeword is
/// data(x) x^deg(g) + remainder, data bits most significant first.
public struct BCHCode: Sendable {
    public let m: Int
    public let t: Int
    public let primitivePolynomial: Int
    /// n = 2^m - 1
    public let n: Int
    /// Generator polynomial over GF(2), coefficients from the highest power down (leading 1 included).
    public let generator: [UInt8]
    public var eccBits: Int { generator.count - 1 }
    let exp: [Int]  // alpha^i, i in 0..<2n
    let log: [Int]  // log[alpha^i] = i

    public init(m: Int = 7, t: Int = 5, primitivePolynomial: Int = 137) {
        precondition((3...14).contains(m) && t >= 1 && primitivePolynomial >> m == 1, "invalid BCH parameters")
        self.m = m
        self.t = t
        self.primitivePolynomial = primitivePolynomial
        n = (1 << m) - 1
        var exp = [Int](repeating: 0, count: 2 * n), log = [Int](repeating: 0, count: n + 1)
        var x = 1
        for i in 0..<n {
            exp[i] = x
            log[x] = i
            x <<= 1
            if x >> m != 0 { x ^= primitivePolynomial }
        }
        for i in n..<(2 * n) { exp[i] = exp[i - n] }
        self.exp = exp
        self.log = log
        // g = product of the minimal polynomials of alpha^1 ... alpha^2t (each coset once).
        var used = Set<Int>()
        var g: [Int] = [1]  // GF(2^m) coefficients, lowest power first
        for j in 1...(2 * t) where !used.contains(j % n) {
            var c = j % n
            repeat {
                used.insert(c)
                // g *= (x - alpha^c)
                var next = [Int](repeating: 0, count: g.count + 1)
                for (k, coef) in g.enumerated() {
                    next[k + 1] ^= coef
                    if coef != 0 { next[k] ^= exp[(log[coef] + c) % n] }
                }
                g = next
                c = (c * 2) % n
            } while !used.contains(c)
        }
        generator = g.reversed().map { UInt8($0) }  // coefficients are 0/1 now
    }

    func mul(_ a: Int, _ b: Int) -> Int { a == 0 || b == 0 ? 0 : exp[log[a] + log[b]] }

    /// The eccBits parity bits of `data` (bits, most significant first).
    public func parity(_ data: [UInt8]) -> [UInt8] {
        let d = eccBits
        var r = [UInt8](repeating: 0, count: d)
        for bit in data {
            let feedback = (bit & 1) ^ r[0]
            r.removeFirst()
            r.append(0)
            if feedback == 1 { for i in 0..<d { r[i] ^= generator[i + 1] } }
        }
        return r
    }

    /// Corrects up to t errors in the codeword bits (data then parity, most significant first) in
    /// place. Returns the number of corrected bits, or nil when the errors cannot be corrected.
    public func correct(_ codeword: inout [UInt8]) -> Int? {
        let len = codeword.count
        guard len <= n, len > eccBits else { return nil }
        // Syndromes S_j = c(alpha^j); bit i is the coefficient of x^(len-1-i).
        var syndromes = [Int](repeating: 0, count: 2 * t)
        for (i, bit) in codeword.enumerated() where bit & 1 == 1 {
            let power = len - 1 - i
            for j in 1...(2 * t) { syndromes[j - 1] ^= exp[(power * j) % n] }
        }
        if syndromes.allSatisfy({ $0 == 0 }) { return 0 }
        // Berlekamp-Massey: the error locator lambda (lowest power first).
        var lambda = [1], previous = [1]
        var l = 0, shift = 1, b = 1
        for k in 0..<(2 * t) {
            var delta = syndromes[k]
            for i in 1...max(l, 1) where i < lambda.count && i <= k { delta ^= mul(lambda[i], syndromes[k - i]) }
            if delta == 0 { shift += 1; continue }
            let scale = mul(delta, exp[(n - log[b]) % n])
            var updated = lambda
            if updated.count < previous.count + shift { updated += [Int](repeating: 0, count: previous.count + shift - updated.count) }
            for (i, p) in previous.enumerated() { updated[i + shift] ^= mul(scale, p) }
            if 2 * l <= k {
                previous = lambda
                l = k + 1 - l
                b = delta
                shift = 1
            } else {
                shift += 1
            }
            lambda = updated
        }
        while lambda.count > 1 && lambda.last == 0 { lambda.removeLast() }
        let degree = lambda.count - 1
        guard degree == l, degree <= t else { return nil }
        // Chien search over the positions of this (shortened) codeword.
        var positions: [Int] = []
        for power in 0..<len {
            var sum = 0
            for (i, c) in lambda.enumerated() where c != 0 { sum ^= mul(c, exp[((n - power) * i) % n]) }
            if sum == 0 { positions.append(len - 1 - power) }
        }
        guard positions.count == degree else { return nil }
        for p in positions { codeword[p] ^= 1 }
        return degree
    }
}
