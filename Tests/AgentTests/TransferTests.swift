import Foundation
@testable import GantryAgent
import GantryProtocol
import GantryTransferRules
import SystemPackage
import Testing

/// The agent's transfers against `FakeTransferAPI`, a test double of the coordinator's
/// artifact routes: resumes after dropped connections in both directions, a 409's offset,
/// digest checks, and the paths the agent refuses to write through.
@Suite("Agent transfers", .timeLimit(.minutes(2)))
final class TransferTests {
    let root = NSTemporaryDirectory() + "gantry-transfer-\(UUID().uuidString)"
    let token = "gjt_job-x.1." + String(repeating: "cd", count: 32)

    init() throws {
        try FileManager.default.createDirectory(atPath: root + "/work", withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    func client(_ api: FakeTransferAPI, chunk: UInt64 = 8 << 20) throws -> TransferHTTPClient {
        var configuration = TransferHTTPClient.Configuration()
        configuration.initialBackoff = .milliseconds(10)
        configuration.maximumBackoff = .milliseconds(50)
        configuration.idleTimeout = .seconds(10)
        configuration.uploadChunkBytes = chunk
        configuration.fileBufferBytes = 16 << 10
        return try TransferHTTPClient(
            endpoint: try TransferEndpoint(apiURL: api.url), token: token, caFile: nil, configuration: configuration)
    }

    func write(_ bytes: [UInt8], to path: String) throws {
        let full = root + "/work/" + path
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
    }

    func transfers(_ api: FakeTransferAPI) throws -> ArtifactTransfers {
        ArtifactTransfers(
            client: try client(api), files: WorkDirectoryFiles(root: root + "/work"), jobID: "j1", pipelineID: "p",
            log: TransferLog())
    }

    // MARK: - Uploads

    @Test func anUploadResumesAtTheServersOffsetAfterTheConnectionDropsMidBody() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        let bytes = Self.randomBytes(300_000)
        try write(bytes, to: "dist/app.bin")
        api.state.withLock { $0.dropPatchAfter = 100_000 }
        let transfers = try transfers(api)
        try await withDeadline(.seconds(60), "upload") {
            try await transfers.upload([try ArtifactGlob("dist/*")])
        }
        let state = api.state.withLock { $0 }
        let session = try #require(state.sessions.values.first)
        #expect(session.name == "dist/app.bin" && session.complete)
        #expect(session.bytes == bytes)
        #expect(state.unauthorized == 0)
        let patches = state.requests.filter { $0.hasPrefix("PATCH") }
        #expect(patches.count == 2, "\(state.requests)")
        #expect(patches.last?.hasSuffix("offset=100000") == true, "\(state.requests)")
        #expect(state.requests.contains { $0.hasPrefix("GET /v1/artifact-uploads/") }, "it asked the session after the drop")
    }

    @Test func aWrongOffset409IsFollowedByAResumeFromTheSessionsOffset() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        let bytes = Self.randomBytes(200_000)
        try write(bytes, to: "out.bin")
        api.state.withLock { $0.prefillNextSession = Array(bytes.prefix(50_000)) }
        let transfers = try transfers(api)
        try await withDeadline(.seconds(60), "upload") {
            try await transfers.upload([try ArtifactGlob("out.bin")])
        }
        let state = api.state.withLock { $0 }
        let session = try #require(state.sessions.values.first)
        #expect(session.complete && session.bytes == bytes)
        let patches = state.requests.filter { $0.hasPrefix("PATCH") }
        #expect(patches.map { $0.components(separatedBy: " ").last ?? "" } == ["offset=0", "offset=50000"], "\(state.requests)")
    }

    @Test func aSessionHeldByALeftoverRequestIsRetriedAfterAPause() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        let bytes = Self.randomBytes(40_000)
        try write(bytes, to: "held.bin")
        api.state.withLock {
            $0.busyPatches = 2
            $0.busyCompletions = 1
        }
        let transfers = try transfers(api)
        try await withDeadline(.seconds(60), "upload") {
            try await transfers.upload([try ArtifactGlob("held.bin")])
        }
        let state = api.state.withLock { $0 }
        #expect(state.sessions.values.first?.complete == true && state.sessions.values.first?.bytes == bytes)
        #expect(state.requests.filter { $0.hasPrefix("PATCH") }.count == 3, "\(state.requests)")
        #expect(state.requests.filter { $0.hasSuffix("/complete ") }.count == 2, "\(state.requests)")
    }

    @Test func uploadsGoInChunksAndExpandGlobsOverRegularFilesOnly() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        try write(Self.randomBytes(70_000), to: "build/a/report.xml")
        try write(Array("x".utf8), to: "build/b.xml")
        try write(Array("y".utf8), to: "build/c.txt")
        let transfers = ArtifactTransfers(
            client: try client(api, chunk: 32_768), files: WorkDirectoryFiles(root: root + "/work"), jobID: "j1",
            pipelineID: "p", log: TransferLog())
        try await withDeadline(.seconds(60), "upload") {
            try await transfers.upload([try ArtifactGlob("build/**/*.xml")])
        }
        let state = api.state.withLock { $0 }
        #expect(Set(state.sessions.values.map(\.name)) == ["build/a/report.xml", "build/b.xml"])
        #expect(state.sessions.values.allSatisfy { $0.complete })
        // 70,000 bytes in chunks of 32 KiB: three PATCHes, one for the small file.
        #expect(state.requests.filter { $0.hasPrefix("PATCH") }.count == 4, "\(state.requests)")
    }

    // MARK: - Downloads

    @Test func aDownloadResumesWithRangeAfterTheConnectionDrops() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        let bytes = Self.randomBytes(250_000)
        api.addArtifact(name: "dist/app.tar.gz", step: "build", bytes: bytes)
        api.addArtifact(name: "dist/other.txt", step: "test", bytes: Array("no".utf8))
        api.state.withLock { $0.dropDownloadAfter = 90_000 }
        let transfers = try transfers(api)
        try await withDeadline(.seconds(60), "download") {
            try await transfers.download([.init(step: "build", glob: try ArtifactGlob("dist/*"))])
        }
        let written = try Data(contentsOf: URL(fileURLWithPath: root + "/work/dist/app.tar.gz"))
        #expect(Array(written) == bytes)
        #expect(!FileManager.default.fileExists(atPath: root + "/work/dist/other.txt"), "only the named step's artifacts")
        let ranged = api.state.withLock { $0.requests.filter { $0.contains("bytes=") } }
        #expect(ranged.count == 1, "\(api.state.withLock { $0.requests })")
        #expect(ranged.first?.hasSuffix("bytes=90000-") == true, "\(ranged)")
    }

    @Test func aDigestMismatchFailsTheJobWithDownloadFailed() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        api.addArtifact(name: "app.bin", step: "build", bytes: Self.randomBytes(10_000))
        api.state.withLock { $0.corrupt = true }
        let spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.pipelineID = "p"
            $0.stepKey = "deploy"
            $0.commands = ["echo should-not-run"]
            $0.jobToken = token
            $0.apiURL = api.url
            $0.downloads = [.with { $0.step = "build"; $0.path = "*.bin" }]
        })
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/runs", keepWorkDirs: false)
        let spool = try LogSpool(path: root + "/spool.log")
        defer { spool.remove() }
        let result = try await withDeadline(.seconds(60), "job") {
            await runner.run(spec, spool: spool, control: ProcessGroupControl(jobID: spec.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)) {}
        }
        let log = String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self)
        #expect(result.outcome == .failed && result.failure == "download_failed", "\(result)")
        #expect(log.contains("gantry: download failed: sha256 mismatch"), "\(log)")
        #expect(!log.contains("should-not-run") && !log.contains(token), "\(log)")
    }

    @Test func aJobUploadsItsArtifactsAfterItsCommandsAndFailsWhenTheUploadDoes() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        func spec(_ url: String) -> JobRunner.Spec {
            JobRunner.Spec(lease: .with {
                $0.jobID = "job-\(UUID().uuidString)"
                $0.attempt = 1
                $0.pipelineID = "p"
                $0.stepKey = "build"
                $0.commands = ["mkdir -p dist && echo built > dist/app.txt"]
                $0.jobToken = token
                $0.apiURL = url
                $0.artifactPaths = ["dist/*.txt"]
            })
        }
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/runs", keepWorkDirs: false)
        let spool = try LogSpool(path: root + "/spool-ok.log")
        defer { spool.remove() }
        let good = spec(api.url)
        let result = try await withDeadline(.seconds(60), "job") {
            await runner.run(good, spool: spool, control: ProcessGroupControl(jobID: good.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)) {}
        }
        #expect(result.outcome == .succeeded && result.failure.isEmpty, "\(result)")
        #expect(
            api.state.withLock { $0.sessions.values.map(\.bytes) } == [Array("built\n".utf8)],
            "\(api.state.withLock { $0.requests })")

        // Nothing listens on the port of a closed server: the upload fails, and so does the job.
        let closed = try await FakeTransferAPI(token: token)
        let deadURL = closed.url
        await closed.close()
        let spool2 = try LogSpool(path: root + "/spool-dead.log")
        defer { spool2.remove() }
        let bad = spec(deadURL)
        let failed = try await withDeadline(.seconds(60), "job") {
            await runner.run(bad, spool: spool2, control: ProcessGroupControl(jobID: bad.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)) {}
        }
        let log = String(decoding: try spool2.read(from: 0, count: spool2.length), as: UTF8.self)
        #expect(failed.outcome == .failed && failed.failure == "artifact_upload_failed", "\(failed)")
        #expect(log.contains("gantry: artifact upload failed"), "\(log)")
    }

    /// A step whose `download:` asks `silent`, which accepts and never answers.
    func downloadSpec(from silent: SilentServer, timeoutSeconds: UInt32 = 0) -> JobRunner.Spec {
        JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.pipelineID = "p"
            $0.stepKey = "deploy"
            $0.commands = ["true"]
            $0.timeoutSeconds = timeoutSeconds
            $0.jobToken = token
            $0.apiURL = "http://127.0.0.1:\(silent.port)"
            $0.downloads = [.with { $0.step = "build"; $0.path = "*" }]
        })
    }

    @Test func aCancelStopsATransferInProgress() async throws {
        // A server that accepts and never answers: only the stop can end the listing
        // (the client's idle timeout is a minute).
        let silent = try SilentServer()
        defer { silent.close() }
        let spec = downloadSpec(from: silent)
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/runs", keepWorkDirs: false)
        let spool = try LogSpool(path: root + "/spool-cancel.log")
        defer { spool.remove() }
        let control = ProcessGroupControl(jobID: spec.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)
        let started = ContinuousClock.now
        Task {
            try? await Task.sleep(for: .milliseconds(300))
            control.stop(.cancelled("cancelled by a test"))
        }
        let result = try await withDeadline(.seconds(55), "job") {
            await runner.run(spec, spool: spool, control: control) {}
        }
        #expect(result.outcome == .cancelled, "\(result)")
        // The silent server never answers: only the cancel ends the download before the
        // client's 60 s idle timeout. (Seconds, not milliseconds: when the whole suite
        // starts at once, the stop watcher's 100 ms polls can be late by several seconds.)
        #expect(ContinuousClock.now - started < .seconds(45))
    }

    @Test func theStepsTimeoutStopsATransferInProgress() async throws {
        let silent = try SilentServer()
        defer { silent.close() }
        let spec = downloadSpec(from: silent, timeoutSeconds: 1)
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/runs", keepWorkDirs: false)
        let spool = try LogSpool(path: root + "/spool-timeout.log")
        defer { spool.remove() }
        let started = ContinuousClock.now
        let result = try await withDeadline(.seconds(55), "job") {
            await runner.run(
                spec, spool: spool, control: ProcessGroupControl(jobID: spec.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)
            ) {}
        }
        #expect(result.outcome == .timedOut && result.failure.isEmpty, "\(result)")
        // Before the client's 60 s idle timeout (see the cancel test for why not tighter).
        #expect(ContinuousClock.now - started < .seconds(45))
    }

    // MARK: - Caches

    @Test func aCacheIsSavedAfterAMissAndRestoredByTheNextJob() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        func spec(_ commands: [String]) -> JobRunner.Spec {
            JobRunner.Spec(lease: .with {
                $0.jobID = "job-\(UUID().uuidString)"
                $0.attempt = 1
                $0.pipelineID = "p"
                $0.stepKey = "build"
                // The checkout is not this helper's: the lock file is made by a command
                // in the first job, so the first key renders without it (a note, a miss).
                $0.commands = commands
                $0.jobToken = token
                $0.apiURL = api.url
                $0.cache = .with {
                    $0.key = "deps-v1"
                    $0.paths = [".build"]
                    $0.restoreKeys = ["deps-"]
                }
            })
        }
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/runs", keepWorkDirs: false)
        let first = spec(["mkdir -p .build/sub && echo cached > .build/sub/file"])
        let spool = try LogSpool(path: root + "/spool-cache-1.log")
        defer { spool.remove() }
        let result = try await withDeadline(.seconds(60), "job") {
            await runner.run(first, spool: spool, control: ProcessGroupControl(jobID: first.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)) {}
        }
        let log = String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self)
        #expect(result.outcome == .succeeded, "\(result) \(log)")
        #expect(log.contains("gantry: cache miss for deps-v1") && log.contains("gantry: cache saved as deps-v1"), "\(log)")
        #expect(api.state.withLock { $0.caches["deps-v1"] } != nil)

        let second = spec(["cat .build/sub/file"])
        let spool2 = try LogSpool(path: root + "/spool-cache-2.log")
        defer { spool2.remove() }
        let restored = try await withDeadline(.seconds(60), "job") {
            await runner.run(second, spool: spool2, control: ProcessGroupControl(jobID: second.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)) {}
        }
        let log2 = String(decoding: try spool2.read(from: 0, count: spool2.length), as: UTF8.self)
        #expect(restored.outcome == .succeeded, "\(restored) \(log2)")
        #expect(log2.contains("gantry: cache restored from deps-v1") && log2.contains("cached\n"), "\(log2)")
        #expect(!log2.contains("cache saved"), "an exact hit is not saved again: \(log2)")
    }

    @Test func cacheProblemsNeverFailTheJob() async throws {
        let spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.pipelineID = "p"
            $0.stepKey = "build"
            $0.commands = ["echo ran"]
            $0.jobToken = token
            $0.apiURL = "http://127.0.0.1:1"
            $0.cache = .with {
                $0.key = "k-{{ checksum \"missing.lock\" }}"
                $0.paths = [".build"]
            }
        })
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/runs", keepWorkDirs: false)
        let spool = try LogSpool(path: root + "/spool-cache-bad.log")
        defer { spool.remove() }
        let result = try await withDeadline(.seconds(60), "job") {
            await runner.run(spec, spool: spool, control: ProcessGroupControl(jobID: spec.jobID, attempt: 1, grace: .seconds(1), useCgroup: false)) {}
        }
        let log = String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self)
        #expect(result.outcome == .succeeded && result.failure.isEmpty, "\(result)")
        #expect(log.contains("gantry: cache not restored: ") && log.contains("ran\n"), "\(log)")
    }

    @Test func archiveMembersThatLeaveTheWorkDirAreRefused() throws {
        func check(_ lines: [String], paths: [String] = [".build"]) throws -> [String] {
            var check = CacheArchiveCheck(paths: paths, maximumMembers: 3, maximumBytes: 1_000)
            for line in lines { try check.add(line: Array(line.utf8)) }
            return try check.finish()
        }
        let file = "-rw-r--r-- 0/0 5 2026-12-01 14:32 "
        #expect(throws: TransferError.self) { try check([file + #""/etc/passwd""#]) }
        #expect(throws: TransferError.self) { try check([file + #"".build/../../x""#]) }
        #expect(throws: TransferError.self) { try check(Array(repeating: file + #"".build/x""#, count: 4)) }
        #expect(try check([file + #"".build/a..b/c""#]) == [".build/a..b"])
        #expect(try check(["drwxr-xr-x 0/0 0 2026-12-01 14:32 \"./.build/sub/\""]) == [".build"])
    }

    // MARK: - Paths

    @Test func theAgentRefusesToWriteThroughAPlantedSymlink() throws {
        let outside = root + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: outside + "/victim"))
        // A directory link, as a step (or an earlier download) could plant.
        try FileManager.default.createSymbolicLink(atPath: root + "/work/dist", withDestinationPath: outside)
        let files = WorkDirectoryFiles(root: root + "/work")
        #expect(throws: TransferError.self) { try files.create("dist/victim") }
        // A file link is replaced by a new file, never written through.
        try FileManager.default.createSymbolicLink(atPath: root + "/work/app.bin", withDestinationPath: outside + "/victim")
        let descriptor = try files.create("app.bin")
        _ = try descriptor.writeAll(Array("new".utf8))
        try descriptor.close()
        #expect(try String(contentsOfFile: outside + "/victim", encoding: .utf8) == "keep")
        #expect(try String(contentsOfFile: root + "/work/app.bin", encoding: .utf8) == "new")
        // Reading (for an upload or a checksum) does not follow links either.
        try FileManager.default.createSymbolicLink(atPath: root + "/work/secret", withDestinationPath: outside + "/victim")
        #expect(throws: TransferError.self) { try files.openRegularFile("secret") }
        #expect(throws: TransferError.self) { try files.openRegularFile("dist/victim") }
        // A glob that matches a link fails naming it: the issue's "symlinks pointing outside
        // are refused with an error naming the path", never a silent skip or a follow.
        do {
            _ = try files.expand([ArtifactGlob("**")], maximumFiles: 10)
            Issue.record("a glob over links was expanded")
        } catch {
            #expect("\(error)".contains("`dist`") || "\(error)".contains("`secret`"), "\(error)")
        }
        do {
            _ = try files.expand([ArtifactGlob("secret")], maximumFiles: 10)
            Issue.record("a literal link was expanded")
        } catch {
            #expect("\(error)".contains("`secret` is a symbolic link"), "\(error)")
        }
        #expect(try files.expand([ArtifactGlob("*.bin")], maximumFiles: 10) == ["app.bin"])
        // And nothing outside, whatever the name says.
        #expect(throws: TransferError.self) { try files.create("../escape") }
        #expect(throws: TransferError.self) { try files.create("/etc/escape") }
    }

    @Test func tooManyMatchingFilesAreAnErrorNotASilentCut() throws {
        for index in 0..<5 { try write([UInt8(index)], to: "many/\(index).txt") }
        let files = WorkDirectoryFiles(root: root + "/work")
        #expect(try files.expand([ArtifactGlob("many/*.txt")], maximumFiles: 5).count == 5)
        #expect(throws: TransferError.self) { try files.expand([ArtifactGlob("many/*.txt")], maximumFiles: 4) }
    }

    @Test func cacheKeysRenderWithChecksumsOfWorkDirFiles() throws {
        try write(Array("resolved".utf8), to: "Package.resolved")
        let template = try CacheKeyTemplate("swiftpm-{{ checksum \"Package.resolved\" }}")
        let files = WorkDirectoryFiles(root: root + "/work")
        let (descriptor, size) = try files.openRegularFile("Package.resolved")
        defer { try? descriptor.close() }
        let digest = try FileDigest.ofSmallFile(descriptor, size: size)
        #expect(digest == FakeTransferAPI.hex(Array("resolved".utf8)))
        #expect(template.render { _ in digest } == "swiftpm-\(digest)")
    }

    @Test func apiURLsAreSplitForTheClient() throws {
        let plain = try TransferEndpoint(apiURL: "http://127.0.0.1:7080/")
        #expect(!plain.secure && plain.host == "127.0.0.1" && plain.port == 7080 && plain.basePath == "")
        let prefixed = try TransferEndpoint(apiURL: "https://ci.example/gantry")
        #expect(prefixed.secure && prefixed.port == 443 && prefixed.basePath == "/gantry" && prefixed.hostHeader == "ci.example")
        let v6 = try TransferEndpoint(apiURL: "https://[::1]:8443")
        #expect(v6.host == "::1" && v6.port == 8443 && v6.hostHeader == "[::1]:8443")
        for bad in ["ftp://x", "http://user@x", "http://x:0", "http://x:99999", "http://x/?q", "http://"] {
            #expect(throws: TransferError.self, "\(bad)") { try TransferEndpoint(apiURL: bad) }
        }
    }

    @Test func leasesWithBadTransferValuesAreRefused() {
        var lease = Gantry_V1_Lease.with {
            $0.jobID = "j"
            $0.attempt = 1
            $0.artifactPaths = ["../x"]
        }
        #expect(CoordinatorValueChecks.problem(with: lease)?.contains("..") == true)
        lease.artifactPaths = ["ok/*"]
        lease.cache = .with { $0.key = "k-{{ nope }}"; $0.paths = [".build"] }
        #expect(CoordinatorValueChecks.problem(with: lease) != nil)
        lease.cache = .with { $0.key = "k-{{ checksum \"a\" }}"; $0.paths = [".build"] }
        #expect(CoordinatorValueChecks.problem(with: lease) == nil)
    }
}

/// Accepts connections and never answers (a hung API).
final class SilentServer: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard socketFD >= 0, bound == 0, listen(socketFD, 16) == 0 else {
            _ = Glibc.close(socketFD)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
        }
        fd = socketFD
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}
