import GraphIR

/// Graphviz text of a graph: inputs, parameters and constants as boxes, ops as ellipses, fused
/// kernels as clusters holding their bodies.
public enum GraphDot {
    static func quote(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\\\"") + "\"" }

    public static func render(_ g: Graph) -> String {
        var out = "digraph \(quote(g.name)) {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
        for (i, v) in g.values.enumerated() {
            let id = "v\(i)"
            let shape = "f32" + Shape.describe(v.shape)
            switch v.definition {
            case .input: out += "  \(id) [shape=box, style=filled, fillcolor=lightblue, label=\(quote("input \(v.name)\n\(shape)"))];\n"
            case .parameter: out += "  \(id) [shape=box, style=filled, fillcolor=lightyellow, label=\(quote("param \(v.name)\n\(shape)"))];\n"
            case .constant: out += "  \(id) [shape=box, label=\(quote("const \(v.name)\n\(shape)"))];\n"
            case .op(let op, let operands):
                if case .fused(let f) = op {
                    out += "  subgraph cluster_\(i) {\n    label=\(quote("fused \(f.kind.rawValue): \(v.name)"));\n    style=rounded; color=gray40;\n"
                    for (j, bv) in f.body.values.enumerated() where bv.op != nil {
                        out += "    \(id)_\(j) [label=\(quote("\(bv.op!.name)\n\("f32" + Shape.describe(bv.shape))"))];\n"
                    }
                    for (j, bv) in f.body.values.enumerated() {
                        for o in bv.operands where f.body[o].op != nil { out += "    \(id)_\(o.index) -> \(id)_\(j);\n" }
                    }
                    out += "  }\n"
                    let root = "\(id)_\(f.body.outputs[0].value.index)"
                    // Each argument goes to the body ops that read it.
                    for (k, operand) in operands.enumerated() {
                        let arg = f.body.inputs[k]
                        for (j, bv) in f.body.values.enumerated() where bv.operands.contains(arg) {
                            out += "  v\(operand.index) -> \(id)_\(j);\n"
                        }
                    }
                    out += "  \(id) [shape=point];\n  \(root) -> \(id);\n"
                } else {
                    out += "  \(id) [label=\(quote("\(op.name)\n\(shape)"))];\n"
                    for o in operands { out += "  v\(o.index) -> \(id);\n" }
                }
            }
        }
        for o in g.outputs {
            out += "  \(quote("out_" + o.name)) [shape=box, style=filled, fillcolor=palegreen, label=\(quote("output \(o.name)"))];\n"
            out += "  v\(o.value.index) -> \(quote("out_" + o.name));\n"
        }
        for u in g.updates { out += "  v\(u.value.index) -> v\(u.parameter.index) [style=dashed, label=\"update\"];\n" }
        return out + "}\n"
    }
}
