import CBLAS
import CLLVM
import CPNG
import CTurboJPEG
import XCTest

/// The C libraries the package links (module maps in Sources/C*) are installed and usable.
final class ToolchainTests: XCTestCase {
    func testOpenBLASMultiplies() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1, a, 2, b, 2, 0, &c, 2)
        XCTAssertEqual(c, [19, 22, 43, 50])
    }

    func testLibPNGAndTurboJPEGLoad() {
        XCTAssertGreaterThanOrEqual(png_access_version_number(), 10600)
        let handle = tjInitCompress()
        XCTAssertNotNil(handle)
        if let handle { tjDestroy(handle) }
    }

    /// LLVM 14's C API: build `i32 add(i32, i32)`, verify the module and check it names the function.
    func testLLVMBuildsAndVerifiesAModule() {
        let context = LLVMContextCreate()
        defer { LLVMContextDispose(context) }
        let module = LLVMModuleCreateWithNameInContext("toolchain", context)
        defer { LLVMDisposeModule(module) }
        let i32 = LLVMInt32TypeInContext(context)
        var params: [LLVMTypeRef?] = [i32, i32]
        let fnType = params.withUnsafeMutableBufferPointer { LLVMFunctionType(i32, $0.baseAddress, 2, 0) }
        let fn = LLVMAddFunction(module, "add", fnType)
        let entry = LLVMAppendBasicBlockInContext(context, fn, "entry")
        let builder = LLVMCreateBuilderInContext(context)
        defer { LLVMDisposeBuilder(builder) }
        LLVMPositionBuilderAtEnd(builder, entry)
        LLVMBuildRet(builder, LLVMBuildAdd(builder, LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), "sum"))
        var message: UnsafeMutablePointer<CChar>?
        XCTAssertEqual(LLVMVerifyModule(module, LLVMReturnStatusAction, &message), 0)
        LLVMDisposeMessage(message)
        let ir = LLVMPrintModuleToString(module)!
        XCTAssertTrue(String(cString: ir).contains("define i32 @add(i32 %0, i32 %1)"))
        LLVMDisposeMessage(ir)
    }
}
