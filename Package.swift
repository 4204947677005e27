// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "GhostSync",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "GhostSync", targets: ["GhostSync"]),
        .library(name: "GhostSyncRelay", targets: ["GhostSyncRelay"]),
        .executable(name: "ghost-sync", targets: ["GhostSyncCLI"]),
        .executable(name: "ghost-sync-example", targets: ["GhostSyncExample"]),
        .executable(name: "ghost-sync-client-example", targets: ["GhostSyncClientExample"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // Only what Glibc does not import cleanly: epoll, eventfd, CPU_SET macros, _GNU_SOURCE calls.
        .target(name: "CGhostSyncShims"),
        // libnuma, found through pkg-config; Debian package libnuma-dev (the Makefile installs it).
        .systemLibrary(name: "CNuma", pkgConfig: "numa", providers: [.apt(["libnuma-dev"])]),
        // The engine and the client. Beyond the toolchain only swift-crypto, for the SHA-1 of the
        // WebSocket handshake's accept key (RFC 6455 §4.2.2).
        .target(
            name: "GhostSync",
            dependencies: ["CGhostSyncShims", "CNuma", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Client/README.md", "Cluster/README.md", "Registry/README.md", "Wire/README.md", "Reactor/README.md", "Shards/README.md", "Rooms/README.md", "Server/README.md"]
        ),
        // The packaged relay's operations pieces: control protocol, Prometheus endpoint, logging,
        // service lifecycle. A library so embedders (and tests) can use them in-process.
        .target(
            name: "GhostSyncRelay",
            dependencies: [
                "GhostSync", "CGhostSyncShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The browser client and demo page the WebSocket port serves, compiled into the
            // binary (no files to install beside it, nothing read from disk at run time).
            resources: [
                .embedInCode("Web/index.html"),
                .embedInCode("Web/demo.js"),
                .embedInCode("Web/demo.css"),
                .embedInCode("Web/ghost-sync.js"),
                .embedInCode("Web/ghost-sync.d.ts"),
            ]
        ),
        // The load generator behind `ghost-sync bench`: raw epoll clients for GhostSync, Redis
        // pub/sub and NATS, delivery accounting and HDR latency histograms.
        .target(
            name: "GhostSyncBench",
            dependencies: [
                "GhostSync", "CGhostSyncShims",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "GhostSyncCLI",
            dependencies: [
                "GhostSync", "GhostSyncRelay", "GhostSyncBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "GhostSyncExample", dependencies: ["GhostSync"]),
        // The relay behind a synchronous main, for Benchmarks/count.sh (valgrind; see its main.swift).
        // Not under Benchmarks/: package-benchmark runs every executable there as a benchmark,
        // and this one serves until it is stopped (`make bench` hung on it).
        .executableTarget(
            name: "ghost-sync-count-relay",
            dependencies: ["GhostSync", "GhostSyncRelay", .product(name: "Logging", package: "swift-log")],
            path: "Sources/GhostSyncCountRelay"
        ),
        .executableTarget(name: "GhostSyncClientExample", dependencies: ["GhostSync"]),
        .testTarget(name: "GhostSyncTests", dependencies: ["GhostSync", "GhostSyncRelay", "GhostSyncBench", "CGhostSyncShims"]),
    ],
    swiftLanguageModes: [.v6]
)

// Micro-benchmarks (ordo-one/package-benchmark) only when asked for (`make bench` sets
// GHOSTSYNC_BENCHMARKS=1): ordinary builds and `make test` do not fetch or compile it.
if Context.environment["GHOSTSYNC_BENCHMARKS"] != nil {
    package.dependencies.append(.package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]))
    package.targets.append(.executableTarget(
        name: "GhostSyncBenchmarks",
        dependencies: ["GhostSync", "CGhostSyncShims", .product(name: "Benchmark", package: "benchmark")],
        path: "Benchmarks/GhostSyncBenchmarks",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    ))
}
