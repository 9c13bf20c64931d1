internal import CLLVM
import Foundation
import GraphIR

/// An elementwise kernel to compile: a body graph (its inputs are the operands, in order; its ops
/// are unary, binary or select at one shape; one output) and the static shapes it runs at. The
/// output may also be a reduction over the trailing axes of the elementwise result (a fused
/// `input` kernel: a loss's sum of squares, a mean over pixels), accumulated in double like the
/// reference kernel.
public struct ElementwiseKernel: Sendable {
    public var name: String
    public var body: Graph
    public var operandShapes: [[Int]]
    public var shape: [Int]
    /// The operands whose buffer the result is written over (the memory plan's in-place reuse): their
    /// loads go through the output pointer, so the vectoriser sees one array, not two that may overlap.
    public var inPlaceOperands: Set<Int>

    public init(name: String, body: Graph, operandShapes: [[Int]], shape: [Int], inPlaceOperands: Set<Int>) {
        self.name = name
        self.body = body
        self.operandShapes = operandShapes
        self.shape = shape
        self.inPlaceOperands = inPlaceOperands
    }

    /// Constants of the body with more than one element (they get a nest stride like operands).
    var arrayConstants: [Tensor] {
        body.values.compactMap { if case .constant(let t) = $0.definition, t.count > 1 { return t } else { return nil } }
    }

    /// The final reduction, when the body ends in one: its kind, the shape it reduces and how many
    /// leading axes it keeps.
    public var reduction: (op: ReduceOp, input: [Int], kept: Int)? { Self.reduction(of: body) }

    static func reduction(of body: Graph) -> (op: ReduceOp, input: [Int], kept: Int)? {
        guard case .op(.reduce(let r, let axes, _), let x) = body[body.outputs[0].value].definition else { return nil }
        let input = body[x[0]].shape
        let kept = input.count - axes.count
        guard axes.sorted() == Array(kept..<input.count) else { return nil }
        return (r, input, kept)
    }

    /// The shape the loops run over: the result's, or the reduced input's.
    var iterationShape: [Int] { reduction?.input ?? shape }

    /// For a reduction, the output seen from the loop shape (reduced axes of size 1): walked as a
    /// last pseudo-operand, so loop merging never crosses from kept into reduced axes.
    var outputView: [[Int]] {
        guard let r = reduction else { return [] }
        return [Array(r.input[..<r.kept]) + [Int](repeating: 1, count: r.input.count - r.kept)]
    }

    /// Whether `body` is something this JIT compiles: elementwise ops at `shape`, an op as output;
    /// or elementwise ops ending in a reduction over trailing axes whose result has `shape`.
    public static func accepts(_ body: Graph, shape: [Int]) -> Bool {
        guard body.outputs.count == 1, body[body.outputs[0].value].op != nil else { return false }
        let red = reduction(of: body)
        let loopShape = red?.input ?? shape
        for (i, v) in body.values.enumerated() {
            switch v.definition {
            case .op(.unary, _), .op(.binary, _), .op(.select, _): if v.shape != loopShape { return false }
            case .op(.reduce, _): if red == nil || i != body.outputs[0].value.index || Shape.count(v.shape) != Shape.count(shape) { return false }
            case .op: return false
            case .parameter: return false
            case .input, .constant: continue
            }
        }
        // Inputs must broadcast to the loop shape (a reduction's operands are read at its input shape).
        return body.values.allSatisfy { v in
            if case .input = v.definition { return Shape.broadcast([v.shape, loopShape]) == loopShape }
            return true
        }
    }
}

/// `void kernel(const float **operands, float *out, i64 begin, i64 end)`: computes the steps
/// [begin, end) of the outermost axis of the kernel's LoopNest.
public typealias ElementwiseFunction = @convention(c) (UnsafePointer<UnsafePointer<Float>>, UnsafeMutablePointer<Float>, Int64, Int64) -> Void

public struct JITError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = "GraphJIT: " + d }
}

/// Elementwise kernels compiled to machine code with LLVM 14's ORC LLJIT: one module per call,
/// verified, optimised with the `default<O3>` pipeline for the host CPU (AVX2/FMA here, so the
/// loops vectorise), and kept alive as long as this object.
public final class JITModule: @unchecked Sendable {
    public let functions: [String: ElementwiseFunction]
    public let nests: [String: LoopNest]
    /// Whether the outermost loop may be split between threads (not when it runs over reduced axes).
    public let splittable: [String: Bool]
    /// The optimised LLVM IR of the whole module (what was compiled).
    public let ir: String
    private let jit: LLVMOrcLLJITRef

    private static let initialized: Bool = {
        LLVMInitializeNativeTarget() == 0 && LLVMInitializeNativeAsmPrinter() == 0
    }()

    /// Whether the machine code came from the object cache (nil: no cache was given).
    public let cacheHit: Bool?

    /// With `cacheDirectory`, the machine code of a module is kept there as an object file named by
    /// a hash of its unoptimised IR, the host CPU and features and LLVM's version: a later compile
    /// of the same kernels on this machine loads it instead of optimising and generating code
    /// again (the JIT's compile time is nearly all of an executable's).
    public init(_ kernels: [ElementwiseKernel], cacheDirectory: String? = nil) throws {
        guard Self.initialized else { throw JITError("LLVM has no native target for this machine") }
        let tsc = LLVMOrcCreateNewThreadSafeContext()!
        defer { LLVMOrcDisposeThreadSafeContext(tsc) }
        let context = LLVMOrcThreadSafeContextGetContext(tsc)!
        let module = LLVMModuleCreateWithNameInContext("graphjit", context)!
        var moduleOwned = true
        defer { if moduleOwned { LLVMDisposeModule(module) } }

        // The host target: triple, CPU and features, so the optimiser's cost model is AVX2's.
        let triple = LLVMGetDefaultTargetTriple()!
        defer { LLVMDisposeMessage(triple) }
        let cpu = LLVMGetHostCPUName()!, features = LLVMGetHostCPUFeatures()!
        defer { LLVMDisposeMessage(cpu); LLVMDisposeMessage(features) }
        var target: LLVMTargetRef?
        var message: UnsafeMutablePointer<CChar>?
        if LLVMGetTargetFromTriple(triple, &target, &message) != 0 {
            defer { LLVMDisposeMessage(message) }
            throw JITError("no target for \(String(cString: triple)): \(String(cString: message!))")
        }
        let machine = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelAggressive, LLVMRelocDefault, LLVMCodeModelJITDefault)!
        defer { LLVMDisposeTargetMachine(machine) }
        LLVMSetTarget(module, triple)
        let layout = LLVMCreateTargetDataLayout(machine)!
        defer { LLVMDisposeTargetData(layout) }
        LLVMSetModuleDataLayout(module, layout)

        var nests: [String: LoopNest] = [:]
        var splittable: [String: Bool] = [:]
        let builder = LLVMCreateBuilderInContext(context)!
        defer { LLVMDisposeBuilder(builder) }
        for k in kernels {
            guard ElementwiseKernel.accepts(k.body, shape: k.shape) else { throw JITError("kernel \(k.name) is not elementwise") }
            let nest = LoopNest(shape: k.iterationShape, operandShapes: k.operandShapes + k.arrayConstants.map(\.shape) + k.outputView)
            nests[k.name] = nest
            splittable[k.name] = nest.extents.count > 0 && (k.reduction == nil || nest.strides.last![0] != 0)
            let fn = KernelEmitter(context: context, module: module, builder: builder, kernel: k, nest: nest).emit()
            for (key, value) in [("target-cpu", cpu), ("target-features", features)] {
                let attr = LLVMCreateStringAttribute(context, key, UInt32(key.utf8.count), value, UInt32(strlen(value)))
                LLVMAddAttributeAtIndex(fn, UInt32.max, attr)  // the function index (~0U)
            }
        }
        if LLVMVerifyModule(module, LLVMReturnStatusAction, &message) != 0 {
            defer { LLVMDisposeMessage(message) }
            throw JITError("generated module does not verify: \(String(cString: message!))")
        }
        LLVMDisposeMessage(message)
        var jit: LLVMOrcLLJITRef?
        try Self.check(LLVMOrcCreateLLJIT(&jit, nil), "creating the JIT")
        self.jit = jit!
        let dylib = LLVMOrcLLJITGetMainJITDylib(jit)
        var generator: LLVMOrcDefinitionGeneratorRef?
        try Self.check(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&generator, LLVMOrcLLJITGetGlobalPrefix(jit), nil, nil),
                       "resolving libm")
        LLVMOrcJITDylibAddGenerator(dylib, generator)

        var cachePath: String?
        if let cacheDirectory {
            let raw = LLVMPrintModuleToString(module)!
            let key = ObjectCacheKey.of(String(cString: raw) + "\n" + String(cString: cpu) + "\n" + String(cString: features) + "\nLLVM 14 O3")
            LLVMDisposeMessage(raw)
            cachePath = cacheDirectory + "/" + key + ".o"
        }
        if let cachePath, let object = ObjectCacheKey.load(cachePath) {
            // A hit: the stored object file, linked as the JIT would link its own.
            let buffer = object.withUnsafeBytes { LLVMCreateMemoryBufferWithMemoryRangeCopy($0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count, "cached")! }
            try Self.check(LLVMOrcLLJITAddObjectFile(jit, dylib, buffer), "loading the cached object \(cachePath)")
            ir = "; machine code loaded from \(cachePath) (optimised IR not kept)\n"
            cacheHit = true
        } else {
            let options = LLVMCreatePassBuilderOptions()!
            defer { LLVMDisposePassBuilderOptions(options) }
            LLVMPassBuilderOptionsSetLoopVectorization(options, 1)
            LLVMPassBuilderOptionsSetSLPVectorization(options, 1)
            try Self.check(LLVMRunPasses(module, "default<O3>", machine, options), "optimising")
            let text = LLVMPrintModuleToString(module)!
            ir = String(cString: text)
            LLVMDisposeMessage(text)
            if let cachePath {
                var buffer: LLVMMemoryBufferRef?
                if LLVMTargetMachineEmitToMemoryBuffer(machine, module, LLVMObjectFile, &message, &buffer) != 0 {
                    defer { LLVMDisposeMessage(message) }
                    throw JITError("generating code: \(String(cString: message!))")
                }
                let object = Data(bytes: LLVMGetBufferStart(buffer), count: LLVMGetBufferSize(buffer))
                ObjectCacheKey.store(object, at: cachePath)
                try Self.check(LLVMOrcLLJITAddObjectFile(jit, dylib, buffer), "loading the generated object")
                cacheHit = false
            } else {
                moduleOwned = false
                try Self.check(LLVMOrcLLJITAddLLVMIRModule(jit, dylib, LLVMOrcCreateNewThreadSafeModule(module, tsc)), "adding the module")
                cacheHit = nil
            }
        }
        var functions: [String: ElementwiseFunction] = [:]
        for k in kernels {
            var address: LLVMOrcExecutorAddress = 0
            try Self.check(LLVMOrcLLJITLookup(jit, &address, k.name), "compiling \(k.name)")
            functions[k.name] = unsafeBitCast(UnsafeRawPointer(bitPattern: UInt(address))!, to: ElementwiseFunction.self)
        }
        self.functions = functions
        self.nests = nests
        self.splittable = splittable
    }

    deinit { LLVMOrcDisposeLLJIT(jit) }

    static func check(_ error: LLVMErrorRef?, _ what: String) throws {
        guard let error else { return }
        let m = LLVMGetErrorMessage(error)!
        defer { LLVMDisposeErrorMessage(m) }
        throw JITError("\(what): \(String(cString: m))")
    }
}

/// Writes one kernel function: operand pointers loaded once, a loop per LoopNest axis (the
/// outermost over [begin, end)), constant strides, the body's ops on scalars, one store.
struct KernelEmitter {
    let context: LLVMContextRef
    let module: LLVMModuleRef
    let builder: LLVMBuilderRef
    let kernel: ElementwiseKernel
    let nest: LoopNest

    var i64: LLVMTypeRef { LLVMInt64TypeInContext(context) }
    func int(_ v: Int) -> LLVMValueRef { LLVMConstInt(i64, UInt64(bitPattern: Int64(v)), 1) }

    func emit() -> LLVMValueRef {
        let codegen = ElementwiseCodegen(context: context, module: module, builder: builder)
        let float = codegen.float
        let floatPtr = LLVMPointerType(float, 0)!
        var params: [LLVMTypeRef?] = [LLVMPointerType(floatPtr, 0), floatPtr, i64, i64]
        let type = params.withUnsafeMutableBufferPointer { LLVMFunctionType(LLVMVoidTypeInContext(context), $0.baseAddress, 4, 0)! }
        let fn = LLVMAddFunction(module, kernel.name, type)!
        let noalias = LLVMGetEnumAttributeKindForName("noalias", 7)
        LLVMAddAttributeAtIndex(fn, 1, LLVMCreateEnumAttribute(context, noalias, 0))
        let entry = LLVMAppendBasicBlockInContext(context, fn, "entry")
        LLVMPositionBuilderAtEnd(builder, entry)
        let double = LLVMDoubleTypeInContext(context)!
        // A reduction's accumulator (promoted to a register by the optimiser).
        let accumulator = kernel.reduction == nil ? nil : LLVMBuildAlloca(builder, double, "acc")
        let args = LLVMGetParam(fn, 0)!, out = LLVMGetParam(fn, 1)!
        let operands: [LLVMValueRef] = kernel.operandShapes.indices.map { k in
            if kernel.inPlaceOperands.contains(k) { return out }
            var index: [LLVMValueRef?] = [int(k)]
            let slot = index.withUnsafeMutableBufferPointer { LLVMBuildInBoundsGEP2(builder, floatPtr, args, $0.baseAddress, 1, "")! }
            return LLVMBuildLoad2(builder, floatPtr, slot, "operand\(k)")!
        }
        // Array constants of the body: private globals, walked like operands (after them in the nest).
        var sources = operands
        var constantSource: [Int: Int] = [:]
        for (i, v) in kernel.body.values.enumerated() {
            guard case .constant(let t) = v.definition, t.count > 1 else { continue }
            var elements: [LLVMValueRef?] = t.scalars.map { codegen.constant($0) }
            let array = elements.withUnsafeMutableBufferPointer { LLVMConstArray(float, $0.baseAddress, UInt32(t.count))! }
            let global = LLVMAddGlobal(module, LLVMArrayType(float, UInt32(t.count)), "\(kernel.name).c\(i)")!
            LLVMSetInitializer(global, array)
            LLVMSetGlobalConstant(global, 1)
            LLVMSetLinkage(global, LLVMPrivateLinkage)
            constantSource[i] = sources.count
            sources.append(LLVMBuildBitCast(builder, global, floatPtr, "")!)
        }
        let begin = LLVMGetParam(fn, 2)!, end = LLVMGetParam(fn, 3)!
        let rank = nest.extents.count
        func element(_ pointer: LLVMValueRef, _ offset: LLVMValueRef) -> LLVMValueRef {
            var index: [LLVMValueRef?] = [offset]
            return index.withUnsafeMutableBufferPointer { LLVMBuildInBoundsGEP2(builder, float, pointer, $0.baseAddress, 1, "")! }
        }
        // offsets[k] for operands, the last entry for the output (row-major over the nest, or the
        // reduction's output view: stride 0 along reduced axes).
        let outStrides = kernel.reduction == nil ? Shape.strides(nest.extents) : nest.strides[nest.strides.count - 1]
        let red = kernel.reduction
        // The first loop axis of the reduced block (reduced axes are trailing).
        var reducedAxis = rank
        while reducedAxis > 0 && outStrides[reducedAxis - 1] == 0 { reducedAxis -= 1 }
        let reducedCount = red.map { Shape.count($0.input) / max(Shape.count(kernel.shape), 1) } ?? 1
        var inReduction = false
        func loops(_ axis: Int, _ offsets: [LLVMValueRef]) {
            if let red, let accumulator, axis == reducedAxis, !inReduction {
                let initial: Double = red.op == .max ? -.infinity : 0
                LLVMBuildStore(builder, LLVMConstReal(double, initial), accumulator)
                inReduction = true
                loops(axis, offsets)
                inReduction = false
                var total = LLVMBuildLoad2(builder, double, accumulator, "")!
                if red.op == .mean { total = LLVMBuildFDiv(builder, total, LLVMConstReal(double, Double(reducedCount)), "")! }
                LLVMBuildStore(builder, LLVMBuildFPTrunc(builder, total, float, "")!, element(out, offsets.last!))
                return
            }
            if axis == rank {
                var values = [LLVMValueRef?](repeating: nil, count: kernel.body.values.count)
                var next = 0
                for (i, v) in kernel.body.values.enumerated() {
                    switch v.definition {
                    case .input:
                        values[i] = LLVMBuildLoad2(builder, float, element(operands[next], offsets[next]), "")
                        next += 1
                    case .constant(let t):
                        if t.count == 1 { values[i] = codegen.constant(t.scalars[0]) }
                        else { let k = constantSource[i]!; values[i] = LLVMBuildLoad2(builder, float, element(sources[k], offsets[k]), "") }
                    case .parameter: fatalError("fused bodies have no parameters")
                    case .op(let op, let a):
                        let x = a.map { values[$0.index]! }
                        switch op {
                        case .unary(let u): values[i] = codegen.unary(u, x[0])
                        case .binary(let b): values[i] = codegen.binary(b, x[0], x[1])
                        case .select: values[i] = codegen.select(x[0], x[1], x[2])
                        case .reduce: continue  // accumulated below
                        default: fatalError("checked by ElementwiseKernel.accepts")
                        }
                    }
                }
                if let red, let accumulator {
                    // The reduce op's operand, widened; max keeps NaN once it has seen one.
                    guard case .op(_, let a) = kernel.body[kernel.body.outputs[0].value].definition else { fatalError() }
                    let v = LLVMBuildFPExt(builder, values[a[0].index]!, double, "")!
                    let acc = LLVMBuildLoad2(builder, double, accumulator, "")!
                    let next: LLVMValueRef
                    if red.op == .max {
                        let larger = LLVMBuildSelect(builder, LLVMBuildFCmp(builder, LLVMRealOGT, v, acc, ""), v, acc, "")!
                        next = LLVMBuildSelect(builder, LLVMBuildFCmp(builder, LLVMRealUNO, v, acc, ""), LLVMConstReal(double, .nan), larger, "")!
                    } else {
                        next = LLVMBuildFAdd(builder, acc, v, "")!
                    }
                    LLVMBuildStore(builder, next, accumulator)
                } else {
                    LLVMBuildStore(builder, values[kernel.body.outputs[0].value.index]!, element(out, offsets.last!))
                }
                return
            }
            let from = axis == 0 ? begin : int(0), to = axis == 0 ? end : int(nest.extents[axis])
            loop(from, to) { index in
                var next: [LLVMValueRef] = []
                for k in 0..<sources.count {
                    next.append(LLVMBuildAdd(builder, offsets[k], LLVMBuildMul(builder, index, int(nest.strides[k][axis]), ""), "")!)
                }
                next.append(LLVMBuildAdd(builder, offsets.last!, LLVMBuildMul(builder, index, int(outStrides[axis]), ""), "")!)
                loops(axis + 1, next)
            }
        }
        loops(0, [LLVMValueRef](repeating: int(0), count: sources.count + 1))
        LLVMBuildRetVoid(builder)
        return fn
    }

    /// A counted loop `for i in from..<to` in rotated form (guard, body, latch), the shape LLVM's
    /// loop passes expect.
    func loop(_ from: LLVMValueRef, _ to: LLVMValueRef, _ body: (LLVMValueRef) -> Void) {
        let fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(builder))
        let preheader = LLVMGetInsertBlock(builder)!
        let bodyBlock = LLVMAppendBasicBlockInContext(context, fn, "loop")!
        let exit = LLVMAppendBasicBlockInContext(context, fn, "exit")!
        LLVMBuildCondBr(builder, LLVMBuildICmp(builder, LLVMIntSLT, from, to, ""), bodyBlock, exit)
        LLVMPositionBuilderAtEnd(builder, bodyBlock)
        let index = LLVMBuildPhi(builder, i64, "i")!
        body(index)
        let next = LLVMBuildNSWAdd(builder, index, int(1), "")!
        let latch = LLVMGetInsertBlock(builder)!
        var values: [LLVMValueRef?] = [from, next]
        var blocks: [LLVMBasicBlockRef?] = [preheader, latch]
        LLVMAddIncoming(index, &values, &blocks, 2)
        LLVMBuildCondBr(builder, LLVMBuildICmp(builder, LLVMIntSLT, next, to, ""), bodyBlock, exit)
        LLVMPositionBuilderAtEnd(builder, exit)
    }
}

/// Names and writes the JIT's object files.
enum ObjectCacheKey {
    /// 128 bits of two FNV-1a hashes of the text (different offsets), as hex.
    static func of(_ text: String) -> String {
        var a: UInt64 = 0xCBF2_9CE4_8422_2325, b: UInt64 = 0x6C62_272E_07BB_0142
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = b ^ (b >> 29)
        }
        return String(format: "%016llx%016llx", a, b) + "-\(text.utf8.count)"
    }

    static let magic = Array("GJITOBJ1".utf8)

    static func checksum(_ bytes: some Collection<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// The object stored at `path`, if its trailer (magic, checksum) says it is whole; a truncated
    /// or damaged file is a miss and is written again.
    static func load(_ path: String) -> Data? {
        guard let data = FileManager.default.contents(atPath: path), data.count > 16 else { return nil }
        let object = data.prefix(data.count - 16), trailer = Array(data.suffix(16))
        guard Array(trailer[0..<8]) == magic else { return nil }
        let sum = trailer[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        return sum == checksum(object) ? Data(object) : nil
    }

    /// Object, magic and checksum to a temporary file, then rename: a concurrent reader sees the
    /// whole object or none. A cache that cannot be written costs only the next compile's time.
    static func store(_ object: Data, at path: String) {
        var object = object
        let sum = checksum(object)
        object.append(contentsOf: magic)
        object.append(contentsOf: (0..<8).map { UInt8(truncatingIfNeeded: sum >> (8 * UInt64($0))) })
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = path + ".tmp.\(getpid())"
        guard (try? object.write(to: URL(fileURLWithPath: tmp))) != nil else { return }
        if rename(tmp, path) != 0 { try? FileManager.default.removeItem(atPath: tmp) }
    }
}
