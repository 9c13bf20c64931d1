import ArgumentParser
import Foundation
import GraphRuntime

/// The compiler's options as flags: the one place the CLI turns flags (and, for older scripts,
/// the environment variables STEGASTAMP_CONV, STEGASTAMP_ISA, STEGASTAMP_JIT) into `CompileOptions`.
/// The library reads no environment.
struct CompileFlags: ParsableArguments {
    @Option(help: "interpreter or cpu.") var backend: Backend = .cpu
    @Flag(help: "cpu backend: run elementwise kernels as Swift loops instead of JIT-compiled code.") var noJit = false
    @Flag(help: "cpu backend: choose convolution kernels by the built-in rules instead of timing the candidates on this machine.")
    var noTune = false
    @Option(help: "cpu backend: the tuning cache (default ~/.cache/stegastamp/tuning.json).") var tuningCache: String?
    @Option(help: "cpu backend: while other processes keep more than this share of the cores busy, tuning choices are used but not cached (0-1; 1: always cached).")
    var tuningLoadLimit: Double = KernelTuner.defaultLoadLimit
    @Flag(help: "cpu backend: JIT-compile every time instead of loading machine code kept from an earlier compile (~/.cache/stegastamp/jit).")
    var noCompileCache = false
    @Option(help: "cpu backend, with --no-tune: winograd, direct or gemm (default winograd, or $STEGASTAMP_CONV).")
    var conv: ConvolutionAlgorithm?
    @Option(help: "cpu backend: the direct kernels' instruction set, avx2 or avx512 (default: the widest this CPU has, or $STEGASTAMP_ISA).")
    var isa: VectorISA?

    func validate() throws {
        guard tuningLoadLimit >= 0, tuningLoadLimit <= 1 else { throw ValidationError("--tuning-load-limit \(tuningLoadLimit): give a share of the cores between 0 and 1") }
        if let isa, !isa.isAvailable { throw ValidationError("--isa \(isa.rawValue): this CPU cannot run it (it has \(VectorISA.available.map(\.rawValue).joined(separator: ", ")))") }
    }

    /// The options; `tune: false` where a command compiles for one call (the measurement would cost more than it saves).
    func options(tune: Bool = true) -> CompileOptions {
        let env = ProcessInfo.processInfo.environment
        let conv = conv ?? env["STEGASTAMP_CONV"].flatMap(ConvolutionAlgorithm.init(rawValue:)) ?? .winograd
        let isa = isa ?? env["STEGASTAMP_ISA"].flatMap(VectorISA.init(rawValue:)).flatMap { $0.isAvailable ? $0 : nil } ?? .widest
        // An explicit algorithm (flag or environment) is a request: the tuner does not override it.
        let explicit = self.conv != nil || env["STEGASTAMP_CONV"] != nil || self.isa != nil || env["STEGASTAMP_ISA"] != nil
        let tuned = tune && !noTune && !explicit && backend == .cpu
        var options = CompileOptions(backend: backend, convolution: conv, jit: !noJit && env["STEGASTAMP_JIT"] != "0", vectorISA: isa,
                                     tuningCache: tuned ? (tuningCache ?? KernelTuner.defaultPath) : nil,
                                     compileCache: noCompileCache || backend != .cpu ? nil : Self.defaultCompileCache)
        options.tuningLoadLimit = tuningLoadLimit
        return options
    }
}

extension CompileFlags {
    static var defaultCompileCache: String {
        (ProcessInfo.processInfo.environment["HOME"] ?? NSTemporaryDirectory()) + "/.cache/stegastamp/jit"
    }
}

extension ConvolutionAlgorithm: ExpressibleByArgument {}
extension VectorISA: ExpressibleByArgument {}
