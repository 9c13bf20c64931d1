import ArgumentParser
import Foundation
import GraphIR
import GraphRuntime
import StegaStamp

/// Peak resident memory of this process, MiB (ru_maxrss is in KiB on Linux).
func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the peer workloads (W1 encoder, W2 decoder, W3 training step, encode, decode).",
        discussion: """
            Prints median ms, GFLOP/s (the peers' analytic FLOPs), peak memory and compile time. With --worker, \\
            speaks the worker protocol of ../shared/peers/README.md for one --size and --workload, so that \\
            OURS="stegastamp bench --worker" ../shared/peers/run_all.sh times us interleaved with the peers.
            """)
    @Flag(help: "Speak the peers' worker protocol on stdin/stdout.") var worker = false
    @Option(help: "Image size (square).") var size = 128
    @Option(parsing: .upToNextOption, help: "Workloads: W1 W2 W3 encode decode (default: all).") var workload: [String] = []
    @Option(help: "Timed iterations per workload.") var iterations = 5
    @OptionGroup var compile: CompileFlags
    @Option(help: "--worker: wait this long before each timed call (untimed), so threads a previous worker left spinning (onnxruntime, OpenMP, Eigen) have gone idle.")
    var settleMs = 0
    @Flag(help: "Instead of the workloads: every distinct convolution of W3 alone, in GFLOP/s and % of the sgemm peak.")
    var convolutions = false
    @Flag(help: "After the table, the time per op kind of the last iteration of each workload.") var profile = false

    /// Op kinds listed per workload by --profile.
    static let profileLines = 25

    /// Written unbuffered: the driver waits for each line.
    func emit(_ json: String) {
        FileHandle.standardOutput.write(("@@" + json + "\n").data(using: .utf8)!)
    }

    func run() throws {
        let names = workload.isEmpty ? BenchWorkload.allCases.map(\.rawValue) : workload
        let workloads = try names.map { n -> BenchWorkload in
            guard let w = BenchWorkload(rawValue: n) else {
                throw CLIError("unknown workload '\(n)'; workloads are \(BenchWorkload.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return w
        }
        if convolutions {
            try ConvolutionBench(size: size, iterations: iterations, options: compile.options(tune: false)).run()
            return
        }
        if worker {
            guard workloads.count == 1 else { emit(#"{"error": "--worker takes exactly one --workload"}"#); throw ExitCode(1) }
            try serve(workloads[0])
            return
        }
        let options = compile.options()
        let kernels = options.tuningCache.map { "tuned on this machine (\($0))" } ?? "\(options.convolution.rawValue) \(options.vectorISA.rawValue)"
        print("size \(size), backend \(options.backend.rawValue), \(iterations) timed iterations after one warm-up call; convolution kernels \(kernels), OpenBLAS \(BLASCore.name)")
        print("workload   batch   median ms      min ms   GFLOP/s   compile s   first call s   peak RSS MiB")
        var profiles: [(BenchWorkload, Profile)] = []
        for w in workloads {
            let r = try measure(w)
            print(w.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                  + String(format: " %7d %11.1f %11.1f %9.1f %11.2f %14.2f %14.0f", w.batch, r.median * 1000, r.min * 1000,
                           w.flops(size: size) / r.median / 1e9, r.compile, r.first, peakRSSMiB()))
            profiles.append((w, r.profile))
        }
        if profile {
            for (w, p) in profiles {
                print("\n\(w.rawValue): time by op kind and kernel (one iteration)")
                for line in p.lines(limit: Self.profileLines) { print(line) }
            }
        }
    }

    struct Result { var median, min, compile, first: Double; var profile: Profile }

    func prepare(_ w: BenchWorkload) throws -> (Executable, BenchWorkload.Built, ParameterStore, Double) {
        let built = try w.build(size: size)
        let t0 = Date()
        let exe = try Compiler.compile(built.graph, for: Signature.of(built.graph), options: compile.options())
        return (exe, built, ParameterStore(initializing: built.graph), Date().timeIntervalSince(t0))
    }

    func measure(_ w: BenchWorkload) throws -> Result {
        var (exe, built, store, compile) = try prepare(w)
        let t1 = Date()
        _ = try exe.run(built.feeds, parameters: &store)
        let first = Date().timeIntervalSince(t1) + compile
        var times: [Double] = []
        for _ in 0..<max(iterations, 1) {
            let t = Date()
            _ = try exe.run(built.feeds, parameters: &store)
            times.append(Date().timeIntervalSince(t))
        }
        times.sort()
        let p = Profile()
        if profile { _ = try exe.run(built.feeds, parameters: &store, profile: p) }
        return Result(median: times[times.count / 2], min: times[0], compile: compile, first: first, profile: p)
    }

    func serve(_ w: BenchWorkload) throws {
        do {
            let t0 = Date()
            var (exe, built, store, _) = try prepare(w)
            let out = try exe.run(built.feeds, parameters: &store)
            let sum = out[built.output]!.scalars.reduce(0.0) { $0 + Double($1) }
            emit(#"{"ready": true, "first_s": \#(Date().timeIntervalSince(t0)), "check": {"sum": \#(sum)}}"#)
            while let line = readLine() {
                let cmd = line.trimmingCharacters(in: .whitespaces)
                if cmd == "quit" { break }
                if cmd != "run" { continue }
                if settleMs > 0 { usleep(UInt32(settleMs) * 1000) }
                let t = Date()
                _ = try exe.run(built.feeds, parameters: &store)
                emit(#"{"t": \#(Date().timeIntervalSince(t))}"#)
            }
            emit(#"{"maxrss_mb": \#(peakRSSMiB())}"#)
        } catch {
            let message = "\(error)".replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            emit(#"{"error": "\#(message)"}"#)
            throw ExitCode(1)
        }
    }
}
