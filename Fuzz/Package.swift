// swift-tools-version: 6.1
import PackageDescription

/// Gantry's libFuzzer targets (issue 10), kept out of the root package so that building
/// them never touches the shipped products or the main `.build` directory.
///
/// Each executable target exports `LLVMFuzzerTestOneInput` and feeds the bytes through the
/// real code path (the channel pipeline, the envelope decoder and the coordinator's
/// message validation, log-chunk inflate, the pipeline parser). `scripts/fuzz` builds them
/// with `-sanitize=fuzzer,address -parse-as-library` applied to every Swift module, so the
/// coverage libFuzzer follows includes GantryProtocol and its dependencies, not only the
/// harness. Built without those flags the targets do not link (no `main`): use the script.
///
/// `FuzzSupport` is every target's `@main` (libFuzzer's driver, and the `--write-seeds=DIR`
/// mode that writes the committed seed corpus); `ProtocolSamples` is one envelope of every
/// message kind, which the frame and envelope targets encode with the real encoder as seeds.
///
/// Not GantryCoordinator: it pulls GRDB and Hummingbird, far too slow to build
/// instrumented. Where the coordinator does something to a message (inflating a log
/// chunk) the harness calls the same GantryProtocol function with the same arguments.
let package = Package(
    name: "gantry-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gantry", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"]),
        .target(
            name: "ProtocolSamples",
            dependencies: [
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "FrameDecoderFuzz",
            dependencies: [
                "FuzzSupport",
                "ProtocolSamples",
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "EnvelopeFuzz",
            dependencies: [
                "FuzzSupport",
                "ProtocolSamples",
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "LogInflateFuzz",
            dependencies: [
                "FuzzSupport",
                "ProtocolSamples",
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "EnrollCSRFuzz",
            dependencies: [
                "FuzzSupport",
                .product(name: "GantryProtocol", package: "gantry"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .executableTarget(
            name: "PipelineParserFuzz",
            dependencies: ["FuzzSupport", .product(name: "GantryPipeline", package: "gantry")]
        ),
        .executableTarget(
            name: "DurationFuzz",
            dependencies: ["FuzzSupport", .product(name: "GantryPipeline", package: "gantry")]
        ),
        .executableTarget(
            name: "ConditionFuzz",
            dependencies: ["FuzzSupport", .product(name: "GantryPipeline", package: "gantry")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
