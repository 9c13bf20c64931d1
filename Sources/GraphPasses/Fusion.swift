import GraphIR

extension Passes {
    static func isElementwise(_ op: Op) -> Bool {
        switch op {
        case .unary, .binary, .select: return true
        default: return false
        }
    }

    static func isContraction(_ op: Op) -> Bool {
        switch op {
        case .conv2d, .matmul: return true
        default: return false
        }
    }

    /// The one rule for the op a convolution's output kernel may compute its image with (and so
    /// never store it): a nearest upsampling under a stride-1 convolution (convolved phase by
    /// phase), or a channel concatenation of rank-4 images (summed over the parts in turn).
    /// `fusion` builds bodies by it and the runtime's output kernel takes them apart by it.
    public static func isConvolutionPrologue(_ op: Op, image: [Int], convolution: ConvAttributes) -> Bool {
        switch op {
        case .upsampleNearest: return convolution.strides == [1, 1]
        case .concat(let axis): return axis == 3 && image.count == 4
        default: return false
        }
    }

    /// Largest constant copied into a fused body (bigger ones stay operands).
    static let inlineConstantLimit = 64

    /// Operator fusion by legality class, along single-use edges into a consumer:
    /// - loop: chains of elementwise ops of the same shape;
    /// - output: a conv2d or matmul with its elementwise epilogue (bias, activation, residual); a
    ///   conv2d also with the channel concatenation it alone reads (the kernel sums over the parts
    ///   in turn), a stride-1 one with the nearest upsampling it alone reads (the kernel convolves
    ///   the small image phase by phase): neither image is then stored;
    /// - input: a reduction with its elementwise producers.
    /// Each group of two or more ops becomes one `fused` op whose body is the group.
    public static func fusion(_ g: Graph) throws -> Graph {
        let n = g.values.count
        let uses = g.useCounts()
        var pinned = [Bool](repeating: false, count: n)  // read by an output or update: must stay a value
        for o in g.outputs { pinned[o.value.index] = true }
        for u in g.updates { pinned[u.value.index] = true }
        // group[i]: the root (last member) of the group i belongs to; members[root]: in order.
        var group = Array(0..<n)
        var members: [Int: [Int]] = [:]
        var hasContraction = [Bool](repeating: false, count: n), hasReduce = [Bool](repeating: false, count: n)
        /// The nearest upsampling a stride-1 conv2d `c` reads as its image, or the channel
        /// concatenation any conv2d reads, where nothing else reads it.
        func prologue(of c: Int) -> [Int] {
            guard case .op(.conv2d(let attributes), let operands) = g.values[c].definition else { return [] }
            let u = operands[0].index
            guard uses[u] == 1, !pinned[u], operands[1].index != u, case .op(let op, _) = g.values[u].definition,
                  isConvolutionPrologue(op, image: g.values[u].shape, convolution: attributes) else { return [] }
            return [u]
        }
        for (i, v) in g.values.enumerated() {
            guard case .op(let op, let operands) = v.definition else { continue }
            let elementwise = isElementwise(op)
            var isReduce = false
            if case .reduce = op { isReduce = true }
            guard elementwise || isReduce else { continue }
            members[i] = [i]
            hasReduce[i] = isReduce
            for o in Set(operands.map(\.index)).sorted() {
                guard uses[o] == 1, !pinned[o], case .op(let producer, _) = g.values[o].definition else { continue }
                let root = group[o]
                // o must be the root of its group (a conv/matmul starts a group of its own).
                guard root == o, members[root] != nil || isContraction(producer) else { continue }
                if hasReduce[root] { continue }  // a reduction only ends a group
                let contraction = isContraction(producer) || hasContraction[root]
                if isReduce {
                    // input fusion: elementwise producers only.
                    if contraction || !isElementwise(producer) { continue }
                } else {
                    if !(isElementwise(producer) || isContraction(producer)) { continue }
                    if g.values[o].shape != v.shape { continue }
                    if contraction && hasContraction[i] { continue }
                }
                if isContraction(producer) { members[o] = prologue(of: o) + [o] }
                for m in members[root] ?? [o] { group[m] = i }
                members[i] = (members[root] ?? [o]) + members[i]!
                members[root] = nil
                hasContraction[i] = hasContraction[i] || contraction
            }
        }
        // Rebuild: members vanish into their root's fused op.
        var r = Rewriter(g)
        for (i, v) in g.values.enumerated() {
            if let ms = members[i], ms.count >= 2 {
                let set = Set(ms)
                var external: [Int] = []
                var bodyValues: [Value] = []
                var bodyIndex: [Int: Int] = [:]
                // Operands from outside: small constants are copied in, the rest become arguments.
                for m in ms.sorted() {
                    for o in g.values[m].operands.map(\.index) where !set.contains(o) && !external.contains(o) {
                        if case .constant(let t) = g.values[o].definition, t.count <= inlineConstantLimit { continue }
                        external.append(o)
                    }
                }
                for (k, e) in external.enumerated() {
                    bodyIndex[e] = bodyValues.count
                    bodyValues.append(Value(name: "arg\(k)", shape: g.values[e].shape, definition: .input))
                }
                for m in ms.sorted() {
                    for o in g.values[m].operands.map(\.index) where !set.contains(o) && bodyIndex[o] == nil {
                        bodyIndex[o] = bodyValues.count
                        bodyValues.append(Value(name: g.values[o].name, shape: g.values[o].shape, definition: g.values[o].definition))
                    }
                    guard case .op(let op, let operands) = g.values[m].definition else { continue }
                    bodyIndex[m] = bodyValues.count
                    bodyValues.append(Value(name: g.values[m].name, shape: g.values[m].shape,
                                            definition: .op(op, operands.map { ValueID(bodyIndex[$0.index]!) })))
                }
                let body = Graph(name: "body", values: bodyValues, outputs: [Output(name: "result", value: ValueID(bodyIndex[i]!))])
                let kind: FusionKind = hasContraction[i] ? .output : (hasReduce[i] ? .input : .loop)
                let fused = Value(name: "fused_" + v.name, shape: v.shape,
                                  definition: .op(.fused(FusedKernel(kind: kind, body: body)), external.map { r.mapped(ValueID($0)) }), line: v.line)
                r.alias(i, to: r.append(fused))
            } else if group[i] != i {
                continue  // a member: computed inside its root's fused op
            } else {
                r.copy(i)
            }
        }
        return try r.finish()
    }
}
