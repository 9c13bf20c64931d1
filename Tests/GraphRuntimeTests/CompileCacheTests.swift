import Foundation
import GraphIR
import GraphRuntime
import TestSupport
import XCTest

/// The JIT's object cache: a second compile loads the machine code the first one generated and
/// computes bit for bit the same; a damaged object is a miss, compiled again and rewritten.
final class CompileCacheTests: XCTestCase {
    func graph() throws -> (Graph, [String: Tensor]) {
        let b = GraphBuilder(name: "cached")
        let x = b.input("x", [4, 33, 17]), y = b.input("y", [17])
        // Enough separate elementwise kernels that the JIT splits them over several modules.
        var h = x
        for i in 0..<20 {
            h = b.add(b.mul(b.sigmoid(h), y), Float(i) * 0.01)
            h = b.apply(.reverse(axes: [1]), [h])  // keeps the loops from fusing into one
        }
        b.output("h", h)
        b.output("s", b.mean(b.square(h)))
        return (try b.finish(), ["x": randomTensor([4, 33, 17], seed: 1), "y": randomTensor([17], seed: 2)])
    }

    func testSecondCompileLoadsTheObjectsAndComputesTheSame() throws {
        let (g, feeds) = try graph()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jit-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(jit: true))
        XCTAssertNil(plain.jitCacheHit)
        let want = try plain.run(feeds)

        let options = CompileOptions(jit: true, compileCache: dir)
        let first = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertEqual(first.jitCacheHit, false)
        let objects = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".o") }
        XCTAssertGreaterThan(objects.count, 1, "one object per module")
        let second = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertEqual(second.jitCacheHit, true)
        for exe in [first, second] {
            let got = try exe.run(feeds)
            for (name, t) in want { XCTAssertEqual(got[name]!.scalars, t.scalars, name) }
        }

        // Truncated: a miss, compiled again, rewritten whole.
        let path = dir + "/" + objects[0]
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        let third = try Compiler.compile(g, for: Signature.of(g), options: options)
        XCTAssertEqual(third.jitCacheHit, false)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)).count, data.count)
        for (name, t) in want { XCTAssertEqual(try third.run(feeds)[name]!.scalars, t.scalars, name) }
    }
}
