import Dispatch
import FastKernelSupport
import Foundation
import GraphIR

/// Chooses among the kernels that can run a step by timing them on this machine when the
/// executable is compiled (as XLA's and oneDNN's autotuners, TVM and tinygrad's BEAM search
/// do), and keeps the choices in a JSON file keyed by CPU model, instruction sets, thread count,
/// build and step shape: a later compile on the same machine and build reads them back instead
/// of measuring. Every compile logs its hits and misses and why.
public final class KernelTuner: @unchecked Sendable {
    /// `~/.cache/stegastamp/tuning.json`.
    public static var defaultPath: String {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSTemporaryDirectory()
        return home + "/.cache/stegastamp/tuning.json"
    }

    /// Where tuning messages go (the CLI's standard error by default).
    nonisolated(unsafe) public static var log: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(("kernel tuning: " + line + "\n").utf8))
    }

    /// The share of the machine's cores that other processes kept busy over a short window
    /// (nil: unknown). Measured before timing: a loaded machine slows the candidates unevenly
    /// (a two-thread kernel waits for a core, a one-thread one does not), and a choice made then
    /// would be kept for every later compile of this build. Replaceable by tests.
    nonisolated(unsafe) public static var loadProbe: @Sendable () -> Double? = { otherProcessesLoad(seconds: 0.1) }

    /// Above this share of the cores busy elsewhere, choices are measured but not cached
    /// (a training run on both cores reads 1; a quiet machine 0-0.05).
    public static let defaultLoadLimit = 0.25

    public let path: String
    private var entries: [String: Entry] = [:]
    /// Choices measured on a busy machine: used by this process, never written to the file.
    private var transient: [String: Entry] = [:]
    /// The last load probe: when (uptime ns) and what it read.
    private var probed: (at: UInt64, share: Double?)?
    /// Why the file gave nothing (shown with the first miss): missing, unreadable, or nil.
    private var loadProblem: String?
    private let lock = NSLock()

    struct Entry: Codable {
        var kernel: String
        /// Milliseconds per candidate, as measured.
        var ms: [String: Double]
    }

    struct File: Codable {
        var version: Int
        var entries: [String: Entry]
    }

    private static let version = 1
    private nonisolated(unsafe) static var tuners: [String: KernelTuner] = [:]
    private static let tunersLock = NSLock()

    /// One tuner per cache file in a process (its entries read once).
    public static func shared(path: String) -> KernelTuner {
        tunersLock.lock()
        defer { tunersLock.unlock() }
        if let t = tuners[path] { return t }
        let t = KernelTuner(path: path)
        tuners[path] = t
        return t
    }

    /// Drops the process's tuner of `path` (tests: the next compile reads the file as a new process would).
    static func forget(path: String) {
        tunersLock.lock()
        tuners[path] = nil
        tunersLock.unlock()
    }

    init(path: String) {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { loadProblem = "no cache file yet"; return }
        do {
            let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            guard file.version == Self.version else {
                loadProblem = "the cache file is of version \(file.version), not \(Self.version): measuring again"
                return
            }
            entries = file.entries
        } catch {
            loadProblem = "the cache file is unreadable (\(error)): measuring again, it will be rewritten"
        }
    }

    /// What every key starts with: the machine and the build the measurements hold for.
    static let context: String = {
        var model = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            let lines = info.split(separator: "\n")
            func field(_ name: String) -> String? {
                lines.first { $0.hasPrefix(name) }.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) }
            }
            model = [field("model name"), field("cpu family").map { "family " + $0 }, field("model\t").map { "model " + $0 }]
                .compactMap { $0 }.joined(separator: " ")
        }
        // The executable itself (the link /proc/self/exe resolved: the link's own date is the process's start).
        var build = "unknown build"
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
           let a = try? FileManager.default.attributesOfItem(atPath: exe), let size = a[.size] as? Int,
           let date = a[.modificationDate] as? Date {
            build = "build \(size)-\(Int(date.timeIntervalSince1970))"
        }
        let isas = VectorISA.available.map(\.rawValue).joined(separator: "+")
        let threads = Parallel.threads ?? ProcessInfo.processInfo.activeProcessorCount
        return "\(model) | \(isas) | \(threads) threads | \(build)"
    }()

    static func key(_ s: Step) -> String {
        "\(context) | \(describe(s.op)) \(s.operandShapes.map(Shape.describe).joined(separator: " ")) -> \(Shape.describe(s.shape))"
    }

    /// A candidate as the cache file names it: a matmul's candidates (`ConvolutionPlanner` offers the
    /// skinny kernels as `.direct(isa)` and OpenBLAS as `.gemm`) by what they run.
    static func name(_ k: ConvKernel, for s: Step) -> String {
        guard case .matmul = s.op else { return k.key }
        switch k {
        case .direct(let isa): return "skinny-\(isa.rawValue)"
        case .gemm: return "sgemm"
        default: return k.key
        }
    }

    /// The candidate a cache file's name stands for (nil: unknown, or an ISA this CPU lacks).
    static func kernel(named name: String, for s: Step) -> ConvKernel? {
        guard case .matmul = s.op else { return ConvKernel(key: name) }
        if name == "sgemm" { return .gemm }
        guard name.hasPrefix("skinny-"), let isa = VectorISA(rawValue: String(name.dropFirst("skinny-".count))), isa.isAvailable else { return nil }
        return .direct(isa)
    }

    /// An op as keys name it; a fused one by the ops of its body in order.
    static func describe(_ op: Op) -> String {
        guard case .fused(let f) = op else { return "\(op)" }
        return "fused[" + f.body.values.compactMap { $0.op.map { "\($0)" } }.joined(separator: " ") + "]"
    }

    /// The outcome of one choice, for the compile's log line.
    /// `busy`: measured while other processes used that share of the cores, kept for this
    /// process only.
    enum Outcome: Equatable { case hit, measured, busy(Double) }

    /// The fastest of `candidates` for the step: from the cache, or measured now and stored
    /// (in the file only when the machine was quiet enough to trust the times).
    func choose(_ s: Step, candidates: [ConvKernel], loadLimit: Double = defaultLoadLimit) -> (ConvKernel, Outcome) {
        let key = Self.key(s)
        lock.lock()
        let cached = entries[key] ?? transient[key]
        lock.unlock()
        if let cached, let k = Self.kernel(named: cached.kernel, for: s), candidates.contains(k) { return (k, .hit) }
        let load = loadLimit < 1 ? currentLoad() : nil
        var times: [String: Double] = [:]
        var best = candidates[0], bestTime = Double.infinity
        for c in candidates {
            let t = Self.time(s, c)
            times[Self.name(c, for: s)] = t * 1e3
            if t < bestTime { (best, bestTime) = (c, t) }
        }
        lock.lock()
        defer { lock.unlock() }
        if let load, load > loadLimit {
            transient[key] = Entry(kernel: Self.name(best, for: s), ms: times)
            return (best, .busy(load))
        }
        entries[key] = Entry(kernel: Self.name(best, for: s), ms: times)
        return (best, .measured)
    }

    /// The load probe's reading, taken at most once a second (a compile measures many steps).
    private func currentLoad() -> Double? {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        if let p = probed, now < p.at + 1_000_000_000 { lock.unlock(); return p.share }
        lock.unlock()
        let share = Self.loadProbe()
        lock.lock()
        probed = (DispatchTime.now().uptimeNanoseconds, share)
        lock.unlock()
        return share
    }

    /// The share of all cores that processes other than this one kept busy during `seconds`
    /// (from /proc/stat's and /proc/self/stat's tick counters; nil where they cannot be read).
    public static func otherProcessesLoad(seconds: Double) -> Double? {
        func systemTicks() -> (busy: Double, total: Double)? {
            guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
                  let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
            let f = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            guard f.count >= 5 else { return nil }
            // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
            let total = f.prefix(8).reduce(0, +)
            return (total - f[3] - f[4], total)
        }
        func ownTicks() -> Double? {
            // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
            guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
                  let close = text.lastIndex(of: ")") else { return nil }
            let f = text[text.index(after: close)...].split(separator: " ")
            guard f.count > 12, let u = Double(f[11]), let s = Double(f[12]) else { return nil }
            return u + s
        }
        guard let s0 = systemTicks(), let o0 = ownTicks() else { return nil }
        usleep(UInt32(seconds * 1e6))
        guard let s1 = systemTicks(), let o1 = ownTicks(), s1.total > s0.total else { return nil }
        let other = (s1.busy - s0.busy) - (o1 - o0)
        return min(max(other / (s1.total - s0.total), 0), 1)
    }

    /// Why this compile measured rather than read (the first time per process).
    func missReason() -> String {
        lock.lock()
        defer { lock.unlock() }
        if let p = loadProblem { loadProblem = nil; return p }
        return "no entry for these shapes on this CPU, thread count and build"
    }

    /// Writes the entries (temporary file, then rename: a reader never sees half a file).
    func save() {
        lock.lock()
        let file = File(version: Self.version, entries: entries)
        lock.unlock()
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            let dir = (path as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let tmp = path + ".tmp.\(getpid())"
            try enc.encode(file).write(to: URL(fileURLWithPath: tmp))
            guard rename(tmp, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        } catch {
            Self.log("cannot write \(path) (\(error)): the choices hold for this process only")
        }
    }

    /// Seconds per call of the step's kernel `c` on random operands: the best of several calls
    /// after one warm-up, at least 3 calls and 10 ms in all (at most 50 calls).
    static func time(_ s: Step, _ c: ConvKernel) -> Double {
        guard let (_, body) = CPUKernels.contractionKernel(s, conv: { _ in c }) else { return .infinity }
        var rng = SplitMix(seed: 1)
        let operands = s.operandShapes.map { shape -> UnsafeMutablePointer<Float> in
            let n = max(Shape.count(shape), 1)
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            for i in 0..<n { p[i] = rng.nextFloat() - 0.5 }
            return p
        }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(Shape.count(s.shape), 1))
        let args = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: max(operands.count, 1))
        for (i, p) in operands.enumerated() { args[i] = UnsafePointer(p) }
        defer {
            for p in operands { p.deallocate() }
            out.deallocate()
            args.deallocate()
        }
        let workspace = Workspace()
        body(UnsafePointer(args), out, workspace)
        var best = Double.infinity, total = 0.0, calls = 0
        while calls < 50 && (calls < 3 || total < 0.01) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body(UnsafePointer(args), out, workspace)
            let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, t)
            total += t
            calls += 1
        }
        return best
    }
}

/// A small deterministic generator for the tuner's operands.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
