import ArgumentParser
import AsyncHTTPClient
import Foundation
import GantryCLIKit
import GantryPipeline
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `gantry pipeline PIPELINE` shows a pipeline; `gantry pipeline upload` adds steps to a
/// running pipeline from one of its steps.
struct PipelineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Show a pipeline (`gantry pipeline PIPELINE`), or change a running one from one of its steps.",
        subcommands: [ShowPipeline.self, UploadPipeline.self],
        defaultSubcommand: ShowPipeline.self)
}

/// Uploads a pipeline file into the pipeline the step runs in. Inside a step everything
/// comes from the environment the agent sets (GANTRY_PIPELINE_ID, GANTRY_API_URL,
/// GANTRY_JOB_TOKEN, GANTRY_CA_FILE), as for `gantry meta-data`.
struct UploadPipeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Add the steps of a pipeline file to this step's pipeline (inside a step, with its job token).",
        discussion: """
            The steps are validated like a submitted pipeline's. On any error nothing is added, the error is \
            printed as file:line:column: message, and the command exits 1, so the step fails.

            Uploaded steps start at once unless their depends_on names a step (existing steps included); every \
            step waiting for this one (a later `wait`) also waits for them.
              gantry pipeline upload                      # .gantry/pipeline.yml
              ./generate-steps | gantry pipeline upload -
            """)

    @Argument(help: "Pipeline file; `-` reads stdin.") var file: String = PipelineBootstrap.repositoryFile
    @OptionGroup var target: MetaDataTarget

    /// The coordinator's limit for a pipeline file, and one byte more to tell a file
    /// that is too long from one that fits.
    static let maximumBytes = PipelineLimits.maximumYAMLBytes
    /// How long an upload waits for an unreachable coordinator (a restart) before failing.
    static let reconnectBudget = 120.0
    /// The name the coordinator's errors use for a file read from stdin.
    static let standardInputName = "stdin"

    func run() async throws {
        let pipeline = try target.pipelineID()
        let name = file == "-" ? Self.standardInputName : file
        guard name.utf8.count <= 256 else { throw ValidationError("the file name is longer than 256 bytes") }
        let text = file == "-" ? try Self.readStandardInput() : try Self.readFile(file)
        let client = try target.client()
        defer { client.shutdown() }
        let path = APIRoute.uploadPipelineSteps.path(["id": pipeline]) + "?file=" + Self.queryEncoded(name)
        var uploaded: API.UploadedSteps?
        // A coordinator restarting under the step is waited for: the upload is idempotent
        // per attempt (a second one answers "already uploaded"), so retrying after a lost
        // answer adds nothing twice.
        var backoff = Backoff(budget: Self.reconnectBudget)
        while uploaded == nil {
            do {
                uploaded = try await client.sendText("POST", path, text: text)
            } catch let refusal as CLIError where refusal.code != nil {
                // The coordinator's answer: `file:line:column: message`, as a compiler prints it.
                FileHandle.standardError.write(Data("\(refusal.description)\n".utf8))
                throw ExitCode(1)
            } catch let error as CLIError where LogFollower.isTransient(error) {
                guard let delay = backoff.delay() else { throw error }
                FileHandle.standardError.write(Data("gantry: \(error.description); retrying\n".utf8))
                try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            }
        }
        guard let uploaded else { return }
        if target.connection.json {
            print(String(decoding: try API.encoder.encode(uploaded), as: UTF8.self))
            return
        }
        let said =
            uploaded.alreadyUploadedBy.map {
                "gantry: \(name): attempt \($0) of this step already uploaded it; nothing added (its \(uploaded.jobs.count) job(s) stand)\n"
            } ?? "gantry: \(name): added \(uploaded.jobs.count) job(s) to pipeline \(uploaded.pipelineId)\n"
        FileHandle.standardError.write(Data(said.utf8))
        for job in uploaded.jobs { print(job) }
    }

    /// A file's text, at most the coordinator's limit.
    static func readFile(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("cannot read pipeline file '\(path)'") }
        defer { try? handle.close() }
        let data = try handle.read(upToCount: maximumBytes + 1) ?? Data()
        guard data.count <= maximumBytes else { throw CLIError("\(path) is larger than \(maximumBytes / 1024) KiB") }
        guard let text = String(validating: data, as: UTF8.self) else { throw CLIError("\(path) is not UTF-8 text") }
        return text
    }

    /// stdin to EOF, at most the coordinator's limit.
    static func readStandardInput() throws -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count <= maximumBytes {
            let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw CLIError("cannot read stdin: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        guard bytes.count <= maximumBytes else { throw CLIError("the pipeline on stdin is larger than \(maximumBytes / 1024) KiB") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw CLIError("the pipeline on stdin is not UTF-8 text") }
        return text
    }

    /// Percent-encodes everything but unreserved characters and `/`.
    static func queryEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

extension APIClient {
    /// A request whose body is text (a pipeline file), answered with JSON.
    func sendText<Response: Decodable>(_ method: String, _ path: String, text: String) async throws -> Response {
        var request = HTTPClientRequest(url: base + path)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/yaml; charset=utf-8")
        request.body = .bytes(ByteBuffer(string: text))
        let response = try await execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 16 * 1024 * 1024)
        try check(response.status, bytes)
        do {
            return try API.decoder.decode(Response.self, from: Data(buffer: bytes))
        } catch {
            throw CLIError("unexpected response from \(base)\(path): \(error)")
        }
    }
}
