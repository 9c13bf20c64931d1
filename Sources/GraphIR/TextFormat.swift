/// The text form of a graph: one declaration per line, attributes and result shapes visible.
///
///     graph tiny
///     input %x : f32[2,3]
///     param %w : f32[3,4] = glorot_uniform(seed=1)
///     %c0 = constant 0.5 : f32[]
///     %y = matmul(%x, %w) {transpose_a=false, transpose_b=false} : f32[2,4]
///     output y = %y
///     update %w = %w_next
///
/// `parse(print(g))` gives back `g`, and `print(parse(text)) == text` for printed text.
public enum TextFormat {
    public static func print(_ g: Graph) -> String {
        "graph \(g.name)\n" + body(g, indent: "")
    }

    /// The declarations of a graph; fused kernels print their body indented in braces.
    static func body(_ g: Graph, indent: String) -> String {
        var out = ""
        for v in g.values {
            out += indent
            let type = "f32" + Shape.describe(v.shape)
            switch v.definition {
            case .input:
                out += "input %\(v.name) : \(type)\n"
            case .parameter(let i):
                out += "param %\(v.name) : \(type) = \(describe(i))\n"
            case .constant(let t):
                out += "%\(v.name) = constant \(describe(t)) : \(type)\n"
            case .op(let op, let operands):
                let args = operands.map { "%" + g[$0].name }.joined(separator: ", ")
                let attrs = op.attributes
                let attrText = attrs.isEmpty ? "" : " {" + attrs.map { "\($0.0)=\($0.1)" }.joined(separator: ", ") + "}"
                if case .fused(let f) = op {
                    out += "%\(v.name) = \(op.name)(\(args))\(attrText) : \(type) {\n" + body(f.body, indent: indent + "  ") + indent + "}\n"
                } else {
                    out += "%\(v.name) = \(op.name)(\(args))\(attrText) : \(type)\n"
                }
            }
        }
        for o in g.outputs { out += indent + "output \(o.name) = %\(g[o.value].name)\n" }
        for u in g.updates { out += indent + "update %\(g[u.parameter].name) = %\(g[u.value].name)\n" }
        return out
    }

    static func describe(_ i: Initializer) -> String {
        switch i {
        case .zeros: return "zeros"
        case .constant(let v): return "constant(\(formatFloat(v)))"
        case .heNormal(let s): return "he_normal(seed=\(s))"
        case .glorotUniform(let s): return "glorot_uniform(seed=\(s))"
        case .values(let xs): return "values[" + xs.map(formatFloat).joined(separator: ", ") + "]"
        }
    }

    static func describe(_ t: Tensor) -> String {
        if let first = t.scalars.first, t.scalars.allSatisfy({ $0.bitPattern == first.bitPattern }) {
            return formatFloat(first)
        }
        return "[" + t.scalars.map(formatFloat).joined(separator: ", ") + "]"
    }

    /// Parses and verifies; errors carry line and column.
    public static func parse(_ text: String) throws -> Graph {
        var parser = Parser()
        return try parser.parse(text)
    }
}

private enum Token: Equatable {
    case percent(String)
    case word(String)
    case number(String)
    case punct(Character)
    case end

    var text: String {
        switch self {
        case .percent(let s): return "%" + s
        case .word(let s), .number(let s): return s
        case .punct(let c): return String(c)
        case .end: return "end of line"
        }
    }
}

/// Largest tensor the text format accepts (elements); guards arithmetic against overflow.
let maxElements = 1 << 40

private struct Lexer {
    let chars: [Character]
    let line: Int
    var pos = 0
    var tokenStart = 0

    init(_ text: Substring, line: Int) {
        chars = Array(text)
        self.line = line
    }

    var column: Int { tokenStart + 1 }

    func error(_ m: String) -> GraphError { GraphError(m, line: line, column: tokenStart + 1) }

    mutating func next() throws -> Token {
        while pos < chars.count, chars[pos] == " " || chars[pos] == "\t" || chars[pos] == "\r" { pos += 1 }
        tokenStart = pos
        guard pos < chars.count else { return .end }
        let c = chars[pos]
        if c == "%" {
            pos += 1
            let start = pos
            while pos < chars.count, isNameCharacter(chars[pos]) { pos += 1 }
            if pos == start { throw error("expected a value name after '%'") }
            return .percent(String(chars[start..<pos]))
        }
        if c.isNumber || ((c == "-" || c == "+") && pos + 1 < chars.count && (chars[pos + 1].isNumber || chars[pos + 1] == "i" || chars[pos + 1] == ".")) {
            let start = pos
            pos += 1
            while pos < chars.count {
                let d = chars[pos]
                if d.isNumber || d == "." || d == "e" || d == "E" || d == "i" || d == "n" || d == "f" {
                    pos += 1
                } else if (d == "-" || d == "+") && (chars[pos - 1] == "e" || chars[pos - 1] == "E") {
                    pos += 1
                } else { break }
            }
            return .number(String(chars[start..<pos]))
        }
        if c.isLetter || c == "_" {
            let start = pos
            while pos < chars.count, isNameCharacter(chars[pos]) { pos += 1 }
            return .word(String(chars[start..<pos]))
        }
        if "(){}[],=:".contains(c) {
            pos += 1
            return .punct(c)
        }
        throw error("unexpected character '\(c)'")
    }
}

private struct Parser {
    var graph = Graph(name: "")
    var byName: [String: ValueID] = [:]
    var lexer = Lexer("", line: 0)
    var token: Token = .end

    mutating func advance() throws { token = try lexer.next() }

    func error(_ m: String) -> GraphError { lexer.error(m) }

    mutating func expect(_ c: Character) throws {
        guard token == .punct(c) else { throw error("expected '\(c)', found '\(token.text)'") }
        try advance()
    }

    mutating func expectEnd() throws {
        guard token == .end else { throw error("unexpected '\(token.text)' at end of line") }
    }

    mutating func word() throws -> String {
        guard case .word(let w) = token else { throw error("expected a name, found '\(token.text)'") }
        try advance()
        return w
    }

    mutating func int() throws -> Int {
        guard case .number(let s) = token, let v = Int(s), abs(v) <= Int(Int32.max) else {
            throw error("expected an integer, found '\(token.text)'")
        }
        try advance()
        return v
    }

    mutating func float() throws -> Float {
        var text: String
        switch token {
        case .number(let s): text = s
        case .word(let w) where w == "inf" || w == "nan": text = w
        default: throw error("expected a number, found '\(token.text)'")
        }
        if text.hasSuffix("inf") { text = text.replacingOccurrences(of: "inf", with: "infinity") }
        guard let v = Float(text) else { throw error("malformed number '\(token.text)'") }
        try advance()
        return v
    }

    mutating func intList() throws -> [Int] {
        try expect("[")
        var xs: [Int] = []
        while token != .punct("]") {
            if !xs.isEmpty { try expect(",") }
            xs.append(try int())
        }
        try advance()
        return xs
    }

    mutating func floatList() throws -> [Float] {
        try expect("[")
        var xs: [Float] = []
        while token != .punct("]") {
            if !xs.isEmpty { try expect(",") }
            xs.append(try float())
        }
        try advance()
        return xs
    }

    /// `f32[2,3]`
    mutating func type() throws -> [Int] {
        let col = lexer.column
        let w = try word()
        guard w == "f32" else { throw GraphError("unsupported element type '\(w)' (only f32)", line: lexer.line, column: col) }
        let dims = try intList()
        try checkShape(dims, column: col)
        return dims
    }

    func checkShape(_ dims: [Int], column: Int) throws {
        var n = 1
        for d in dims {
            if d < 0 { throw GraphError("negative dimension in \(Shape.describe(dims))", line: lexer.line, column: column) }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o || p > maxElements { throw GraphError("shape \(Shape.describe(dims)) is too large", line: lexer.line, column: column) }
            n = p
        }
    }

    mutating func newName() throws -> String {
        guard case .percent(let n) = token else { throw error("expected '%name', found '\(token.text)'") }
        if byName[n] != nil { throw error("%\(n) is already defined") }
        try advance()
        return n
    }

    mutating func reference() throws -> ValueID {
        guard case .percent(let n) = token else { throw error("expected '%name', found '\(token.text)'") }
        guard let id = byName[n] else { throw error("use of undefined value %\(n)") }
        try advance()
        return id
    }

    mutating func define(_ name: String, _ shape: [Int], _ def: Definition) {
        let id = ValueID(graph.values.count)
        graph.values.append(Value(name: name, shape: shape, definition: def, line: lexer.line))
        byName[name] = id
    }

    mutating func initializer() throws -> Initializer {
        let w = try word()
        switch w {
        case "zeros": return .zeros
        case "constant":
            try expect("(")
            let v = try float()
            try expect(")")
            return .constant(v)
        case "he_normal", "glorot_uniform":
            try expect("(")
            let key = try word()
            guard key == "seed" else { throw error("expected 'seed'") }
            try expect("=")
            let s = try int()
            try expect(")")
            return w == "he_normal" ? .heNormal(seed: s) : .glorotUniform(seed: s)
        case "values":
            return .values(try floatList())
        default:
            throw error("unknown initializer '\(w)' (zeros, constant(v), he_normal(seed=N), glorot_uniform(seed=N), values[...])")
        }
    }

    mutating func attributeValue() throws -> AttributeValue {
        switch token {
        case .punct("["): return .ints(try intList())
        case .word("true"): try advance(); return .bool(true)
        case .word("false"): try advance(); return .bool(false)
        case .word("inf"), .word("nan"): return .float(try float())
        case .word(let w): try advance(); return .word(w)
        case .number(let s):
            if let i = Int(s), abs(i) <= Int(Int32.max) { try advance(); return .int(i) }
            return .float(try float())
        default: throw error("expected an attribute value, found '\(token.text)'")
        }
    }

    mutating func parse(_ text: String) throws -> Graph {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var i = 0
        var sawHeader = false
        while i < lines.count, !sawHeader {
            let raw = lines[i]
            i += 1
            let trimmed = raw.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.allSatisfy({ $0 == "\r" }) { continue }
            lexer = Lexer(raw, line: i)
            try advance()
            guard token == .word("graph") else { throw error("a graph file starts with 'graph NAME'") }
            try advance()
            graph.name = try word()
            try expectEnd()
            sawHeader = true
        }
        if !sawHeader { throw GraphError("empty graph file: expected 'graph NAME'", line: 1, column: 1) }
        try parseLines(lines, &i, nested: false)
        try graph.verify()
        return graph
    }

    /// Declarations until the end (or, in a fused body, until the closing "}").
    mutating func parseLines(_ lines: [Substring], _ i: inout Int, nested: Bool) throws {
        let opened = i
        while i < lines.count {
            let raw = lines[i]
            i += 1
            let trimmed = raw.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.allSatisfy({ $0 == "\r" }) { continue }
            if nested && trimmed.trimmingSuffix() == "}" { return }
            lexer = Lexer(raw, line: i)
            try advance()
            try parseLine(lines, &i)
        }
        if nested { throw GraphError("fused body opened on line \(opened) is not closed with '}'", line: opened, column: 1) }
    }

    mutating func parseLine(_ lines: [Substring], _ i: inout Int) throws {
        switch token {
        case .word("input"):
            try advance()
            let name = try newName()
            try expect(":")
            let shape = try type()
            try expectEnd()
            define(name, shape, .input)
        case .word("param"):
            try advance()
            let name = try newName()
            try expect(":")
            let shape = try type()
            try expect("=")
            let initCol = lexer.column
            let i = try initializer()
            try expectEnd()
            if case .values(let xs) = i, xs.count != Shape.count(shape) {
                throw GraphError("initializer has \(xs.count) values but shape \(Shape.describe(shape)) needs \(Shape.count(shape))",
                                 line: lexer.line, column: initCol)
            }
            define(name, shape, .parameter(i))
        case .word("output"):
            try advance()
            let name = try word()
            if graph.outputs.contains(where: { $0.name == name }) { throw error("output \(name) is already defined") }
            try expect("=")
            let v = try reference()
            try expectEnd()
            graph.outputs.append(Output(name: name, value: v))
        case .word("update"):
            try advance()
            let pcol = lexer.column
            let p = try reference()
            guard case .parameter = graph[p].definition else {
                throw GraphError("update target %\(graph[p].name) is not a parameter", line: lexer.line, column: pcol)
            }
            if graph.updates.contains(where: { $0.parameter == p }) {
                throw GraphError("parameter %\(graph[p].name) is updated twice", line: lexer.line, column: pcol)
            }
            try expect("=")
            let vcol = lexer.column
            let v = try reference()
            try expectEnd()
            if graph[p].shape != graph[v].shape {
                throw GraphError("update of %\(graph[p].name) \(Shape.describe(graph[p].shape)) with %\(graph[v].name) \(Shape.describe(graph[v].shape))",
                                 line: lexer.line, column: vcol)
            }
            graph.updates.append(Update(parameter: p, value: v))
        case .percent:
            let name = try newName()
            try expect("=")
            let opCol = lexer.column
            let opName = try word()
            if opName == "constant" {
                let values: [Float]
                var splat = false
                if token == .punct("[") { values = try floatList() } else { values = [try float()]; splat = true }
                try expect(":")
                let typeCol = lexer.column
                let shape = try type()
                try expectEnd()
                let n = Shape.count(shape)
                if splat {
                    if n > 1 << 28 { throw GraphError("constant \(Shape.describe(shape)) is too large", line: lexer.line, column: typeCol) }
                    define(name, shape, .constant(Tensor(shape: shape, repeating: values[0])))
                } else {
                    guard values.count == n else {
                        throw GraphError("constant has \(values.count) values but \(Shape.describe(shape)) needs \(n)", line: lexer.line, column: typeCol)
                    }
                    define(name, shape, .constant(Tensor(shape: shape, scalars: values)))
                }
                return
            }
            try expect("(")
            var operands: [ValueID] = []
            while token != .punct(")") {
                if !operands.isEmpty { try expect(",") }
                operands.append(try reference())
            }
            try advance()
            var attrs: [String: AttributeValue] = [:]
            if token == .punct("{") {
                try advance()
                while token != .punct("}") {
                    if !attrs.isEmpty { try expect(",") }
                    let key = try word()
                    if attrs[key] != nil { throw error("attribute '\(key)' given twice") }
                    try expect("=")
                    let col = lexer.column
                    let v = try attributeValue()
                    if case .ints(let xs) = v { try checkShape(xs.map(abs), column: col) }
                    attrs[key] = v
                }
                try advance()
            }
            try expect(":")
            let typeCol = lexer.column
            let shape = try type()
            let line = lexer.line
            var op: Op
            if opName == "fused" {
                guard token == .punct("{") else { throw error("a fused kernel's body follows in '{' ... '}'") }
                try advance()
                try expectEnd()
                guard case .word(let kindName)? = attrs["kind"], let kind = FusionKind(rawValue: kindName), attrs.count == 1 else {
                    throw GraphError("fused: needs exactly the attribute kind=\(FusionKind.allCases.map(\.rawValue).joined(separator: "|"))",
                                     line: line, column: opCol)
                }
                var sub = Parser()
                sub.graph.name = "body"
                try sub.parseLines(lines, &i, nested: true)
                do { try sub.graph.verify() } catch let e as GraphError {
                    throw GraphError("fused body: \(e.message)", line: e.line ?? line, column: e.column)
                }
                op = .fused(FusedKernel(kind: kind, body: sub.graph))
            } else {
                try expectEnd()
                do { op = try Op.make(name: opName, attributes: attrs) } catch let e as AttributeError {
                    throw GraphError(e.description, line: lexer.line, column: opCol)
                }
            }
            let inferred: [Int]
            do { inferred = try op.resultShape(operands.map { graph[$0].shape }) } catch let e as ShapeError {
                throw GraphError(e.description, line: line, column: opCol)
            }
            if inferred != shape {
                throw GraphError("\(opName) gives f32\(Shape.describe(inferred)) but the line declares f32\(Shape.describe(shape))",
                                 line: line, column: typeCol)
            }
            define(name, shape, .op(op, operands))
        default:
            throw error("expected 'input', 'param', 'output', 'update' or '%name = ...', found '\(token.text)'")
        }
    }
}

extension Substring {
    func trimmingSuffix() -> Substring {
        var s = self
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}
