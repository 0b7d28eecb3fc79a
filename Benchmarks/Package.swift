// swift-tools-version: 6.1
import PackageDescription

/// The Gantry benchmark harness (issue 5), kept out of the root package so its dependencies
/// (ordo-one's Benchmark, AsyncHTTPClient for the driver) never reach the shipped binaries.
///
/// - `gantry-bench`: the scenario driver. It starts the root package's *release* binaries
///   (built by `scripts/benchmark`), measures, and writes docs/benchmarks.md.
/// - `gantry-fleet`: the load generator for the fleet scenario: thousands of simulated
///   agents speaking the real protocol (mutual TLS 1.3, Hello/Welcome, Ready, heartbeats).
/// - `GantryMicro`: micro benchmarks run by ordo-one's plugin (`swift package benchmark`).
///   The plugin only runs executable targets whose directory sits directly in a folder
///   named `Benchmarks`, which is this package's root, hence `GantryMicro/` at the top.
/// - `BenchKit`: what those share (statistics, /proc readers, child processes, the
///   deterministic build-log generator).
let package = Package(
    name: "gantry-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gantry", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // The history scenario fills the coordinator's SQLite file directly (same GRDB as the root).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The interposer trait only: the default "RuntimeInterposer" trait pulls in a
        // package (swift-runtime-interposer) that the local mirror does not carry.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(name: "BenchKit"),
        .executableTarget(
            name: "gantry-bench",
            dependencies: [
                "BenchKit",
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GantryCoordinator", package: "gantry"),
                .product(name: "GRDB", package: "GRDB.swift"),
                // The cluster scenario's PostgreSQL server: the tests' one, started with durability on.
                .product(name: "GantryTestPostgres", package: "gantry"),
            ]
        ),
        .executableTarget(
            name: "gantry-fleet",
            dependencies: [
                "BenchKit",
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "GantryMicro",
            dependencies: [
                "BenchKit",
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "GantryCoordinator", package: "gantry"),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "GantryMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
