/// Builds graphs from Swift. Shapes are inferred as values are added; the first shape error is
/// kept (with the op and the shapes) and thrown by `finish()`, so model code reads like math and
/// still never produces an unverified graph.
public final class GraphBuilder {
    public private(set) var graph: Graph
    public private(set) var firstError: GraphError?
    private var names: Set<String>

    public init(name: String) {
        graph = Graph(name: name)
        names = []
    }

    /// Continues an existing graph (autodiff and optimizers append to the forward graph).
    public init(extending graph: Graph) {
        self.graph = graph
        names = Set(graph.values.map(\.name))
    }

    public func shape(_ v: ValueID) -> [Int] { graph[v].shape }

    private func uniqueName(_ base: String?) -> String {
        var name = base ?? "v\(graph.values.count)"
        if names.contains(name) {
            var k = 1
            while names.contains("\(name)_\(k)") { k += 1 }
            name = "\(name)_\(k)"
        }
        names.insert(name)
        return name
    }

    private func record(_ error: GraphError) {
        if firstError == nil { firstError = error }
    }

    private func append(_ name: String?, _ shape: [Int], _ def: Definition) -> ValueID {
        let id = ValueID(graph.values.count)
        graph.values.append(Value(name: uniqueName(name), shape: shape, definition: def))
        return id
    }

    public func input(_ name: String, _ shape: [Int]) -> ValueID {
        if names.contains(name) { record(GraphError("input %\(name) defined twice")) }
        return append(name, shape, .input)
    }

    public func parameter(_ name: String, _ shape: [Int], _ initializer: Initializer) -> ValueID {
        if names.contains(name) { record(GraphError("parameter %\(name) defined twice")) }
        return append(name, shape, .parameter(initializer))
    }

    public func constant(_ t: Tensor, name: String? = nil) -> ValueID {
        append(name ?? "c\(graph.values.count)", t.shape, .constant(t))
    }

    public func constant(_ v: Float, shape: [Int] = []) -> ValueID {
        constant(Tensor(shape: shape, repeating: v))
    }

    public func apply(_ op: Op, _ operands: [ValueID], name: String? = nil) -> ValueID {
        var shape: [Int] = []
        do {
            shape = try op.resultShape(operands.map { graph[$0].shape })
        } catch let e as ShapeError {
            record(GraphError((name.map { "%\($0): " } ?? "") + e.description))
        } catch {
            record(GraphError("\(error)"))
        }
        return append(name, shape, .op(op, operands))
    }

    public func output(_ name: String, _ v: ValueID) {
        if graph.outputs.contains(where: { $0.name == name }) { record(GraphError("output \(name) defined twice")) }
        graph.outputs.append(Output(name: name, value: v))
    }

    public func update(_ parameter: ValueID, to value: ValueID) {
        graph.updates.append(Update(parameter: parameter, value: value))
    }

    /// The verified graph, or the first error met while building.
    public func finish() throws -> Graph {
        if let e = firstError { throw e }
        try graph.verify()
        return graph
    }
}

// Shorthands used by model code and gradient rules.
extension GraphBuilder {
    public func unary(_ u: UnaryOp, _ x: ValueID, name: String? = nil) -> ValueID { apply(.unary(u), [x], name: name) }
    public func binary(_ b: BinaryOp, _ x: ValueID, _ y: ValueID, name: String? = nil) -> ValueID {
        apply(.binary(b), [x, y], name: name)
    }

    public func add(_ x: ValueID, _ y: ValueID, name: String? = nil) -> ValueID { binary(.add, x, y, name: name) }
    public func sub(_ x: ValueID, _ y: ValueID, name: String? = nil) -> ValueID { binary(.sub, x, y, name: name) }
    public func mul(_ x: ValueID, _ y: ValueID, name: String? = nil) -> ValueID { binary(.mul, x, y, name: name) }
    public func div(_ x: ValueID, _ y: ValueID, name: String? = nil) -> ValueID { binary(.div, x, y, name: name) }
    public func add(_ x: ValueID, _ c: Float) -> ValueID { add(x, constant(c)) }
    public func sub(_ x: ValueID, _ c: Float) -> ValueID { sub(x, constant(c)) }
    public func mul(_ x: ValueID, _ c: Float) -> ValueID { mul(x, constant(c)) }
    public func div(_ x: ValueID, _ c: Float) -> ValueID { div(x, constant(c)) }
    public func neg(_ x: ValueID) -> ValueID { unary(.neg, x) }
    public func relu(_ x: ValueID, name: String? = nil) -> ValueID { unary(.relu, x, name: name) }
    public func sigmoid(_ x: ValueID) -> ValueID { unary(.sigmoid, x) }
    public func exp(_ x: ValueID) -> ValueID { unary(.exp, x) }
    public func log(_ x: ValueID) -> ValueID { unary(.log, x) }
    public func sqrt(_ x: ValueID) -> ValueID { unary(.sqrt, x) }
    public func square(_ x: ValueID) -> ValueID { mul(x, x) }
    public func stopGradient(_ x: ValueID) -> ValueID { unary(.stopGradient, x) }

    public func select(_ c: ValueID, _ a: ValueID, _ b: ValueID) -> ValueID { apply(.select, [c, a, b]) }

    public func sum(_ x: ValueID, axes: [Int], keepDims: Bool = false) -> ValueID {
        apply(.reduce(.sum, axes: axes, keepDims: keepDims), [x])
    }
    public func mean(_ x: ValueID, axes: [Int], keepDims: Bool = false, name: String? = nil) -> ValueID {
        apply(.reduce(.mean, axes: axes, keepDims: keepDims), [x], name: name)
    }
    /// Mean over all elements: a scalar.
    public func mean(_ x: ValueID, name: String? = nil) -> ValueID {
        mean(x, axes: Array(0..<shape(x).count), name: name)
    }

    public func reshape(_ x: ValueID, _ s: [Int], name: String? = nil) -> ValueID { apply(.reshape(shape: s), [x], name: name) }
    public func transpose(_ x: ValueID, _ perm: [Int]) -> ValueID { apply(.transpose(perm: perm), [x]) }
    public func broadcast(_ x: ValueID, to s: [Int]) -> ValueID { apply(.broadcast(shape: s), [x]) }
    public func concat(_ xs: [ValueID], axis: Int, name: String? = nil) -> ValueID { apply(.concat(axis: axis), xs, name: name) }
    public func slice(_ x: ValueID, begin: [Int], end: [Int]) -> ValueID { apply(.slice(begin: begin, end: end), [x]) }

    public func matmul(_ a: ValueID, _ b: ValueID, transposeA: Bool = false, transposeB: Bool = false, name: String? = nil) -> ValueID {
        apply(.matmul(transposeA: transposeA, transposeB: transposeB), [a, b], name: name)
    }

    public func conv2d(_ x: ValueID, _ k: ValueID, strides: [Int], padding: [Int], name: String? = nil) -> ValueID {
        apply(.conv2d(ConvAttributes(strides: strides, padding: padding)), [x, k], name: name)
    }

    /// conv2d with TF 'SAME' padding (the extra pixel after).
    public func conv2dSame(_ x: ValueID, _ k: ValueID, stride: Int, name: String? = nil) -> ValueID {
        let xs = shape(x), ks = shape(k)
        guard xs.count == 4, ks.count == 4 else { return conv2d(x, k, strides: [stride, stride], padding: [0, 0, 0, 0], name: name) }
        let ph = Shape.samePadding(size: xs[1], kernel: ks[0], stride: stride)
        let pw = Shape.samePadding(size: xs[2], kernel: ks[1], stride: stride)
        return conv2d(x, k, strides: [stride, stride], padding: [ph.before, ph.after, pw.before, pw.after], name: name)
    }

    public func upsampleNearest(_ x: ValueID, factor: Int, name: String? = nil) -> ValueID {
        apply(.upsampleNearest(factors: [factor, factor]), [x], name: name)
    }

    /// A sum that broadcasting made: reduces `g` back to `target` shape.
    public func sumToShape(_ g: ValueID, _ target: [Int]) -> ValueID {
        let gs = shape(g)
        if gs == target { return g }
        let offset = gs.count - target.count
        var axes = Array(0..<offset)
        for (i, d) in target.enumerated() where d == 1 && gs[offset + i] != 1 { axes.append(offset + i) }
        let summed = axes.isEmpty ? g : sum(g, axes: axes)
        return shape(summed) == target ? summed : reshape(summed, target)
    }
}
