import ArgumentParser
import Foundation
import GantryProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `gantry meta-data set|get|keys`: small outputs passed between a pipeline's steps.
///
/// Inside a step everything comes from the environment the agent sets: the pipeline from
/// GANTRY_PIPELINE_ID, the API from GANTRY_API_URL, the job token from GANTRY_JOB_TOKEN
/// (an explicit --token or GANTRY_TOKEN wins). From a workstation, pass --pipeline.
struct MetaDataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meta-data",
        abstract: "Set and read a pipeline's meta-data: values one step computes and a later step reads.",
        discussion: """
            Inside a step:
              gantry meta-data set version 1.2.3
              echo "$TAG" | gantry meta-data set image-tag -
              gantry meta-data get version
              gantry meta-data get channel --default stable
            Keys are 1-255 bytes of letters, digits and _ . : / -; values are text up to 64 KiB; a pipeline
            holds at most 1000 keys.
            """,
        subcommands: [SetMetaData.self, GetMetaData.self, MetaDataKeys.self])
}

/// The options every meta-data command takes.
struct MetaDataTarget: ParsableArguments {
    @Option(help: "Pipeline id (default: GANTRY_PIPELINE_ID, which the agent sets in a step).") var pipeline: String?
    @OptionGroup var connection: Connection

    func pipelineID() throws -> String {
        guard let id = pipeline ?? ProcessInfo.processInfo.environment["GANTRY_PIPELINE_ID"], !id.isEmpty else {
            throw ValidationError("no pipeline: pass --pipeline ID (inside a step GANTRY_PIPELINE_ID names it)")
        }
        guard id.utf8.count <= 128 else { throw ValidationError("--pipeline is longer than 128 bytes") }
        return id
    }

    func client() throws -> APIClient { try connection.client(insideStep: true) }
}

struct SetMetaData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Set KEY to VALUE for the pipeline (an existing value is replaced).")

    @Argument(help: "Key: 1-255 bytes of letters, digits and _ . : / -") var key: String
    @Argument(help: "Value (text, at most 64 KiB); `-` reads it from stdin, dropping one trailing newline.") var value: String
    @OptionGroup var target: MetaDataTarget

    /// Bytes read from stdin at most: the largest value, a CR LF, and one more to tell a
    /// too-long value from one that fits.
    static let maximumRead = 64 * 1024 + 3

    func run() async throws {
        let pipeline = try target.pipelineID()
        let text = value == "-" ? try Self.readStandardInput() : value
        guard text.utf8.count <= 64 * 1024 else { throw CLIError("the value is longer than 64 KiB") }
        let client = try target.client()
        defer { client.shutdown() }
        let stored: API.MetaData = try await client.send(
            "PUT", APIRoute.setMetaData.path(["id": pipeline, "key": key]), body: API.SetMetaData(value: text))
        if target.connection.json {
            print(String(decoding: try API.encoder.encode(stored), as: UTF8.self))
        }
    }

    /// stdin to EOF, bounded, as UTF-8 text without one trailing newline.
    static func readStandardInput() throws -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while bytes.count < maximumRead {
            let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, min($0.count, maximumRead - bytes.count)) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw CLIError("cannot read stdin: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        guard bytes.count < maximumRead else { throw CLIError("the value on stdin is longer than 64 KiB") }
        var value = bytes[...]
        if value.last == UInt8(ascii: "\n") {
            value = value.dropLast()
            if value.last == UInt8(ascii: "\r") { value = value.dropLast() }
        }
        guard let text = String(validating: value, as: UTF8.self) else {
            throw CLIError("the value is not UTF-8 text: encode binary data (base64) first")
        }
        return text
    }
}

struct GetMetaData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Print KEY's value (exactly, with one newline added), or fail if it is not set.")

    @Argument(help: "Key.") var key: String
    @Option(help: "Print this instead of failing when the key is not set.") var `default`: String?
    @OptionGroup var target: MetaDataTarget

    func run() async throws {
        let pipeline = try target.pipelineID()
        let client = try target.client()
        defer { client.shutdown() }
        let value: String
        do {
            let stored: API.MetaData = try await client.send("GET", APIRoute.getMetaData.path(["id": pipeline, "key": key]))
            if target.connection.json {
                print(String(decoding: try API.encoder.encode(stored), as: UTF8.self))
                return
            }
            value = stored.value
        } catch let error as CLIError where error.code == "not_set" {
            guard let fallback = self.default else { throw error }
            value = fallback
        }
        print(value)
    }
}

struct MetaDataKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "List the keys set for the pipeline.")

    @OptionGroup var target: MetaDataTarget

    func run() async throws {
        let pipeline = try target.pipelineID()
        let client = try target.client()
        defer { client.shutdown() }
        let listed: API.MetaDataKeys = try await client.send("GET", APIRoute.listMetaData.path(["id": pipeline]))
        if target.connection.json {
            print(String(decoding: try API.encoder.encode(listed), as: UTF8.self))
        } else {
            for key in listed.keys { print(key) }
            if listed.truncated { FileHandle.standardError.write(Data("gantry: more keys exist than were listed\n".utf8)) }
        }
    }
}
