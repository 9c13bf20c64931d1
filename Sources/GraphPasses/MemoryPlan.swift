import GraphIR

/// A static memory plan: every op result lives in one arena at a fixed offset for a fixed range of
/// schedule steps. Inputs, parameters and constants live outside the arena (parameters and
/// optimizer state are updated in place by the runtime).
public struct MemoryPlan: Sendable {
    public struct Buffer: Sendable {
        public var value: ValueID
        public var name: String
        public var bytes: Int
        /// Schedule steps [start, end]: defined at start, last read at end.
        public var start: Int
        public var end: Int
        public var offset: Int
        /// The operand whose storage this value reuses in place (it dies where this one is born).
        public var reuses: ValueID?
        /// A reshape's operand, whose storage it reads as its own for its whole life (no copy).
        public var views: ValueID? = nil
        /// The value whose allocation this buffer lies in (itself, or the first of its chain of
        /// in-place reuses and views).
        public var storage: ValueID? = nil
    }

    /// Op values in execution order.
    public var schedule: [ValueID]
    public var buffers: [Buffer]
    public var arenaBytes: Int
    /// Most bytes ever live at once (with in-place reuse): no placement can beat it.
    public var lowerBoundBytes: Int
    /// Every intermediate in its own buffer.
    public var naiveBytes: Int
    public var scheduleName: String

    public static let alignment = 64

    /// Plans `g` with the schedule (program order or memory-greedy) whose peak is lower.
    public static func plan(_ g: Graph) -> MemoryPlan {
        let program = g.ids.filter { g[$0].op != nil }
        let a = plan(g, schedule: program, name: "program order")
        let b = plan(g, schedule: greedySchedule(g), name: "memory-greedy")
        return b.lowerBoundBytes < a.lowerBoundBytes ? b : a
    }

    static func bytes(_ g: Graph, _ id: ValueID) -> Int {
        let raw = Shape.count(g[id].shape) * 4
        return (raw + alignment - 1) / alignment * alignment
    }

    /// Ops that may write their result over an operand of the same size.
    static func isElementwise(_ op: Op) -> Bool {
        if case .fused(let f) = op { return f.kind == .loop }
        return Passes.isElementwise(op)
    }

    /// List scheduling that prefers, among ready ops, the one that frees the most bytes net.
    static func greedySchedule(_ g: Graph) -> [ValueID] {
        let n = g.values.count
        var consumers = [[Int]](repeating: [], count: n)
        var pending = [Int](repeating: 0, count: n)
        var remainingUses = [Int](repeating: 0, count: n)
        for (i, v) in g.values.enumerated() where v.op != nil {
            let producers = Set(v.operands.map(\.index)).filter { g.values[$0].op != nil }
            pending[i] = producers.count
            for p in producers { consumers[p].append(i) }
            for o in Set(v.operands.map(\.index)) { remainingUses[o] += 1 }
        }
        var pinned = Set<Int>()
        for o in g.outputs { pinned.insert(o.value.index) }
        for u in g.updates { pinned.insert(u.value.index) }
        var ready = Set((0..<n).filter { g.values[$0].op != nil && pending[$0] == 0 })
        var order: [ValueID] = []
        while !ready.isEmpty {
            var best = -1, bestScore = Int.max
            for c in ready {
                var score = bytes(g, ValueID(c))
                for o in Set(g.values[c].operands.map(\.index)) where g.values[o].op != nil && remainingUses[o] == 1 && !pinned.contains(o) {
                    score -= bytes(g, ValueID(o))
                }
                if score < bestScore || (score == bestScore && c < best) { best = c; bestScore = score }
            }
            ready.remove(best)
            order.append(ValueID(best))
            for o in Set(g.values[best].operands.map(\.index)) { remainingUses[o] -= 1 }
            for c in consumers[best] {
                pending[c] -= 1
                if pending[c] == 0 { ready.insert(c) }
            }
        }
        return order
    }

    static func plan(_ g: Graph, schedule: [ValueID], name: String) -> MemoryPlan {
        var position = [Int](repeating: -1, count: g.values.count)
        for (p, id) in schedule.enumerated() { position[id.index] = p }
        let last = schedule.count
        var end = position
        for id in schedule { for o in g[id].operands where position[o.index] >= 0 { end[o.index] = max(end[o.index], position[id.index]) } }
        for o in g.outputs where position[o.value.index] >= 0 { end[o.value.index] = last }
        for u in g.updates where position[u.value.index] >= 0 { end[u.value.index] = last }

        // In-place: an elementwise op may take over an operand of its shape that dies at it (same
        // element count, not just the same rounded size: a broadcast operand read after the first
        // store would see the result).
        // A reshape is a view: it shares its operand's allocation (when that is in the arena), which
        // then lives until the last of them dies; an op may take an allocation over only where
        // every value in it dies, and not while it reads the allocation through another operand.
        var owner = [Int](repeating: -1, count: g.values.count)  // value -> allocation root
        var reuses = [Int: ValueID](), views = [Int: ValueID]()
        var rootEnd = [Int: Int]()
        var taken = Set<Int>()
        for id in schedule {
            let i = id.index
            owner[i] = i
            defer { rootEnd[owner[i]] = max(rootEnd[owner[i]] ?? -1, end[i]) }
            guard let op = g[id].op else { continue }
            if case .reshape = op, let o = g[id].operands.first?.index, position[o] >= 0, owner[o] >= 0 {
                owner[i] = owner[o]
                views[i] = ValueID(o)
                continue
            }
            guard isElementwise(op) else { continue }
            let operands = g[id].operands.map(\.index)
            for o in operands where position[o] >= 0 && end[o] == position[i] && !taken.contains(o)
                && Shape.count(g.values[o].shape) == Shape.count(g[id].shape) && owner[o] >= 0 && rootEnd[owner[o]] == position[i]
                && !operands.contains(where: { $0 != o && position[$0] >= 0 && owner[$0] == owner[o] }) {
                owner[i] = owner[o]
                reuses[i] = ValueID(o)
                taken.insert(o)
                break
            }
        }
        // Allocations: chains of values sharing storage, live from the first start to the last end.
        var allocStart: [Int: Int] = [:], allocEnd: [Int: Int] = [:], allocBytes: [Int: Int] = [:]
        for id in schedule {
            let root = owner[id.index]
            allocStart[root] = min(allocStart[root] ?? Int.max, position[id.index])
            allocEnd[root] = max(allocEnd[root] ?? -1, end[id.index])
            allocBytes[root] = bytes(g, id)
        }
        // Lower bound: most bytes live at any step.
        var delta = [Int](repeating: 0, count: last + 2)
        for (root, s) in allocStart {
            delta[s] += allocBytes[root]!
            delta[allocEnd[root]! + 1] -= allocBytes[root]!
        }
        var live = 0, peak = 0
        for d in delta { live += d; peak = max(peak, live) }

        // Placement: largest first, each at the best-fitting gap among time-overlapping allocations.
        var offsets: [Int: Int] = [:]
        var placed: [(start: Int, end: Int, offset: Int, bytes: Int)] = []
        var arena = 0
        for root in allocStart.keys.sorted(by: { (allocBytes[$0]!, allocStart[$1]!) > (allocBytes[$1]!, allocStart[$0]!) }) {
            let s = allocStart[root]!, e = allocEnd[root]!, size = allocBytes[root]!
            let conflicts = placed.filter { $0.start <= e && s <= $0.end }.sorted { $0.offset < $1.offset }
            var best: (offset: Int, gap: Int)? = nil
            var cursor = 0
            for c in conflicts {
                if c.offset - cursor >= size, best == nil || c.offset - cursor < best!.gap { best = (cursor, c.offset - cursor) }
                cursor = max(cursor, c.offset + c.bytes)
            }
            let offset = best?.offset ?? cursor
            offsets[root] = offset
            placed.append((s, e, offset, size))
            arena = max(arena, offset + size)
        }
        let buffers = schedule.map { id in
            Buffer(value: id, name: g[id].name, bytes: bytes(g, id), start: position[id.index], end: end[id.index],
                   offset: offsets[owner[id.index]]!, reuses: reuses[id.index], views: views[id.index], storage: ValueID(owner[id.index]))
        }
        return MemoryPlan(schedule: schedule, buffers: buffers, arenaBytes: arena, lowerBoundBytes: peak,
                          naiveBytes: buffers.reduce(0) { $0 + $1.bytes }, scheduleName: name)
    }

    /// Proves the plan sound: no two buffers that are live at the same step overlap in the
    /// arena, except a value and the operand it reuses in place at the step it is born, and the
    /// values of one allocation where one is a view or the later is born where the earlier dies.
    public func check() throws {
        let sorted = buffers.sorted { $0.offset < $1.offset }
        for (k, a) in sorted.enumerated() {
            if a.offset < 0 || a.offset + a.bytes > arenaBytes { throw GraphError("buffer %\(a.name) lies outside the arena") }
            if a.start > a.end { throw GraphError("buffer %\(a.name) dies before it is born") }
            for b in sorted[(k + 1)...] {
                if b.offset >= a.offset + a.bytes { break }
                let overlapInTime = a.start <= b.end && b.start <= a.end
                if !overlapInTime { continue }
                var handOver = (a.reuses == b.value && a.start == b.end) || (b.reuses == a.value && b.start == a.end)
                if let sa = a.storage, sa == b.storage, a.offset == b.offset {
                    let (early, late) = a.start <= b.start ? (a, b) : (b, a)
                    handOver = handOver || a.views != nil || b.views != nil || late.start >= early.end
                }
                if !handOver {
                    throw GraphError("buffers %\(a.name) [\(a.offset), +\(a.bytes)) steps \(a.start)...\(a.end) and %\(b.name) "
                                     + "[\(b.offset), +\(b.bytes)) steps \(b.start)...\(b.end) overlap")
                }
            }
        }
    }
}
