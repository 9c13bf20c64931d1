import Benchmark
import Foundation
import GraphIR
import GraphRuntime
import StegaStamp

/// The peer workloads (../shared/peers/README.md) through the compiled executor: W1 encoder
/// forward, W2 decoder forward, W3 training step (batch 4), encode and decode (batch 1). Each
/// is compiled once, outside the measurement; the metrics include the allocations per call (the
/// arena executor allocates only the output tensors) and the resident peak.
let benchmarks: @Sendable () -> Void = {
    let size = ProcessInfo.processInfo.environment["STEGASTAMP_BENCH_SIZE"].flatMap(Int.init) ?? 128
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .peakMemoryResident, .mallocCountTotal],
        maxDuration: .seconds(10), maxIterations: 50)
    for workload in BenchWorkload.allCases {
        let flops = workload.flops(size: size)
        Benchmark("\(workload.rawValue) \(size)x\(size) (\(String(format: "%.2f", flops / 1e9)) GFLOP)") {
            (benchmark: Benchmark, setup: (Executable, [String: Tensor], ParameterStore)) in
            var (exe, feeds, store) = setup
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try exe.run(feeds, parameters: &store))
            }
        } setup: { () throws -> (Executable, [String: Tensor], ParameterStore) in
            let built = try workload.build(size: size)
            let exe = try Compiler.compile(built.graph, for: Signature.of(built.graph))
            var store = ParameterStore(initializing: built.graph)
            _ = try exe.run(built.feeds, parameters: &store)  // first call outside the measurement
            return (exe, built.feeds, store)
        }
    }
}
