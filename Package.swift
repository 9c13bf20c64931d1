// swift-tools-version:6.1
import PackageDescription

// LLVM 14's C headers live outside the default include path on Debian.
let llvmInclude: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-I/usr/lib/llvm-14/include"])]

let package = Package(
    name: "StegaStamp",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "stegastamp", targets: ["stegastamp"]),
        .library(name: "GraphIR", targets: ["GraphIR"]),
        .library(name: "GraphRuntime", targets: ["GraphRuntime"]),
        .library(name: "GraphPasses", targets: ["GraphPasses"]),
        .library(name: "StegaStamp", targets: ["StegaStamp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries (Debian: libopenblas-dev, libpng-dev, llvm-14-dev, libturbojpeg0-dev, zlib1g-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Open MPI (libopenmpi-dev) for data-parallel training; its headers through pkg-config.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c"),
        .systemLibrary(name: "CLLVM", path: "Sources/CLLVM"),

        .target(name: "GraphIR"),
        .target(name: "GraphAutodiff", dependencies: ["GraphIR"]),
        // The reference kernels: the oracle, used by the interpreter and by constant folding.
        .target(name: "GraphKernels", dependencies: ["GraphIR"]),
        .target(name: "GraphPasses", dependencies: ["GraphIR", "GraphKernels"]),
        // Hand-vectorised kernels: always optimised (even in debug builds, which tests use), without
        // overflow checks in their index arithmetic (callers pass validated shapes; the checks
        // cost registers in the FMA loops). FastKernels is built for AVX2/FMA, which every machine
        // here has; FastKernelsAVX512 is the same sources (symbolic links) with 16-float vectors,
        // built for AVX-512 and chosen at run time where the CPU has it (VectorISA).
        // Thread placement for the kernels' pool (GNU extensions, not in Swift's Glibc module).
        .target(name: "CThreadAffinity"),
        .target(name: "CPNGReduce", linkerSettings: [.linkedLibrary("png16")]),
        .target(name: "FastKernelSupport", dependencies: ["CThreadAffinity"]),
        .target(name: "FastKernels", dependencies: ["FastKernelSupport"],
                swiftSettings: [.unsafeFlags(["-Ounchecked", "-Xcc", "-mavx2", "-Xcc", "-mfma"]), .swiftLanguageMode(.v5)]),
        .target(name: "FastKernelsAVX512", dependencies: ["FastKernelSupport"],
                swiftSettings: [.unsafeFlags(["-Ounchecked", "-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mavx512f", "-Xcc", "-mavx512dq",
                                              "-Xcc", "-mavx512bw", "-Xcc", "-mavx512vl"]), .swiftLanguageMode(.v5)]),
        // Elementwise kernels compiled at run time with LLVM 14's ORC JIT.
        .target(name: "GraphJIT", dependencies: ["GraphIR", "CLLVM"], swiftSettings: llvmInclude),
        .target(name: "GraphRuntime", dependencies: ["GraphIR", "GraphKernels", "GraphPasses", "FastKernelSupport", "FastKernels", "FastKernelsAVX512", "GraphJIT", "CBLAS"]),
        .target(name: "StegaStamp", dependencies: ["GraphIR", "GraphAutodiff", "GraphKernels", "GraphPasses", "GraphRuntime", "FastKernelSupport", "CPNG", "CPNGReduce", "CTurboJPEG", "CZlib"]),
        .executableTarget(
            name: "stegastamp",
            dependencies: [
                "GraphIR", "GraphAutodiff", "GraphKernels", "GraphPasses", "GraphRuntime", "StegaStamp", "CMPI", "FastKernelSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .target(name: "TestSupport", dependencies: ["GraphIR", "GraphAutodiff", "GraphRuntime"], path: "Tests/TestSupport"),
        .testTarget(name: "GraphIRTests", dependencies: ["GraphIR", "GraphPasses", "TestSupport"]),
        // Tests read the fixtures from Tests/Fixtures (copied from ../shared/fixtures).
        .testTarget(name: "GraphRuntimeTests", dependencies: ["GraphIR", "GraphAutodiff", "GraphRuntime", "FastKernelSupport", "TestSupport"]),
        .testTarget(name: "StegaStampTests", dependencies: ["GraphIR", "GraphAutodiff", "GraphRuntime", "StegaStamp", "TestSupport"]),
        .testTarget(
            name: "ToolchainTests", dependencies: ["CBLAS", "CPNG", "CTurboJPEG", "CLLVM"],
            swiftSettings: llvmInclude),
    ]
)
