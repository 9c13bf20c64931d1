// swift-tools-version:6.1
// The SwiftPM benchmark suite (ordo-one's package-benchmark), a package of its own so that the
// main build and `swift test` do not fetch or build the benchmark tooling:
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
// STEGASTAMP_BENCH_SIZE=400 for the paper size (default 128).
import PackageDescription

let package = Package(
    name: "StegaStampBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "StegaStamp", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Workloads",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "StegaStamp", package: "StegaStamp"),
                .product(name: "GraphRuntime", package: "StegaStamp"),
                .product(name: "GraphIR", package: "StegaStamp"),
            ],
            path: "Workloads",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)
