internal import CLLVM
import GraphIR

/// Emits the scalar computation of one element of an elementwise body: one LLVM instruction
/// sequence per op, with the reference kernel's semantics (NaN-propagating max/min, relu of NaN
/// is 0, select on "not equal to 0", the stable sigmoid cross-entropy). Exhaustive over the
/// elementwise ops, so a new unary or binary op must be given its code here.
struct ElementwiseCodegen {
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

    func constant(_ v: Float) -> LLVMValueRef { LLVMConstReal(float, Double(v))! }

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

    func select(_ c: LLVMValueRef, _ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildSelect(builder, c, a, b, "")! }
    func cmp(_ p: LLVMRealPredicate, _ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFCmp(builder, p, a, b, "")! }
    func add(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFAdd(builder, a, b, "")! }
    func sub(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFSub(builder, a, b, "")! }
    func mul(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFMul(builder, a, b, "")! }
    func div(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { LLVMBuildFDiv(builder, a, b, "")! }
    /// 1 or 0 from a comparison.
    func indicator(_ c: LLVMValueRef) -> LLVMValueRef { select(c, constant(1), constant(0)) }
    /// Swift.max(a, b): b when b >= a, else a.
    func max(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { select(cmp(LLVMRealOGE, b, a), b, a) }
    func min(_ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef { select(cmp(LLVMRealOLT, b, a), b, a) }

    func unary(_ u: UnaryOp, _ x: LLVMValueRef) -> LLVMValueRef {
        switch u {
        case .neg: return LLVMBuildFNeg(builder, x, "")!
        case .exp: return intrinsic("exp", [x])
        case .log: return intrinsic("log", [x])
        case .sqrt: return intrinsic("sqrt", [x])
        case .abs: return intrinsic("fabs", [x])
        case .relu: return select(cmp(LLVMRealOGT, x, constant(0)), x, constant(0))
        case .sigmoid: return div(constant(1), add(constant(1), intrinsic("exp", [LLVMBuildFNeg(builder, x, "")!])))
        case .tanh: return libm("tanhf", x)
        case .sin: return intrinsic("sin", [x])
        case .cos: return intrinsic("cos", [x])
        case .floor: return intrinsic("floor", [x])
        case .round: return intrinsic("roundeven", [x])
        case .sign:
            return select(cmp(LLVMRealOGT, x, constant(0)), constant(1), select(cmp(LLVMRealOLT, x, constant(0)), constant(-1), constant(0)))
        case .stopGradient: return x
        }
    }

    func binary(_ b: BinaryOp, _ x: LLVMValueRef, _ y: LLVMValueRef) -> LLVMValueRef {
        switch b {
        case .add: return add(x, y)
        case .sub: return sub(x, y)
        case .mul: return mul(x, y)
        case .div: return div(x, y)
        case .pow:
            let id = LLVMLookupIntrinsicID("llvm.pow", 8)
            var types: [LLVMTypeRef?] = [float]
            let fn = types.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(module, id, $0.baseAddress, 1) }
            let fnType = LLVMIntrinsicGetType(context, id, &types, 1)
            var argv: [LLVMValueRef?] = [x, y]
            return argv.withUnsafeMutableBufferPointer { LLVMBuildCall2(builder, fnType, fn, $0.baseAddress, 2, "")! }
        case .maximum: return select(cmp(LLVMRealUNO, x, y), constant(.nan), max(x, y))
        case .minimum: return select(cmp(LLVMRealUNO, x, y), constant(.nan), min(x, y))
        case .less: return indicator(cmp(LLVMRealOLT, x, y))
        case .greater: return indicator(cmp(LLVMRealOGT, x, y))
        case .equal: return indicator(cmp(LLVMRealOEQ, x, y))
        case .sigmoidCrossEntropy:
            // max(x, 0) - x * z + log1p(exp(-|x|))
            let softplus = libm("log1pf", intrinsic("exp", [LLVMBuildFNeg(builder, intrinsic("fabs", [x]), "")!]))
            return add(sub(max(x, constant(0)), mul(x, y)), softplus)
        }
    }

    /// select(c, a, b) with the reference's test: c != 0 (NaN counts as true).
    func select3(_ c: LLVMValueRef, _ a: LLVMValueRef, _ b: LLVMValueRef) -> LLVMValueRef {
        select(cmp(LLVMRealUNE, c, constant(0)), a, b)
    }
}
