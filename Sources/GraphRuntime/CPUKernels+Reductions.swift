import CBLAS
import Dispatch
import FastKernelSupport
import FastKernels
import GraphIR
import GraphKernels

/// Reductions.
extension CPUKernels {
    /// Reductions over one contiguous block of axes: the input is [outer, r, inner], the result
    /// [outer, inner]; double accumulation like the reference kernel.
    static func reduce(_ r: ReduceOp, _ x: UnsafePointer<Float>, _ shape: [Int], axes: [Int], _ out: UnsafeMutablePointer<Float>,
                       _ workspace: Workspace) -> Bool {
        let sorted = axes.sorted()
        guard let first = sorted.first, sorted.last! - first + 1 == sorted.count else { return false }
        let outer = Shape.count(Array(shape[..<first]))
        let count = Shape.count(Array(shape[first...sorted.last!]))
        let inner = Shape.count(Array(shape[(sorted.last! + 1)...]))
        if count == 0 { return false }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: max(inner, 1)) { acc -> Bool in
            for o in 0..<outer {
                let base = x + o * count * inner
                if r == .max {
                    for j in 0..<inner { out[o * inner + j] = base[j] }
                    for k in 1..<max(count, 1) {
                        let row = base + k * inner
                        for j in 0..<inner {
                            let v = row[j], m = out[o * inner + j]
                            if v.isNaN || m.isNaN { out[o * inner + j] = .nan } else if v > m { out[o * inner + j] = v }
                        }
                    }
                    continue
                }
                if inner == 1 {
                    // Blocks of 8 float partial sums, added in double.
                    var total = 0.0, k = 0
                    while k + 8 <= count {
                        var p = SIMD8<Float>()
                        let end = min(count, k + 4096) & ~7
                        while k < end { p += UnsafeRawPointer(base + k).loadUnaligned(as: SIMD8<Float>.self); k += 8 }
                        total += Double(p.sum())
                    }
                    while k < count { total += Double(base[k]); k += 1 }
                    out[o] = Float(r == .mean ? total / Double(count) : total)
                    continue
                }
                if outer == 1 && count >= 64 && count * inner >= 1 << 16 {
                    // A bias gradient: the rows split between the cores, each with its own sums.
                    let partial = workspace.buffer(.sums, 2 * inner, of: Double.self)
                    partial.update(repeating: 0, count: 2 * inner)
                    nonisolated(unsafe) let (sums, rows) = (partial, base)
                    Parallel.forEach(2) { part in
                        let mine = sums + part * inner
                        for k in (count * part / 2)..<(count * (part + 1) / 2) {
                            let row = rows + k * inner
                            for j in 0..<inner { mine[j] += Double(row[j]) }
                        }
                    }
                    for j in 0..<inner {
                        let total = partial[j] + partial[inner + j]
                        out[j] = Float(r == .mean ? total / Double(count) : total)
                    }
                    continue
                }
                acc.initialize(repeating: 0)
                for k in 0..<count {
                    let row = base + k * inner
                    for j in 0..<inner { acc[j] += Double(row[j]) }
                }
                for j in 0..<inner { out[o * inner + j] = Float(r == .mean ? acc[j] / Double(count) : acc[j]) }
            }
            return true
        }
    }

    /// Any other reduction (the upsampling gradient's [n, h, f, w, f, c] summed over the two f axes):
    /// the input walked in order, each run of its last axis added into the output row it maps to.
    static func reduceStrided(_ r: ReduceOp, _ x: UnsafePointer<Float>, _ shape: [Int], axes: [Int], _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        var kept = shape
        for a in axes { kept[a] = 1 }
        let keptStrides = Shape.strides(kept)
        let outStrides = shape.indices.map { axes.contains($0) ? 0 : keptStrides[$0] }
        let count = Shape.count(shape) / max(n, 1)
        out.update(repeating: r == .max ? -.infinity : 0, count: n)
        guard let last = shape.last else { return }
        let lastStride = outStrides[outStrides.count - 1]
        var src = x
        ReferenceKernels.gather(Array(shape.dropLast()), strides: Array(outStrides.dropLast()), origin: 0) { _, o in
            let dst = out + o
            switch (r, lastStride) {
            case (.max, 0): for j in 0..<last { let v = src[j]; if v.isNaN || dst[0].isNaN { dst[0] = .nan } else if v > dst[0] { dst[0] = v } }
            case (.max, _): for j in 0..<last { let v = src[j]; if v.isNaN || dst[j].isNaN { dst[j] = .nan } else if v > dst[j] { dst[j] = v } }
            case (_, 0): var t: Float = 0; for j in 0..<last { t += src[j] }; dst[0] += t
            default: for j in 0..<last { dst[j] += src[j] }
            }
            src += last
        }
        if r == .mean { let scale = 1 / Float(count); for i in 0..<n { out[i] *= scale } }
    }
}
