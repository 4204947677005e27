// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "GhostSync",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "GhostSync", targets: ["GhostSync"]),
        .executable(name: "ghost-sync-example", targets: ["GhostSyncExample"]),
        .executable(name: "ghost-sync-client-example", targets: ["GhostSyncClientExample"]),
    ],
    targets: [
        // Only what Glibc does not import cleanly: epoll, eventfd, CPU_SET macros, _GNU_SOURCE calls.
        .target(name: "CGhostSyncShims"),
        // libnuma, found through pkg-config; Debian package libnuma-dev (the Makefile installs it).
        .systemLibrary(name: "CNuma", pkgConfig: "numa", providers: [.apt(["libnuma-dev"])]),
        .target(
            name: "GhostSync",
            dependencies: ["CGhostSyncShims", "CNuma"],
            exclude: ["Client/README.md", "Wire/README.md", "Reactor/README.md", "Shards/README.md", "Rooms/README.md", "Server/README.md"]
        ),
        .executableTarget(name: "GhostSyncExample", dependencies: ["GhostSync"]),
        .executableTarget(name: "GhostSyncClientExample", dependencies: ["GhostSync"]),
        .testTarget(name: "GhostSyncTests", dependencies: ["GhostSync", "CGhostSyncShims"]),
    ],
    swiftLanguageModes: [.v6]
)
