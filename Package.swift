// swift-tools-version: 6.1
import PackageDescription

/// Gantry: a coordinator that leases CI jobs over mutual TLS to ephemeral agents.
///
/// Dependencies point one way: executables → Coordinator / Agent → Protocol.
/// The agent links neither Hummingbird nor GRDB, so build VMs get a small binary.
let package = Package(
    name: "gantry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gantry-coordinator", targets: ["gantry-coordinator"]),
        .executable(name: "gantry-agent", targets: ["gantry-agent"]),
        .executable(name: "gantry", targets: ["gantry"]),
        .library(name: "GantryProtocol", targets: ["GantryProtocol"]),
        .library(name: "GantryPipeline", targets: ["GantryPipeline"]),
        .library(name: "GantryCoordinator", targets: ["GantryCoordinator"]),
        .library(name: "GantryAgent", targets: ["GantryAgent"]),
        // The tests' private PostgreSQL server, also used by the benchmark harness (Benchmarks/)
        // to start one with durability on.
        .library(name: "GantryTestPostgres", targets: ["GantryTestPostgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // No default traits: `BinaryDelimitedStreams` imports full Foundation (Input/OutputStream),
        // which would link ICU into the agent; nothing here uses it or `FieldMaskUtilities`.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .target(
            name: "GantryProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"),
                // `ArtifactName` is `TransferPath`'s rule with its own length.
                "GantryTransferRules",
            ],
            path: "Sources/Protocol",
            exclude: ["gantry.proto"]
        ),
        // The pipeline file format: parsing, validation and limits. Its own target so the
        // fuzzer and its tests build it without GRDB, Hummingbird or NIO.
        .target(
            name: "GantryPipeline",
            dependencies: ["GantryTransferRules", .product(name: "Yams", package: "Yams")],
            path: "Sources/Pipeline"
        ),
        // The syntax of artifact globs, relative paths and cache key templates: checked by the
        // parser at submission and applied by the agent, so both read them the same way. No
        // dependencies at all, so the agent gets it without Yams and the parser without NIO.
        .target(
            name: "GantryTransferRules",
            path: "Sources/TransferRules"
        ),
        .target(
            name: "GantryCoordinator",
            dependencies: [
                "GantryProtocol",
                "GantryPipeline",
                // The globs of `download:` rules, to tell a deployment from another download.
                "GantryTransferRules",
                "GantryServices",
                .product(name: "NIOPosix", package: "swift-nio"),
                // The listener's handshake deadline watches NIOTLS's handshake event.
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                // `serve --http-tls`: the API over TLS.
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                // `git ls-remote` for scheduled builds (`GitRemote`).
                .product(name: "Subprocess", package: "swift-subprocess"),
                // Outgoing notification webhooks (`Notifications/NotificationSender`).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Sources/Coordinator"
        ),
        .target(name: "CGantryShims", path: "Sources/CGantryShims"),
        // Running as services: the ServiceGroup that drains on the first SIGTERM/SIGINT and
        // cancels on the second, shared by the agent, the scaler and the coordinator.
        .target(
            name: "GantryServices",
            dependencies: [
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Services"
        ),
        .target(
            name: "GantryAgent",
            dependencies: [
                "GantryProtocol",
                "GantryTransferRules",
                "CGantryShims",
                .product(name: "NIOPosix", package: "swift-nio"),
                // Artifacts and caches: the agent's own small HTTP/1.1 client (`Transfer/`).
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // sha256 of artifacts, cache files and the git mirrors' names.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Agent"
        ),
        // The web dashboard: pages rendered with Mustache from templates and assets
        // embedded in the binary (no files to install, no Node toolchain). Its own target
        // so the coordinator's core and its tests build without the templates.
        .target(
            name: "GantryWeb",
            dependencies: [
                "GantryCoordinator",
                "GantryProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            path: "Sources/Web",
            resources: [.embedInCode("Resources")]
        ),
        // The PostgreSQL back end of the coordinator's stores, for several coordinators on
        // one database. Its own target so the core, the agent and most tests build without
        // postgres-nio; it reuses the record types' GRDB row mapping, not GRDB's SQLite.
        .target(
            name: "GantryPostgresStore",
            dependencies: [
                "GantryCoordinator",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/PostgresStore"
        ),
        .executableTarget(
            name: "gantry-coordinator",
            dependencies: [
                "GantryCoordinator",
                "GantryPostgresStore",
                "GantryWeb",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/gantry-coordinator"
        ),
        .executableTarget(
            name: "gantry-agent",
            dependencies: [
                "GantryAgent",
                "GantryServices",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/gantry-agent",
            // The toolchain links static-stdlib executables with `-export-dynamic`, which puts
            // every symbol of every Swift module into the dynamic symbol table: 4.1 MiB of the
            // stripped agent, and roots that `--gc-sections` cannot remove. Nothing looks the
            // agent's own symbols up at run time (the runtime's one `dlsym` is for a libdispatch
            // symbol that `--exclude-libs ALL` already keeps out of the table).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(platforms: [.linux]))]
        ),
        // The CLI's pure parts: the status block, log resume bookkeeping, times as people
        // read them, exit codes. No dependencies, so its tests build in seconds.
        .target(name: "GantryCLIKit", path: "Sources/CLIKit"),
        .executableTarget(
            name: "gantry",
            dependencies: [
                "GantryProtocol",
                "GantryCLIKit",
                // The bootstrap pipeline's YAML (`PipelineBootstrap`), shared with the coordinator.
                "GantryPipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                // `--ca-file` trust roots and `gantry login`'s pinned handshake.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/gantry"
        ),
        .testTarget(
            name: "GantryProtocolTests",
            dependencies: ["GantryProtocol"],
            path: "Tests/ProtocolTests"
        ),
        .testTarget(
            name: "GantryPipelineTests",
            dependencies: ["GantryPipeline", "GantryTransferRules"],
            path: "Tests/PipelineTests"
        ),
        .testTarget(
            name: "GantryCoordinatorTests",
            dependencies: ["GantryCoordinator", "GantryPostgresStore", "GantryWeb", "GantryProtocol", "GantryTestPostgres"],
            path: "Tests/CoordinatorTests"
        ),
        // A private PostgreSQL server for the tests (initdb, pg_ctl, a Unix socket), shared
        // by the store tests and the integration tests. Links nothing of Gantry.
        .target(name: "GantryTestPostgres", path: "Tests/PostgresServer"),
        .testTarget(
            name: "GantryAgentTests",
            dependencies: [
                "GantryAgent", "GantryServices",
                // The test double of the coordinator's HTTP API that transfers run against.
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/AgentTests"
        ),
        .testTarget(
            name: "GantryCLIKitTests",
            dependencies: ["GantryCLIKit"],
            path: "Tests/CLIKitTests"
        ),
        .testTarget(
            name: "GantryIntegrationTests",
            dependencies: [
                "GantryProtocol",
                "GantryTestPostgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // The notification receiver the webhook tests listen with.
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/IntegrationTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
