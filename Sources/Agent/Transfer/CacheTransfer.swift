import GantryProtocol
import GantryTransferRules
import NIOHTTP1
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `cache:`: restored before the commands, saved after a successful run whose key
/// missed. The archive is a gzip'd tar made and unpacked by tar(1), as the step user when
/// there is one, so it can neither read nor write what the step could not; it lives next
/// to the work dir (`<workdir>.cache.tgz`), owned by the agent, never inside it.
///
/// Nothing here fails the job: a cache is an optimisation, so each problem becomes a
/// `gantry:` note in the log and the job goes on.
struct CacheTransfer {
    let client: TransferHTTPClient
    let files: WorkDirectoryFiles
    let jobID: String
    let cache: TransferPlan.Cache
    /// Where the archive is kept while it is sent or unpacked (outside the work dir).
    let archivePath: String
    let stepUser: StepUser?
    let control: ProcessGroupControl
    let log: TransferLog

    /// What the restore found: the rendered key, and whether a save is due after success.
    struct Restored: Sendable {
        var key: String
        var saveAfterSuccess: Bool
    }

    /// tar's whole environment: nothing of the agent's (no `TAR_OPTIONS` or anything a
    /// step should not see), a fixed `PATH` and the C locale, so a listing escapes every
    /// non-ASCII byte of a member name (`--quoting-style=c`) and decodes back exactly.
    static let toolEnvironment: Environment = .custom(["PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"])

    /// Members of a restored archive, at most.
    static let maximumMembers = 500_000

    func restore() async -> Restored? {
        let key: String
        let restoreKeys: [String]
        do {
            key = try render(cache.key)
            restoreKeys = try cache.restoreKeys.map { template throws(TransferError) in try render(template) }
        } catch {
            log.add("gantry: cache not restored: \(error)\n")
            return nil
        }
        var query = "key=\(QueryEncoding.encode(key))"
        for restoreKey in restoreKeys { query += "&restore_key=\(QueryEncoding.encode(restoreKey))" }
        do {
            let response = try await client.jsonResponse(.GET, "/v1/jobs/\(QueryEncoding.encode(jobID))/cache?\(query)")
            if response.status == 404 {
                log.add("gantry: cache miss for \(key)\n")
                return Restored(key: key, saveAfterSuccess: true)
            }
            guard (200..<300).contains(response.status) else { throw TransferHTTPClient.statusError(response) }
            let hit = try TransferHTTPClient.decode(API.CacheHit.self, from: response)
            guard FileDigest.isValid(hit.entry.sha256) else { throw TransferError.protocolViolation("the cache entry has no valid sha256") }
            let archive = try createArchiveFile()
            defer { unlink(archivePath) }
            do {
                defer { try? archive.close() }
                try await DigestDownload(client: client).fetch(
                    "/v1/jobs/\(QueryEncoding.encode(jobID))/cache/\(hit.entry.sha256)/content", sha256: hit.entry.sha256,
                    size: hit.entry.size, into: archive)
            }
            try await checkMembers()
            let input = try SystemPackage.FileDescriptor.open(FilePath(archivePath), .readOnly, options: [.noFollow, .closeOnExec])
            try await runTar(
                ["-xzf", "-", "--no-same-owner", "--no-overwrite-dir", "-C", files.root],
                input: .fileDescriptor(input, closeAfterSpawningProcess: true), output: .discarded)
            log.add(
                "gantry: cache restored from \(hit.entry.key)\(hit.exact ? "" : " (restore key; saved again after success as \(key))") "
                    + "(\(hit.entry.size) bytes)\n")
            return Restored(key: key, saveAfterSuccess: !hit.exact)
        } catch TransferError.stopped {
            return nil
        } catch {
            log.add("gantry: cache not restored: \(error)\n")
            return Restored(key: key, saveAfterSuccess: true)
        }
    }

    func save(key: String) async {
        let present = cache.paths.filter { files.exists($0) }
        guard !present.isEmpty else {
            log.add("gantry: cache not saved: none of \(cache.paths.joined(separator: ", ")) exists\n")
            return
        }
        do {
            let archive = try createArchiveFile()
            defer {
                try? archive.close()
                unlink(archivePath)
            }
            // The archive is written through the agent's descriptor: the step user never
            // needs a path it could use to write outside the work dir.
            let output = SystemPackage.FileDescriptor(rawValue: dup(archive.rawValue))
            guard output.rawValue >= 0 else { throw TransferError.file("cannot duplicate the archive's descriptor") }
            try await runTar(
                ["-czf", "-", "-C", files.root, "--"] + present, input: .none,
                output: .fileDescriptor(output, closeAfterSpawningProcess: true))
            var status = stat()
            guard fstat(archive.rawValue, &status) == 0 else { throw TransferError.file("cannot stat the cache archive") }
            let size = UInt64(status.st_size)
            let sha256 = try await FileDigest.of(archive, size: size)
            let session = try await client.json(
                .POST, "/v1/jobs/\(QueryEncoding.encode(jobID))/cache",
                body: API.CreateCacheUpload(key: key, size: size, sha256: sha256), as: API.ArtifactUpload.self)
            try await UploadSession(client: client).send(session, file: archive, size: size)
            if let existing = session.cache, existing.sha256 != sha256 {
                // Another job saved this key first: entries are immutable, and that is fine.
                log.add("gantry: cache \(key) was already saved by another job (\(existing.size) bytes); kept\n")
            } else {
                log.add("gantry: cache saved as \(key) (\(size) bytes compressed)\n")
            }
        } catch {
            log.add("gantry: cache not saved: \(error)\n")
        }
    }

    /// `{{ checksum "FILE" }}` is the sha256 of FILE in the work dir, at most
    /// `TransferLimits.maximumChecksumFileBytes`.
    func render(_ template: CacheKeyTemplate) throws(TransferError) -> String {
        try template.render { (file: String) throws(TransferError) -> String in
            let (descriptor, size) = try files.openRegularFile(file)
            defer { try? descriptor.close() }
            guard size <= UInt64(TransferLimits.maximumChecksumFileBytes) else {
                throw .limit("`\(file)` is \(size) bytes; a checksum file may have at most \(TransferLimits.maximumChecksumFileBytes)")
            }
            return try FileDigest.ofSmallFile(descriptor, size: size)
        }
    }

    private func createArchiveFile() throws(TransferError) -> SystemPackage.FileDescriptor {
        unlink(archivePath)
        let fd = open(archivePath, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .file("cannot create the cache archive: \(WorkDirectoryFiles.lastError())") }
        return SystemPackage.FileDescriptor(rawValue: fd)
    }

    /// Refuses the archive (`CacheArchiveCheck`) before tar unpacks anything: a member
    /// outside `cache.paths`, one that is absolute or climbs out (`..`), a link out of
    /// the work dir or one the archive unpacks through, a device, too many members or
    /// bytes, or a member that would be unpacked through a symbolic link already in the
    /// work dir (a checkout can hold one). GNU tar refuses some of these itself; this makes
    /// the restore independent of the tar installed. tar lists the archive as the step
    /// user when there is one: the agent never runs a decompressor on hostile bytes as
    /// itself.
    private func checkMembers() async throws {
        let input = try SystemPackage.FileDescriptor.open(FilePath(archivePath), .readOnly, options: [.noFollow, .closeOnExec])
        var options = PlatformOptions()
        options.createSession = true
        let control = self.control
        let (executable, arguments) = tarCommand(["--quoting-style=c", "--numeric-owner", "-tvzf", "-"])
        let check = CacheArchiveCheck(
            paths: cache.paths, maximumMembers: Self.maximumMembers, maximumBytes: TransferLimits.maximumCacheExpandedBytes)
        let spawn = OrphanReaper.SpawnGuard()
        let result = try await Subprocess.run(
            executable, arguments: arguments, environment: Self.toolEnvironment, workingDirectory: FilePath(files.root),
            platformOptions: options, input: .fileDescriptor(input, closeAfterSpawningProcess: true), output: .sequence,
            error: .discarded
        ) { execution -> CacheArchiveCheck in
            let leader = execution.processIdentifier.value
            control.started(processGroup: leader)
            spawn.end()
            var check = check
            var line: [UInt8] = []
            do {
                for try await buffer in execution.standardOutput {
                    for byte in buffer.withUnsafeBytes({ Array($0) }) {
                        guard byte != UInt8(ascii: "\n") else {
                            try check.add(line: line)
                            line.removeAll(keepingCapacity: true)
                            continue
                        }
                        guard line.count < 65_536 else { throw TransferError.unsafePath("an archive member name is too long") }
                        line.append(byte)
                    }
                }
            } catch {
                // A refused listing ends here (the archive is the saver's choice): the leader
                // is no longer this attempt's, or its pid would stay registered and be
                // signalled with the attempt's stragglers after the kernel reused it.
                control.leaderExited(processGroup: leader)
                throw error
            }
            return check
        }
        control.leaderExited(processGroup: result.processIdentifier.value)
        guard result.terminationStatus.isSuccess else { throw TransferError.file("tar -t failed: \(result.terminationStatus)") }
        for parent in try result.closureResult.finish() {
            do {
                let (directory, _) = try files.parent(of: parent + "/member", create: false)
                try? directory.close()
            } catch TransferError.unsafePath(let why) {
                throw TransferError.unsafePath("the cache would be unpacked through a link: \(why)")
            } catch {
                // Missing: tar creates it.
            }
        }
    }

    /// tar with `arguments`, through setpriv as the step user when there is one (setpriv
    /// looks `tar` up in `toolEnvironment`'s PATH).
    private func tarCommand(_ arguments: [String]) -> (Executable, Arguments) {
        guard let stepUser else { return (.name("tar"), Arguments(arguments)) }
        return (.path(FilePath(stepUser.setpriv)), Arguments(stepUser.setprivArguments + ["tar"] + arguments))
    }

    /// tar with `arguments`, as the step user when there is one (through setpriv, as the
    /// runner starts commands), in its own process group registered with the step's
    /// control so a cancel or the step's timeout stops it too.
    private func runTar<Input: InputProtocol, Output: OutputProtocol>(
        _ arguments: [String], input: Input, output: Output
    ) async throws {
        var options = PlatformOptions()
        options.createSession = true
        let (executable, all) = tarCommand(arguments)
        let control = self.control
        let spawn = OrphanReaper.SpawnGuard()
        let result = try await Subprocess.run(
            executable, arguments: all, environment: Self.toolEnvironment, workingDirectory: FilePath(files.root),
            platformOptions: options,
            input: input, output: output, error: .string(limit: 4096)
        ) { execution in
            control.started(processGroup: execution.processIdentifier.value)
            spawn.end()
        }
        control.leaderExited(processGroup: result.processIdentifier.value)
        guard result.terminationStatus.isSuccess else {
            let why = result.standardError.split(separator: "\n").prefix(3).joined(separator: "; ")
            throw TransferError.file("tar \(arguments.first ?? "") ended with \(result.terminationStatus): \(why)")
        }
    }
}
