import GraphIR
import XCTest

final class ShapeRuleTests: XCTestCase {
    func testBroadcasting() throws {
        XCTAssertEqual(Shape.broadcast([[2, 1, 3], [4, 1]]), [2, 4, 3])
        XCTAssertNil(Shape.broadcast([[2, 3], [4, 3]]))
        XCTAssertThrowsError(try Op.binary(.add).resultShape([[2, 3], [4, 3]])) { e in
            XCTAssertTrue("\(e)".contains("[2,3], [4,3]"), "\(e)")
        }
    }

    func testSamePaddingPutsExtraPixelAfter() {
        XCTAssertEqual(Shape.samePadding(size: 9, kernel: 3, stride: 2).before, 1)
        XCTAssertEqual(Shape.samePadding(size: 9, kernel: 3, stride: 2).after, 1)
        XCTAssertEqual(Shape.samePadding(size: 8, kernel: 3, stride: 2).before, 0)
        XCTAssertEqual(Shape.samePadding(size: 8, kernel: 3, stride: 2).after, 1)
        XCTAssertEqual(Shape.samePadding(size: 9, kernel: 2, stride: 1).before, 0)
        XCTAssertEqual(Shape.samePadding(size: 9, kernel: 2, stride: 1).after, 1)
        XCTAssertEqual(Shape.samePadding(size: 25, kernel: 3, stride: 2).before, 1)
    }

    func testConvAndMatmulShapes() throws {
        let c = ConvAttributes(strides: [2, 2], padding: [0, 1, 0, 1])
        XCTAssertEqual(try Op.conv2d(c).resultShape([[1, 400, 400, 6], [3, 3, 6, 32]]), [1, 200, 200, 32])
        XCTAssertThrowsError(try Op.conv2d(c).resultShape([[1, 8, 8, 5], [3, 3, 6, 32]]))
        XCTAssertEqual(try Op.matmul(transposeA: true, transposeB: false).resultShape([[3, 5, 2], [3, 5, 7]]), [3, 2, 7])
        XCTAssertThrowsError(try Op.matmul(transposeA: false, transposeB: false).resultShape([[2, 5], [4, 7]]))
    }

    func testBuilderReportsFirstError() {
        let b = GraphBuilder(name: "bad")
        let x = b.input("x", [2, 3])
        let y = b.input("y", [3, 3])
        let z = b.add(x, y)
        b.output("z", b.neg(z))
        XCTAssertThrowsError(try b.finish()) { e in XCTAssertTrue("\(e)".contains("[2,3], [3,3]"), "\(e)") }
    }

    func testVerifierCatchesCorruptGraphs() throws {
        var g = Graph(name: "g")
        g.values.append(Value(name: "x", shape: [2], definition: .input))
        g.values.append(Value(name: "y", shape: [3], definition: .op(.unary(.neg), [ValueID(0)])))
        XCTAssertThrowsError(try g.verify()) { XCTAssertTrue("\($0)".contains("declared [3]"), "\($0)") }
        g.values[1] = Value(name: "y", shape: [2], definition: .op(.unary(.neg), [ValueID(5)]))
        XCTAssertThrowsError(try g.verify()) { XCTAssertTrue("\($0)".contains("not defined before use"), "\($0)") }
    }
}
