internal import CLLVM
import GraphIR

/// Emits the scalar computation of one element of an elementwise body: `ElementwiseSemantics`
/// (GraphIR), the table every backend reads, evaluated on LLVM values, so the machine code has
/// the reference kernel's meaning by construction.
struct ElementwiseCodegen: ScalarArithmetic {
    let context: LLVMContextRef
    let module: LLVMModuleRef
    let builder: LLVMBuilderRef
    let float: LLVMTypeRef

    init(context: LLVMContextRef, module: LLVMModuleRef, builder: LLVMBuilderRef) {
        self.context = context
        self.module = module
        self.builder = builder
        float = LLVMFloatTypeInContext(context)
    }

    func unary(_ u: UnaryOp, _ x: LLVMValueRef) -> LLVMValueRef { ElementwiseSemantics.unary(u, x, in: self) }
    func binary(_ b: BinaryOp, _ x: LLVMValueRef, _ y: LLVMValueRef) -> LLVMValueRef { ElementwiseSemantics.binary(b, x, y, in: self) }
    func select(_ c: LLVMValueRef, _ x: LLVMValueRef, _ y: LLVMValueRef) -> LLVMValueRef { ElementwiseSemantics.select(c, x, y, in: self) }

    // MARK: ScalarArithmetic

    func constant(_ v: Float) -> LLVMValueRef { LLVMConstReal(float, Double(v))! }
    func negate(_ x: LLVMValueRef) -> LLVMValueRef { LLVMBuildFNeg(builder, x, "")! }
    func add(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFAdd(builder, a, b, "")! }
    func subtract(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFSub(builder, a, b, "")! }
    func multiply(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFMul(builder, a, b, "")! }
    func divide(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFDiv(builder, a, b, "")! }
    func power(_ x: LLVMValueRef, _ y: LLVMValueRef) -> LLVMValueRef { intrinsic("pow", [x, y]) }

    func apply(_ f: ScalarFunction, _ x: LLVMValueRef) -> LLVMValueRef {
        switch f {
        case .exp: return intrinsic("exp", [x])
        case .log: return intrinsic("log", [x])
        case .sqrt: return intrinsic("sqrt", [x])
        case .abs: return intrinsic("fabs", [x])
        case .sin: return intrinsic("sin", [x])
        case .cos: return intrinsic("cos", [x])
        case .floor: return intrinsic("floor", [x])
        case .roundEven: return intrinsic("roundeven", [x])
        // no LLVM intrinsics: the C library's, as the reference calls them
        case .tanh: return libm("tanhf", x)
        case .log1p: return libm("log1pf", x)
        }
    }

    func choose(_ test: ScalarComparison, _ l: LLVMValueRef, _ r: LLVMValueRef, then a: LLVMValueRef, else b: LLVMValueRef) -> LLVMValueRef {
        let predicate: LLVMRealPredicate
        switch test {
        case .greater: predicate = LLVMRealOGT
        case .less: predicate = LLVMRealOLT
        case .greaterOrEqual: predicate = LLVMRealOGE
        case .equal: predicate = LLVMRealOEQ
        case .notEqual: predicate = LLVMRealUNE
        case .unordered: predicate = LLVMRealUNO
        }
        return LLVMBuildSelect(builder, LLVMBuildFCmp(builder, predicate, l, r, "")!, a, b, "")!
    }

    // MARK: calls

    /// `llvm.<name>.f32` (an intrinsic; lowered to libm where the target has no instruction).
    func intrinsic(_ name: String, _ args: [LLVMValueRef]) -> LLVMValueRef {
        let full = "llvm." + name
        let id = LLVMLookupIntrinsicID(full, full.utf8.count)
        precondition(id != 0, "no LLVM intrinsic \(full)")
        var types: [LLVMTypeRef?] = [float]
        let fn = types.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(module, id, $0.baseAddress, 1) }
        var argv: [LLVMValueRef?] = args
        let fnType = LLVMIntrinsicGetType(context, id, &types, 1)
        return argv.withUnsafeMutableBufferPointer { LLVMBuildCall2(builder, fnType, fn, $0.baseAddress, UInt32(args.count), "")! }
    }

    /// A call to a C math function `float name(float)` of the process (resolved by the JIT).
    func libm(_ name: String, _ x: LLVMValueRef) -> LLVMValueRef {
        var params: [LLVMTypeRef?] = [float]
        let type = params.withUnsafeMutableBufferPointer { LLVMFunctionType(float, $0.baseAddress, 1, 0)! }
        let fn = LLVMGetNamedFunction(module, name) ?? LLVMAddFunction(module, name, type)!
        var argv: [LLVMValueRef?] = [x]
        return argv.withUnsafeMutableBufferPointer { LLVMBuildCall2(builder, type, fn, $0.baseAddress, 1, "")! }
    }
}
