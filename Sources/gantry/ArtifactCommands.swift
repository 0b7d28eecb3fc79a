import ArgumentParser
import Foundation
import GantryProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `gantry artifact upload|download|list|show`: files a step stores for later steps and
/// later pipelines, by digest, with where they came from and where they were deployed.
///
/// Inside a step the agent's environment names everything (GANTRY_JOB_ID,
/// GANTRY_PIPELINE_ID, GANTRY_API_URL, GANTRY_JOB_TOKEN, GANTRY_CA_FILE), as for
/// `gantry meta-data`; from a workstation pass the pipeline and use an API token.
struct ArtifactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "artifact",
        abstract: "Upload, download, list and trace artifacts: files stored once by sha256 with their provenance.",
        discussion: """
            Inside a step:
              gantry artifact upload dist/app.tar.gz
              gantry artifact download 'dist/*' --step build
            From a workstation:
              gantry artifact list PIPELINE
              gantry artifact show SHA256
            """,
        subcommands: [UploadArtifact.self, DownloadArtifact.self, ListArtifacts.self, ShowArtifact.self])
}

struct UploadArtifact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload files as this job's artifacts (inside a step; resumes after a dropped connection).")

    @Argument(help: "Files to upload; each is named by its path as given (without a leading ./).") var paths: [String]
    @Option(help: "The artifact's name, for a single file (default: its path).") var name: String?
    @OptionGroup var connection: Connection

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("name at least one file") }
        if name != nil, paths.count != 1 { throw ValidationError("--name names one file: upload the others separately") }
    }

    func run() async throws {
        guard let jobID = ProcessInfo.processInfo.environment["GANTRY_JOB_ID"], !jobID.isEmpty else {
            throw ValidationError("`gantry artifact upload` runs inside a step (GANTRY_JOB_ID and GANTRY_JOB_TOKEN name the job)")
        }
        let client = try connection.client(insideStep: true)
        defer { client.shutdown() }
        let transfer = ArtifactTransfer(client: client)
        for path in paths {
            let artifactName = name ?? Self.defaultName(path)
            if let problem = ArtifactName.problem(artifactName) {
                throw ValidationError("\(path): \(problem); pass --name")
            }
            let artifact = try await transfer.upload(path: path, name: artifactName, jobID: jobID)
            if connection.json {
                print(String(decoding: try API.encoder.encode(artifact), as: UTF8.self))
            } else {
                print("uploaded \(artifact.name) (\(artifact.size) bytes, sha256 \(artifact.sha256))")
            }
        }
    }

    /// A relative path as given, without `./`; an absolute one by its last component.
    static func defaultName(_ path: String) -> String {
        if path.hasPrefix("/") { return (path as NSString).lastPathComponent }
        var name = Substring(path)
        while name.hasPrefix("./") { name = name.dropFirst(2) }
        return String(name)
    }
}

struct DownloadArtifact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Download the artifacts whose names match PATTERN, each checked against its sha256.")

    @Argument(help: "A glob over artifact names (`*` also matches `/`), e.g. 'dist/*'.") var pattern: String
    @Option(help: "Only artifacts of this step.") var step: String?
    @Option(
        help: ArgumentHelp(
            "Pipeline id (default GANTRY_PIPELINE_ID): its artifacts and those of the pipeline it promotes (a step key of "
                + "that pipeline resolves to its artifacts only, as the coordinator lists them)."))
    var pipeline: String?
    @Option(help: "Directory to write into, by artifact name (default: the current directory).") var to: String = "."
    @OptionGroup var connection: Connection

    func run() async throws {
        let id = try pipelineID(pipeline)
        let client = try connection.client(insideStep: true)
        defer { client.shutdown() }
        let list = try await listArtifacts(client, pipeline: id, step: step)
        let matching = list.artifacts.filter { fnmatch(pattern, $0.name, 0) == 0 }
        guard !matching.isEmpty else {
            throw CLIError("no artifact of pipeline \(id)\(step.map { " step \($0)" } ?? "") matches '\(pattern)'")
        }
        // Two jobs (a matrix) may store the same name: the first listed wins, and the
        // others are skipped with a warning rather than overwriting it.
        var written: Set<String> = []
        let transfer = ArtifactTransfer(client: client)
        for artifact in matching {
            // The coordinator refuses such names; a download never writes outside --to.
            guard ArtifactName.problem(artifact.name) == nil else { throw CLIError("refusing the artifact name \(artifact.name)") }
            guard written.insert(artifact.name).inserted else {
                FileHandle.standardError.write(Data("gantry: \(artifact.name) of job \(artifact.jobId) skipped: another job's has the same name\n".utf8))
                continue
            }
            let target = to + "/" + artifact.name
            try await transfer.download(artifact, to: target)
            if connection.json {
                print(String(decoding: try API.encoder.encode(artifact), as: UTF8.self))
            } else {
                print("downloaded \(artifact.name) (\(artifact.size) bytes, sha256 \(artifact.sha256))")
            }
        }
    }
}

struct ListArtifacts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List a pipeline's artifacts (and those of the pipeline it promotes).")

    @Argument(help: "Pipeline id (default GANTRY_PIPELINE_ID).") var pipeline: String?
    @Option(help: "Only artifacts of this step.") var step: String?
    @OptionGroup var connection: Connection

    func run() async throws {
        let id = try pipelineID(pipeline)
        let client = try connection.client(insideStep: true)
        defer { client.shutdown() }
        let list = try await listArtifacts(client, pipeline: id, step: step)
        if connection.json {
            print(String(decoding: try API.encoder.encode(list), as: UTF8.self))
            return
        }
        if let source = list.promotedFrom { print("promotes the artifacts of pipeline \(source)") }
        for artifact in list.artifacts {
            let origin = artifact.pipelineId == id ? "" : "  (from \(artifact.pipelineId))"
            print("\(artifact.sha256.prefix(12))  \(String(artifact.size).leftPad(12))  \(artifact.stepKey)  \(artifact.name)\(origin)")
        }
    }
}

struct ShowArtifact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Where these bytes came from, and where they have been deployed.")

    @Argument(help: "The sha256 (64 hex digits).") var digest: String
    @OptionGroup var connection: Connection

    func run() async throws {
        let digest = digest.lowercased().replacingOccurrences(of: "sha256:", with: "")
        guard ArtifactDigest.isValid(digest) else { throw ValidationError("a digest is 64 hex digits of a sha256") }
        let client = try connection.client()
        defer { client.shutdown() }
        let detail: API.ArtifactDetail = try await client.send("GET", APIRoute.getArtifact.path(["digest": digest]))
        if connection.json {
            print(String(decoding: try API.encoder.encode(detail), as: UTF8.self))
            return
        }
        print("sha256 \(detail.sha256), \(detail.size) bytes")
        print("provenance:")
        for row in detail.provenance {
            print(
                "  \(row.name): pipeline \(row.pipelineId) step \(row.stepKey) job \(row.jobId) attempt \(row.attempt) "
                    + "commit \(row.commit.isEmpty ? "-" : row.commit) agent \(row.agentId) at \(row.createdAt)")
        }
        print("deployments:\(detail.deployments.isEmpty ? " none" : "")")
        for row in detail.deployments {
            print("  \(row.environment): pipeline \(row.pipelineId) step \(row.stepKey) job \(row.jobId) \(row.state) at \(row.at)")
        }
    }
}

/// `--pipeline`/the argument, else GANTRY_PIPELINE_ID.
func pipelineID(_ given: String?) throws -> String {
    guard let id = given ?? ProcessInfo.processInfo.environment["GANTRY_PIPELINE_ID"], !id.isEmpty else {
        throw ValidationError("no pipeline: name it (inside a step GANTRY_PIPELINE_ID names it)")
    }
    guard id.utf8.count <= 128 else { throw ValidationError("a pipeline id is at most 128 bytes") }
    return id
}

func listArtifacts(_ client: APIClient, pipeline: String, step: String?) async throws -> API.ArtifactList {
    var path = APIRoute.listArtifacts.path(["id": pipeline])
    if let step { path += "?step=" + APIRoute.percentEncodeQuery(step) }
    return try await client.send("GET", path)
}

extension APIRoute {
    /// A query value percent-encoded like a path parameter.
    static func percentEncodeQuery(_ value: String) -> String {
        APIRoute.getArtifact.path(["digest": value]).components(separatedBy: "/").last ?? ""
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
