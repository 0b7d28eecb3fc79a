import Foundation
@testable import GantryAgent
import GantryProtocol
import GantryTransferRules
import SystemPackage
import Testing

/// The review's findings on the agent's transfers: hard links to files the step does not
/// own, which of several listed artifacts a promoted pipeline downloads, what a cache
/// archive may unpack, how long an upload waits for a busy session, and a cache key
/// another job saved first.
@Suite("Agent transfer hardening", .timeLimit(.minutes(2)))
final class TransferHardeningTests {
    let root = NSTemporaryDirectory() + "gantry-transfer-hardening-\(UUID().uuidString)"
    let token = "gjt_job-x.1." + String(repeating: "ef", count: 32)

    static var isRoot: Bool { geteuid() == 0 }
    static var nobody: StepUser? { try? StepUser.resolve("nobody") }

    init() throws {
        try FileManager.default.createDirectory(atPath: root + "/work", withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func client(_ api: FakeTransferAPI, busyBudget: Duration = .seconds(60)) throws -> TransferHTTPClient {
        var configuration = TransferHTTPClient.Configuration()
        configuration.initialBackoff = .milliseconds(10)
        configuration.maximumBackoff = .milliseconds(50)
        configuration.idleTimeout = .seconds(10)
        configuration.sessionBusyBudget = busyBudget
        return try TransferHTTPClient(
            endpoint: try TransferEndpoint(apiURL: api.url), token: token, caFile: nil, configuration: configuration)
    }

    func write(_ text: String, to path: String) throws {
        let full = root + "/work/" + path
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
    }

    // MARK: - Hard links

    @Test func onlyFilesTheStepCouldReadAreRead() {
        // With a step user: its own files, however many links; nobody else's.
        #expect(WorkDirectoryFiles.readProblem(fileOwner: 1000, links: 3, stepUser: 1000, agent: 0) == nil)
        #expect(WorkDirectoryFiles.readProblem(fileOwner: 0, links: 1, stepUser: 1000, agent: 0) != nil)
        #expect(WorkDirectoryFiles.readProblem(fileOwner: 42, links: 2, stepUser: 1000, agent: 0) != nil)
        // Without one: the agent's own files, and single-link files of others (a copy);
        // not a hard link to another user's file.
        #expect(WorkDirectoryFiles.readProblem(fileOwner: 0, links: 2, stepUser: nil, agent: 0) == nil)
        #expect(WorkDirectoryFiles.readProblem(fileOwner: 42, links: 1, stepUser: nil, agent: 0) == nil)
        #expect(WorkDirectoryFiles.readProblem(fileOwner: 42, links: 2, stepUser: nil, agent: 0) != nil)
    }

    @Test(.enabled(if: isRoot && nobody != nil, "needs root and the user nobody"))
    func aHardLinkToAFileTheStepUserDoesNotOwnIsNeitherUploadedNorChecksummed() async throws {
        let nobody = try #require(Self.nobody)
        // The agent's secret, outside the work dir, and a hard link to it inside, as
        // `ln /etc/shadow out/x` makes where fs.protected_hardlinks is 0.
        try Data("root-only secret".utf8).write(to: URL(fileURLWithPath: root + "/secret"))
        chmod(root + "/secret", 0o600)
        try FileManager.default.createDirectory(atPath: root + "/work/out", withIntermediateDirectories: true)
        #expect(link(root + "/secret", root + "/work/out/x") == 0)
        // The step's own file is fine, a second link to it too.
        try write("built", to: "out/app")
        #expect(chown(root + "/work/out/app", nobody.uid, nobody.gid) == 0)
        #expect(link(root + "/work/out/app", root + "/work/out/app-again") == 0)
        let files = WorkDirectoryFiles(root: root + "/work", owner: (nobody.uid, nobody.gid))
        #expect(throws: TransferError.self) { try files.openRegularFile("out/x") }
        let (own, size) = try files.openRegularFile("out/app-again")
        try own.close()
        #expect(size == 5)

        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        let transfers = ArtifactTransfers(client: try client(api), files: files, jobID: "j1", pipelineID: "p", log: TransferLog())
        await #expect(throws: TransferError.self) {
            try await withDeadline(.seconds(60), "upload") { try await transfers.upload([try ArtifactGlob("out/*")]) }
        }
        // A literal name is listed too and refused when opened, rather than skipped.
        await #expect(throws: TransferError.self) {
            try await withDeadline(.seconds(60), "upload") { try await transfers.upload([try ArtifactGlob("out/x")]) }
        }
        #expect(!api.state.withLock { $0.sessions.values.contains { $0.name == "out/x" } }, "the secret was not sent")

        // Nor does `{{ checksum }}` read it (a key would leak its digest).
        let cache = CacheTransfer(
            client: try client(api), files: files, jobID: "j1",
            cache: .init(key: try CacheKeyTemplate("k-{{ checksum \"out/x\" }}"), paths: ["out"], restoreKeys: []),
            archivePath: root + "/cache.tgz", stepUser: nobody,
            control: ProcessGroupControl(jobID: "j1", attempt: 1, grace: .seconds(1), useCgroup: false), log: TransferLog())
        #expect(throws: TransferError.self) { try cache.render(try CacheKeyTemplate("k-{{ checksum \"out/x\" }}")) }
    }

    @Test(.enabled(if: isRoot && nobody != nil, "needs root and the user nobody"))
    func withoutAStepUserAHardLinkToAnotherUsersFileIsRefused() throws {
        let nobody = try #require(Self.nobody)
        try Data("someone else's".utf8).write(to: URL(fileURLWithPath: root + "/theirs"))
        #expect(chown(root + "/theirs", nobody.uid, nobody.gid) == 0)
        #expect(link(root + "/theirs", root + "/work/linked") == 0)
        try write("mine", to: "mine")
        #expect(link(root + "/work/mine", root + "/work/mine-too") == 0)
        let files = WorkDirectoryFiles(root: root + "/work")
        #expect(throws: TransferError.self) { try files.openRegularFile("linked") }
        let (mine, _) = try files.openRegularFile("mine-too")
        try mine.close()
    }

    @Test(.enabled(if: isRoot && nobody != nil, "needs root and the user nobody"))
    func newDirectoriesAreHandedToTheStepUserThroughTheirDescriptor() throws {
        let nobody = try #require(Self.nobody)
        let files = WorkDirectoryFiles(root: root + "/work", owner: (nobody.uid, nobody.gid))
        let file = try files.create("a/b/c.bin")
        try file.close()
        for path in ["a", "a/b", "a/b/c.bin"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: root + "/work/" + path)
            #expect((attributes[.ownerAccountID] as? NSNumber)?.uint32Value == nobody.uid, "\(path)")
        }
    }

    // MARK: - Which artifact a download takes

    static func artifact(_ name: String, pipeline: String, attempt: Int, age: TimeInterval, digest: Character) -> API.Artifact {
        API.Artifact(
            sha256: String(repeating: digest, count: 64), name: name, size: 1, pipelineId: pipeline, stepKey: "build",
            jobId: "\(pipeline)-build", attempt: attempt, commit: "", agentId: "h/1", createdAt: Date(timeIntervalSinceNow: -age))
    }

    @Test func aPromotedPipelineDownloadsThePromotedBytesAndARetryItsLastAttempt() throws {
        let glob = try ArtifactGlob("dist/*")
        // The promoted pipeline's own, newer rebuild loses to the source's upload.
        let promoted = API.ArtifactList(pipelineId: "p2", promotedFrom: "p1", artifacts: [
            Self.artifact("dist/app", pipeline: "p1", attempt: 1, age: 100, digest: "a"),
            Self.artifact("dist/app", pipeline: "p2", attempt: 1, age: 1, digest: "b"),
            Self.artifact("dist/only-own", pipeline: "p2", attempt: 1, age: 1, digest: "c"),
        ])
        let chosen = ArtifactTransfers.choose(from: promoted, step: "build", matching: glob)
        #expect(chosen["dist/app"]?.pipelineId == "p1")
        #expect(chosen["dist/only-own"]?.pipelineId == "p2")
        // Either order of the rows.
        let reversed = API.ArtifactList(pipelineId: "p2", promotedFrom: "p1", artifacts: promoted.artifacts.reversed())
        #expect(ArtifactTransfers.choose(from: reversed, step: "build", matching: glob)["dist/app"]?.pipelineId == "p1")

        // Retried attempts of one pipeline: the highest attempt, even with an older clock.
        let retried = API.ArtifactList(pipelineId: "p", promotedFrom: nil, artifacts: [
            Self.artifact("dist/app", pipeline: "p", attempt: 2, age: 50, digest: "d"),
            Self.artifact("dist/app", pipeline: "p", attempt: 1, age: 1, digest: "e"),
            Self.artifact("dist/app", pipeline: "p", attempt: 3, age: 60, digest: "f"),
        ])
        #expect(ArtifactTransfers.choose(from: retried, step: "build", matching: glob)["dist/app"]?.attempt == 3)
        // Within one attempt (a file uploaded twice), the newest.
        let twice = API.ArtifactList(pipelineId: "p", promotedFrom: nil, artifacts: [
            Self.artifact("dist/app", pipeline: "p", attempt: 1, age: 1, digest: "1"),
            Self.artifact("dist/app", pipeline: "p", attempt: 1, age: 9, digest: "2"),
        ])
        #expect(ArtifactTransfers.choose(from: twice, step: "build", matching: glob)["dist/app"]?.sha256.first == "1")
    }

    // MARK: - What a cache archive may unpack

    /// A gzip'd tar of what `script` makes in a scratch directory, as a poisoned cache.
    func archive(_ script: String) async throws -> [UInt8] {
        let scratch = root + "/scratch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try await GitFixture(root: scratch).sh(script)
        return Array(try Data(contentsOf: URL(fileURLWithPath: scratch + "/cache.tgz")))
    }

    /// Restores `bytes` as the cache hit for `paths` into the work dir; the log.
    func restore(_ bytes: [UInt8], paths: [String]) async throws -> String {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        let digest = FakeTransferAPI.hex(bytes)
        api.state.withLock {
            $0.blobs[digest] = bytes
            $0.caches["deps"] = API.CacheEntry(
                scope: "branch:main", key: "deps", sha256: digest, size: UInt64(bytes.count), createdAt: Date(), lastUsedAt: Date())
        }
        let log = TransferLog()
        let transfer = CacheTransfer(
            client: try client(api), files: WorkDirectoryFiles(root: root + "/work"), jobID: "j1",
            cache: .init(key: try CacheKeyTemplate("deps"), paths: paths, restoreKeys: []),
            archivePath: root + "/work.cache.tgz", stepUser: nil,
            control: ProcessGroupControl(jobID: "j1", attempt: 1, grace: .seconds(1), useCgroup: false), log: log)
        _ = try await withDeadline(.seconds(60), "restore") { await transfer.restore() }
        return log.take().joined()
    }

    @Test func aCacheMemberOutsideTheCachesPathsRefusesTheRestore() async throws {
        try write("checked out", to: "src/main.swift")
        let bytes = try await archive(
            "mkdir -p .build src && echo cached > .build/ok && echo POISONED > src/main.swift && tar -czf cache.tgz .build src/main.swift")
        let log = try await restore(bytes, paths: [".build"])
        #expect(log.contains("cache not restored") && log.contains("not under the cache's paths"), "\(log)")
        #expect(try String(contentsOfFile: root + "/work/src/main.swift", encoding: .utf8) == "checked out")
        #expect(!FileManager.default.fileExists(atPath: root + "/work/.build/ok"), "nothing is unpacked")

        // The same archive restores when its paths are declared.
        let allowed = try await restore(bytes, paths: [".build", "src"])
        #expect(allowed.contains("cache restored"), "\(allowed)")
        #expect(try String(contentsOfFile: root + "/work/.build/ok", encoding: .utf8) == "cached\n")
    }

    @Test func aCacheThatUnpacksThroughItsOwnLinkIsRefused() async throws {
        try FileManager.default.createDirectory(atPath: root + "/outside", withIntermediateDirectories: true)
        // `.build/a` a link, then `.build/a/x` a file: unpacked in order, x lands where
        // the link points. The link points inside the work dir, so only the order betrays it.
        let bytes = try await archive(
            """
            mkdir -p one/.build two/.build/a && ln -s ../src one/.build/a && echo EVIL > two/.build/a/x
            tar -czf cache.tgz -C one .build/a -C ../two .build/a/x
            """)
        let log = try await restore(bytes, paths: [".build"])
        #expect(log.contains("cache not restored") && log.contains("through its own link"), "\(log)")
        #expect(!FileManager.default.fileExists(atPath: root + "/work/src/x"))
        #expect(!FileManager.default.fileExists(atPath: root + "/work/.build"), "nothing is unpacked")

        // A link out of the work dir is refused even alone.
        let out = try await archive("mkdir -p .build && ln -s \(root)/outside .build/out && tar -czf cache.tgz .build")
        let outLog = try await restore(out, paths: [".build"])
        #expect(outLog.contains("points outside the work dir"), "\(outLog)")
        let up = try await archive("mkdir -p .build && ln -s ../../outside .build/up && tar -czf cache.tgz .build")
        #expect(try await restore(up, paths: [".build"]).contains("points outside the work dir"))
        #expect(!FileManager.default.fileExists(atPath: root + "/work/.build"), "nothing is unpacked")
    }

    @Test func tarsOwnListingParsesNamesWithSpacesArrowsQuotesAndNewlines() async throws {
        let scratch = root + "/names"
        try FileManager.default.createDirectory(atPath: scratch + "/.build", withIntermediateDirectories: true)
        let names = [".build/a b -> c", ".build/q\"uote\\", ".build/new\nline", ".build/caf\u{e9}"]
        for name in names { try Data("x".utf8).write(to: URL(fileURLWithPath: scratch + "/" + name)) }
        try FileManager.default.createSymbolicLink(atPath: scratch + "/.build/l -> x", withDestinationPath: "a b -> c")
        #expect(link(scratch + "/.build/a b -> c", scratch + "/.build/hard link to x") == 0)
        let listing = try await GitFixture(root: scratch).sh(
            "tar -cf - .build | LC_ALL=C tar --quoting-style=c --numeric-owner -tvf -")
        var members: [CacheArchiveCheck.Member] = []
        for line in listing.split(separator: "\n") { members.append(try CacheArchiveCheck.parse(Array(line.utf8))) }
        let byName = Dictionary(members.map { (String(decoding: $0.name, as: UTF8.self), $0) }, uniquingKeysWith: { a, _ in a })
        for name in names { #expect(byName[name]?.type == UInt8(ascii: "-") || byName[name]?.type == UInt8(ascii: "h"), "\(name): \(listing)") }
        #expect(byName[".build/l -> x"].map { String(decoding: $0.target ?? [], as: UTF8.self) } == "a b -> c", "\(listing)")
        let hard = [byName[".build/a b -> c"], byName[".build/hard link to x"]].compactMap { $0 }.first { $0.type == UInt8(ascii: "h") }
        #expect(hard.map { String(decoding: $0.target ?? [], as: UTF8.self).hasPrefix(".build/") } == true, "\(listing)")
        #expect(byName[".build/a b -> c"]?.size == 1 || byName[".build/hard link to x"]?.size == 1)
        // The whole listing passes the check under `.build`.
        var check = CacheArchiveCheck(paths: [".build"], maximumMembers: 100, maximumBytes: 1_000)
        for line in listing.split(separator: "\n") { try check.add(line: Array(line.utf8)) }
        #expect(try check.finish() == [".build"])
    }

    @Test func aCacheThatUnpacksToTooManyBytesIsRefusedFromItsListing() async throws {
        var check = CacheArchiveCheck(paths: [".build"], maximumMembers: 100, maximumBytes: 1_000_000)
        try check.add(line: Array(#"-rw-r--r-- 0/0 600000 2026-12-01 14:32 ".build/a""#.utf8))
        #expect(throws: TransferError.self) {
            try check.add(line: Array(#"-rw-r--r-- 0/0 600000 2026-12-01 14:32 ".build/b""#.utf8))
        }
        // Devices, fifos and anything else are refused by type.
        var devices = CacheArchiveCheck(paths: [".build"], maximumMembers: 100, maximumBytes: 1_000)
        #expect(throws: TransferError.self) {
            try devices.add(line: Array(#"crw-r--r-- 0/0 1,3 2026-12-01 14:32 ".build/null""#.utf8))
        }
        // A hard link to something outside the paths.
        var hard = CacheArchiveCheck(paths: [".build"], maximumMembers: 100, maximumBytes: 1_000)
        #expect(throws: TransferError.self) {
            try hard.add(line: Array(#"hrw-r--r-- 0/0 0 2026-12-01 14:32 ".build/x" link to "src/main.swift""#.utf8))
        }
    }

    // MARK: - Uploads

    @Test func anUploadWaitsForASessionHeldLongerThanTheConnectionRetries() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        try write(String(repeating: "z", count: 30_000), to: "held.bin")
        // Six tries with pauses of at most 50 ms end within half a second: the session
        // stays busy for a second and a half, as a server waiting out a half-open drop.
        let busyUntil = ContinuousClock.now + .milliseconds(1_500)
        api.state.withLock { $0.busyUntil = busyUntil }
        let transfers = ArtifactTransfers(
            client: try client(api, busyBudget: .seconds(10)), files: WorkDirectoryFiles(root: root + "/work"), jobID: "j1",
            pipelineID: "p", log: TransferLog())
        try await withDeadline(.seconds(60), "upload") { try await transfers.upload([try ArtifactGlob("held.bin")]) }
        let state = api.state.withLock { $0 }
        #expect(state.sessions.values.first?.complete == true, "\(state.requests)")
        // It outlasted the busy window: an upload that gave up earlier could not be complete.
        // (Counting PATCHes instead depends on how fast this machine runs the backoff.)
        #expect(ContinuousClock.now >= busyUntil, "\(state.requests)")

        // Still bounded: a session that never lets go fails the upload after the budget.
        api.state.withLock { $0.busyUntil = ContinuousClock.now + .seconds(3_600) }
        try write("other", to: "stuck.bin")
        let bounded = ArtifactTransfers(
            client: try client(api, busyBudget: .milliseconds(500)), files: WorkDirectoryFiles(root: root + "/work"), jobID: "j1",
            pipelineID: "p", log: TransferLog())
        let started = ContinuousClock.now
        await #expect(throws: TransferError.self) {
            try await withDeadline(.seconds(60), "upload") { try await bounded.upload([try ArtifactGlob("stuck.bin")]) }
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aCacheKeyAnotherJobSavedFirstIsASuccess() async throws {
        let api = try await FakeTransferAPI(token: token)
        defer { Task { await api.close() } }
        try write(String(repeating: "n", count: 1_000), to: ".build/file")
        let existing = API.CacheEntry(
            scope: "branch:main", key: "deps", sha256: String(repeating: "9", count: 64), size: 77, createdAt: Date(),
            lastUsedAt: Date())
        api.state.withLock { $0.caches["deps"] = existing }
        let log = TransferLog()
        let transfer = CacheTransfer(
            client: try client(api), files: WorkDirectoryFiles(root: root + "/work"), jobID: "j1",
            cache: .init(key: try CacheKeyTemplate("deps"), paths: [".build"], restoreKeys: []),
            archivePath: root + "/work.cache.tgz", stepUser: nil,
            control: ProcessGroupControl(jobID: "j1", attempt: 1, grace: .seconds(1), useCgroup: false), log: log)
        try await withDeadline(.seconds(60), "save") { await transfer.save(key: "deps") }
        let notes = log.take().joined()
        #expect(notes.contains("already saved by another job") && !notes.contains("not saved"), "\(notes)")
        #expect(api.state.withLock { $0.caches["deps"] } == existing)
    }
}
