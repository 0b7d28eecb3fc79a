/// Deterministic build-log-like text: compiler invocations, progress lines, paths, warnings
/// with source excerpts, timestamps, test results and counters, mixed the way a C/C++ and
/// Swift CI build prints them.
///
/// Why generated rather than a captured log: the log-streaming figures (MB/s, compression
/// ratio) depend on the text, so the text must be the same on every machine and every run,
/// and the repository should not carry hundreds of megabytes. A seeded SplitMix64 picks
/// from fixed vocabularies; the same seed always yields the same bytes.
public struct BuildLogGenerator {
    private var state: UInt64
    private var clock: UInt64 = 1_795_000_000_000  // ms since the epoch, moves forward
    private var progress = 0
    private var lineNumber = 0

    public init(seed: UInt64 = 0x6761_6E74_7279) {
        state = seed
    }

    /// Appends whole lines to `output` until it holds at least `bytes` more bytes.
    public mutating func append(bytes: Int, to output: inout [UInt8]) {
        let target = output.count + bytes
        output.reserveCapacity(target + 512)
        while output.count < target { appendLine(to: &output) }
    }

    /// Exactly `count` bytes of log (the last line cut short), e.g. one 256 KiB chunk.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var output: [UInt8] = []
        append(bytes: count, to: &output)
        return Array(output.prefix(count))
    }

    // MARK: - Lines

    private mutating func appendLine(to out: inout [UInt8]) {
        lineNumber += 1
        clock += next(40)
        switch next(100) {
        case 0..<22: progressLine(&out)
        case 22..<34: compilerInvocation(&out)
        case 34..<44: warning(&out)
        case 44..<60: swiftCompile(&out)
        case 60..<74: timestamped(&out)
        case 74..<86: testCase(&out)
        case 86..<92: linkLine(&out)
        case 92..<96: download(&out)
        default: counters(&out)
        }
        out.append(10)
    }

    private mutating func progressLine(_ out: inout [UInt8]) {
        progress = min(100, progress + Int(next(2)))
        if progress == 100, next(50) == 0 { progress = 0 }
        out += "[".utf8
        padded(progress, width: 3, &out)
        out += "%] Building CXX object ".utf8
        sourceDirectory(&out)
        out += "/CMakeFiles/".utf8
        out += pick(Self.libraries).utf8
        out += ".dir/".utf8
        fileStem(&out)
        out += ".cpp.o".utf8
    }

    /// One compile command as CMake/Ninja prints it: the flags come from the target (so
    /// they repeat for every file of a directory), and `-MT`, `-MF`, `-o` and `-c` all name
    /// the same source file, as they do in real builds.
    private mutating func compilerInvocation(_ out: inout [UInt8]) {
        let index = Int(next(UInt64(Self.directories.count)))
        let directory = Self.directories[index]
        let library = Self.libraries[index % Self.libraries.count]
        var stem: [UInt8] = []
        fileStem(&stem)
        func object(_ out: inout [UInt8]) {
            out += directory.utf8
            out += "/CMakeFiles/".utf8
            out += library.utf8
            out += ".dir/".utf8
            out += stem
            out += ".cpp.o".utf8
        }
        out += Self.compilers[index % Self.compilers.count].utf8
        out += " -DNDEBUG -D_GNU_SOURCE -DGANTRY_VERSION=\\\"1.4.2\\\" -I/home/ci/work/src/include -I/home/ci/work/src/".utf8
        out += directory.utf8
        out += " -I/home/ci/work/build/".utf8
        out += directory.utf8
        out += " -isystem /usr/include/".utf8
        out += Self.systemIncludes[index % Self.systemIncludes.count].utf8
        out += " ".utf8
        out += Self.optimizations[index % Self.optimizations.count].utf8
        out += " -g -std=c++17 -fPIC -Wall -Wextra -MD -MT ".utf8
        object(&out)
        out += " -MF ".utf8
        object(&out)
        out += ".d -o ".utf8
        object(&out)
        out += " -c /home/ci/work/src/".utf8
        out += directory.utf8
        out += "/".utf8
        out += stem
        out += ".cpp".utf8
    }

    private mutating func warning(_ out: inout [UInt8]) {
        let identifier = pick(Self.identifiers)
        let (kind, flag) = pick(Self.warnings)
        out += "/home/ci/work/src/".utf8
        out += pick(Self.directories).utf8
        out += "/".utf8
        fileStem(&out)
        out += ".cpp:".utf8
        number(1 + next(900), &out)
        out += ":".utf8
        number(1 + next(80), &out)
        out += ": warning: ".utf8
        out += kind.utf8
        out += " '".utf8
        out += identifier.utf8
        out += "' [".utf8
        out += flag.utf8
        out += "]\n    ".utf8
        out += pick(Self.codeLines).utf8
        out += identifier.utf8
        out += ";\n        ^~~~~~".utf8
    }

    private mutating func swiftCompile(_ out: inout [UInt8]) {
        out += "[".utf8
        number(1 + next(900), &out)
        out += "/".utf8
        number(900 + next(20), &out)
        out += "] Compiling ".utf8
        out += pick(Self.modules).utf8
        out += " ".utf8
        out += pick(Self.swiftFiles).utf8
        out += ".swift".utf8
    }

    private mutating func timestamped(_ out: inout [UInt8]) {
        timestamp(&out)
        out += " [".utf8
        out += pick(Self.levels).utf8
        out += "] ".utf8
        out += pick(Self.components).utf8
        out += ": ".utf8
        out += pick(Self.events).utf8
        out += " ".utf8
        number(next(100_000), &out)
        out += " items in ".utf8
        number(next(5_000), &out)
        out += ".".utf8
        padded(Int(next(1000)), width: 3, &out)
        out += " ms (worker ".utf8
        number(next(16), &out)
        out += ", request id ".utf8
        hex(4, &out)
        out += ")".utf8
    }

    private mutating func testCase(_ out: inout [UInt8]) {
        let suite = pick(Self.modules)
        out += "Test Case '-[".utf8
        out += suite.utf8
        out += "Tests.".utf8
        out += suite.utf8
        out += "Tests test".utf8
        out += pick(Self.testNames).utf8
        out += pick(Self.testSuffixes).utf8
        out += "]' ".utf8
        out += (next(40) == 0 ? "failed" : "passed").utf8
        out += " (0.".utf8
        padded(Int(next(1000)), width: 3, &out)
        out += " seconds).".utf8
    }

    private mutating func linkLine(_ out: inout [UInt8]) {
        out += "[".utf8
        padded(progress, width: 3, &out)
        out += "%] Linking CXX ".utf8
        out += (next(3) == 0 ? "executable bin/" : "static library lib/").utf8
        out += pick(Self.libraries).utf8
        out += (next(3) == 0 ? "" : ".a").utf8
        out += "\n[".utf8
        padded(progress, width: 3, &out)
        out += "%] Built target ".utf8
        out += pick(Self.libraries).utf8
    }

    private mutating func download(_ out: inout [UInt8]) {
        out += "Fetching https://packages.example.com/".utf8
        out += pick(Self.packages).utf8
        out += "/-/".utf8
        out += pick(Self.packages).utf8
        out += "-".utf8
        number(next(10), &out)
        out += ".".utf8
        number(next(40), &out)
        out += ".".utf8
        number(next(10), &out)
        out += ".tgz sha256:".utf8
        hex(8, &out)
        out += " (".utf8
        number(1 + next(9000), &out)
        out += " kB)".utf8
    }

    private mutating func counters(_ out: inout [UInt8]) {
        out += "ccache: hits=".utf8
        number(UInt64(lineNumber) / 3, &out)
        out += " misses=".utf8
        number(UInt64(lineNumber) / 11, &out)
        out += " cache size ".utf8
        number(next(5000), &out)
        out += " MB, files ".utf8
        number(UInt64(lineNumber), &out)
        out += ", elapsed ".utf8
        number(clock / 1000 % 100_000, &out)
        out += " s".utf8
    }

    // MARK: - Pieces

    private mutating func sourceDirectory(_ out: inout [UInt8]) {
        out += "src/".utf8
        out += pick(Self.directories).utf8
    }

    private mutating func fileStem(_ out: inout [UInt8]) {
        out += pick(Self.stems).utf8
        if next(2) == 0 {
            out += "_".utf8
            out += pick(Self.stems).utf8
        }
    }

    private mutating func timestamp(_ out: inout [UInt8]) {
        let milliseconds = clock % 1000
        var seconds = clock / 1000
        let second = seconds % 60
        seconds /= 60
        let minute = seconds % 60
        let hour = (seconds / 60) % 24
        out += "2026-11-23T".utf8
        padded(Int(hour), width: 2, &out)
        out += ":".utf8
        padded(Int(minute), width: 2, &out)
        out += ":".utf8
        padded(Int(second), width: 2, &out)
        out += ".".utf8
        padded(Int(milliseconds), width: 3, &out)
        out += "Z".utf8
    }

    private func number(_ value: UInt64, _ out: inout [UInt8]) {
        if value >= 10 { number(value / 10, &out) }
        out.append(UInt8(48 + value % 10))
    }

    private func padded(_ value: Int, width: Int, _ out: inout [UInt8]) {
        var digits: [UInt8] = []
        var rest = value
        repeat {
            digits.append(UInt8(48 + rest % 10))
            rest /= 10
        } while rest > 0
        for _ in digits.count..<max(width, digits.count) { out.append(48) }
        out += digits.reversed()
    }

    private mutating func hex(_ bytes: Int, _ out: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        for _ in 0..<bytes {
            let value = next(256)
            out.append(digits[Int(value >> 4)])
            out.append(digits[Int(value & 15)])
        }
    }

    private mutating func pick<T>(_ values: [T]) -> T {
        values[Int(next(UInt64(values.count)))]
    }

    /// SplitMix64, reduced to `0..<bound`.
    private mutating func next(_ bound: UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z % bound
    }

    // MARK: - Vocabularies

    static let directories = [
        "core", "core/io", "net", "net/http", "net/tls", "storage", "storage/sqlite", "scheduler", "agent",
        "agent/runner", "util", "util/strings", "parser", "parser/yaml", "codegen", "runtime", "tests/unit",
        "tests/integration", "third_party/zlib", "third_party/abseil/strings", "tools/cli", "metrics",
    ]
    static let libraries = [
        "gantry_core", "gantry_net", "gantry_storage", "gantry_sched", "gantry_agent", "gantry_util", "yaml_parser",
        "codegen", "zlibstatic", "absl_strings", "absl_hash", "unit_tests", "integration_tests", "gantry_cli",
    ]
    static let stems = [
        "buffer", "channel", "connection", "scheduler", "lease", "heartbeat", "frame", "decoder", "encoder", "store",
        "journal", "queue", "worker", "pool", "config", "options", "string_util", "hash", "inflate", "deflate",
        "crc32", "trees", "adler32", "parser", "lexer", "token", "node", "emitter", "metrics", "histogram",
        "timer", "clock", "signal", "process", "spawn", "cgroup", "path", "file", "directory", "socket",
    ]
    static let compilers = [
        "/usr/bin/clang++-14", "/usr/bin/c++", "/usr/lib/ccache/clang++", "/usr/bin/g++-12",
    ]
    static let systemIncludes = ["openssl", "zlib", "sqlite3", "x86_64-linux-gnu/c++/12", "c++/12"]
    static let optimizations = ["-O2", "-O3", "-Os", "-O2 -flto=thin", "-O0"]
    static let identifiers = [
        "result", "status", "buffer_size", "offset", "count", "index", "tmp", "ctx", "handle", "retries",
        "deadline", "attempt", "length", "flags", "fd", "rc", "err", "node", "parent", "unused_value",
    ]
    static let warnings = [
        ("unused variable", "-Wunused-variable"), ("unused parameter", "-Wunused-parameter"),
        ("comparison of integers of different signs:", "-Wsign-compare"),
        ("implicit conversion loses integer precision:", "-Wshorten-64-to-32"),
        ("variable set but not used", "-Wunused-but-set-variable"),
        ("'register' storage class specifier is deprecated", "-Wdeprecated-register"),
    ]
    static let codeLines = [
        "int ", "size_t ", "auto ", "const std::string ", "uint64_t ", "bool ", "std::vector<uint8_t> ",
        "ssize_t ", "struct stat ", "char *",
    ]
    static let modules = [
        "GantryProtocol", "GantryCoordinator", "GantryAgent", "NIOCore", "NIOPosix", "NIOSSL", "Logging", "Crypto",
        "X509", "SwiftProtobuf", "GRDB", "Hummingbird", "Yams", "ArgumentParser",
    ]
    static let swiftFiles = [
        "AgentRuntime", "CoordinatorCore", "Scheduler", "LogStreamer", "LogSpool", "FrameDecoder", "EnvelopeCodec",
        "ChannelPipeline", "ByteBuffer", "EventLoop", "SocketChannel", "Certificate", "Database", "Router",
        "Parser", "Emitter", "Command", "Option", "Handler", "Metadata",
    ]
    static let levels = ["info", "info", "info", "debug", "notice", "warning"]
    static let components = [
        "scheduler", "store", "http", "agent-listener", "log-store", "cache", "resolver", "fetcher", "indexer",
        "uploader",
    ]
    static let events = [
        "processed", "flushed", "indexed", "uploaded", "resolved", "compacted", "verified", "scanned", "rebuilt",
    ]
    static let testNames = [
        "Dispatch", "Lease", "Heartbeat", "Reconnect", "Cancel", "Timeout", "Drain", "LogGap", "Resume",
        "Enrollment", "FrameTooLarge", "Malformed", "Retry", "Matrix", "DependsOn", "Secrets",
    ]
    static let testSuffixes = [
        "", "Succeeds", "Fails", "WithTwoAgents", "AfterRestart", "IsIdempotent", "RefusesStaleAttempt",
        "KeepsTheLog",
    ]
    static let packages = [
        "left-pad", "lodash", "react", "typescript", "esbuild", "zod", "express", "chalk", "yaml", "semver",
    ]
}
