import GantryProtocol
import GantryTransferRules
import NIOHTTP1
import SystemPackage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `download:` before the commands and `artifacts:` after them, over the API with the
/// job's token.
struct ArtifactTransfers {
    let client: TransferHTTPClient
    let files: WorkDirectoryFiles
    let jobID: String
    let pipelineID: String
    let log: TransferLog

    /// Every `download:` entry: the pipeline's artifacts of the named step (its own or the
    /// promoted pipeline's) whose names match, each into the work dir at its name.
    func download(_ downloads: [TransferPlan.Download]) async throws {
        for rule in downloads {
            let list = try await client.json(
                .GET, "/v1/pipelines/\(QueryEncoding.encode(pipelineID))/artifacts?step=\(QueryEncoding.encode(rule.step))",
                as: API.ArtifactList.self)
            let newest = Self.choose(from: list, step: rule.step, matching: rule.glob)
            guard !newest.isEmpty else {
                throw TransferError.status(404, "no artifact of step `\(rule.step)` matches `\(rule.glob)`")
            }
            guard newest.count <= TransferLimits.maximumDownloadFiles else {
                throw TransferError.limit("`\(rule.glob)` matches \(newest.count) artifacts; the limit is \(TransferLimits.maximumDownloadFiles)")
            }
            for artifact in newest.values.sorted(by: { $0.name < $1.name }) {
                guard FileDigest.isValid(artifact.sha256) else {
                    throw TransferError.protocolViolation("artifact `\(artifact.name)` has no valid sha256")
                }
                if let problem = TransferPath.problem(with: artifact.name, what: "artifact name") {
                    throw TransferError.unsafePath(problem)
                }
                let file = try files.create(artifact.name)
                do {
                    defer { try? file.close() }
                    try await DigestDownload(client: client).fetch(
                        "/v1/artifacts/\(artifact.sha256)/content", sha256: artifact.sha256, size: artifact.size, into: file)
                } catch {
                    files.remove(artifact.name)
                    throw error
                }
                log.add("gantry: downloaded \(artifact.name) (\(artifact.size) bytes, sha256 \(artifact.sha256.prefix(12))…) from step \(rule.step)\n")
            }
        }
    }

    /// One artifact per name among the listed ones of `step` that `glob` matches.
    ///
    /// A promoted pipeline's listing may hold rows of the pipeline it promotes
    /// (`promotedFrom`) and its own for one name: the promoted bytes win, since the point
    /// of promotion is to deploy what was built, never a rebuild that happened to be newer.
    /// Then, among rows of one pipeline (a retried step uploads again), the highest
    /// attempt, and the newest upload within an attempt. Rows of any other pipeline come
    /// last: the listing should hold none.
    static func choose(from list: API.ArtifactList, step: String, matching glob: ArtifactGlob) -> [String: API.Artifact] {
        func rank(_ artifact: API.Artifact) -> Int {
            if let source = list.promotedFrom, artifact.pipelineId == source { return 2 }
            return artifact.pipelineId == list.pipelineId ? 1 : 0
        }
        func precedes(_ a: API.Artifact, _ b: API.Artifact) -> Bool {
            if rank(a) != rank(b) { return rank(a) > rank(b) }
            if a.attempt != b.attempt { return a.attempt > b.attempt }
            return a.createdAt > b.createdAt
        }
        var chosen: [String: API.Artifact] = [:]
        for artifact in list.artifacts where artifact.stepKey == step && glob.matches(artifact.name) {
            if let known = chosen[artifact.name], !precedes(artifact, known) { continue }
            chosen[artifact.name] = artifact
        }
        return chosen
    }

    /// The files `globs` match, each hashed, then sent through an upload session.
    func upload(_ globs: [ArtifactGlob]) async throws {
        let paths = try files.expand(globs, maximumFiles: TransferLimits.maximumArtifactFiles)
        if paths.isEmpty {
            log.add("gantry: no file matches the artifact globs \(globs.map(\.text).joined(separator: ", "))\n")
            return
        }
        // A name the API would refuse (a control character, a backslash, too long) fails
        // here, before anything is sent, with the file it is about.
        for path in paths {
            if let problem = TransferPath.problem(with: path, what: "artifact name") {
                throw TransferError.unsafePath("cannot upload `\(path.prefix(200))`: \(problem)")
            }
        }
        for path in paths {
            let (file, size) = try files.openRegularFile(path)
            defer { try? file.close() }
            let sha256 = try await FileDigest.of(file, size: size)
            let session = try await client.json(
                .POST, "/v1/jobs/\(QueryEncoding.encode(jobID))/artifacts",
                body: API.CreateArtifactUpload(name: path, size: size, sha256: sha256), as: API.ArtifactUpload.self)
            try await UploadSession(client: client).send(session, file: file, size: size)
            log.add("gantry: uploaded artifact \(path) (\(size) bytes, sha256 \(sha256.prefix(12))…)\n")
        }
    }
}

extension WorkDirectoryFiles {
    /// Removes a partly written file (links not followed).
    func remove(_ path: String) {
        guard let found = try? parent(of: path, create: false) else { return }
        let (directory, name) = found
        defer { try? directory.close() }
        _ = unlinkat(directory.rawValue, name, 0)
    }
}
