import ArgumentParser
import Foundation
import GantryProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `gantry secret set|list|delete`: the coordinator's secrets (admin only).
///
/// A value is read from stdin, never from the command line: arguments are visible to every
/// user of the machine (`ps`, `/proc/PID/cmdline`) and end up in shell history.
struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret",
        abstract: "Set, list and delete secrets that steps receive as environment variables.",
        subcommands: [SetSecret.self, ListSecrets.self, DeleteSecret.self])

    static let scopeHelp = ArgumentHelp(
        "pipeline (any step naming it), repository:URL (pipelines submitted with that --repository), "
            + "or environment:NAME (steps with `environment: NAME`).")

    /// `/v1/secrets/NAME?scope=S`, both percent-encoded.
    static func path(_ name: String, scope: String) -> String {
        APIRoute.setSecret.path(["name": name]) + "?scope=" + percentEncode(scope)
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

struct SetSecret: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set a secret; the value is read from stdin (one trailing newline is dropped).",
        discussion: """
            Examples:
              printf %s "$TOKEN" | gantry secret set DEPLOY_TOKEN --scope environment:production
              gantry secret set NPM_TOKEN < token.txt
            On a terminal the value is asked for without echo. Values are 8 bytes to 64 KiB of UTF-8 without NUL.
            """)

    @Argument(help: "Secret name: upper-case letters, digits and _, e.g. DEPLOY_TOKEN.") var name: String
    @Option(help: SecretCommand.scopeHelp) var scope: String = "pipeline"
    @OptionGroup var connection: Connection

    /// Bytes read from stdin at most: the largest value plus a newline, and one more to
    /// tell a too-long value from one that fits.
    static let maximumRead = 64 * 1024 + 3

    func run() async throws {
        let value = try Self.readValue()
        let client = try connection.client()
        defer { client.shutdown() }
        let secret: API.Secret = try await client.send(
            "PUT", SecretCommand.path(name, scope: scope), body: API.SetSecret(value: value))
        if connection.json {
            print(String(decoding: try API.encoder.encode(secret), as: UTF8.self))
        } else {
            print("secret \(secret.name) (\(secret.scope)) \(secret.created == true ? "created" : "updated")")
        }
    }

    static func readValue() throws -> String {
        let bytes = isatty(0) == 1 ? try readWithoutEcho() : try readStandardInput()
        var value = bytes[...]
        if value.last == UInt8(ascii: "\n") {
            value = value.dropLast()
            if value.last == UInt8(ascii: "\r") { value = value.dropLast() }
        }
        guard !value.isEmpty else {
            throw CLIError("no value on stdin: pipe it in, e.g. `printf %s \"$TOKEN\" | gantry secret set NAME`")
        }
        guard value.count <= 64 * 1024 else { throw CLIError("the value is longer than 64 KiB") }
        guard let text = String(validating: value, as: UTF8.self) else {
            throw CLIError("the value is not UTF-8 text: encode binary data (base64) first")
        }
        return text
    }

    /// stdin to EOF, bounded.
    static func readStandardInput() throws -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while bytes.count < maximumRead {
            let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw CLIError("cannot read stdin: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        guard bytes.count < maximumRead else { throw CLIError("the value is longer than 64 KiB") }
        return bytes
    }

    /// One line from the terminal with echo off, restored however the read ends.
    static func readWithoutEcho() throws -> [UInt8] {
        FileHandle.standardError.write(Data("value (not echoed): ".utf8))
        var saved = termios()
        guard tcgetattr(0, &saved) == 0 else { throw CLIError("cannot read the terminal's settings") }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(0, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < maximumRead {
            let count = read(0, &byte, 1)
            if count < 0, errno == EINTR { continue }
            guard count > 0, byte != UInt8(ascii: "\n") else { break }
            line.append(byte)
        }
        return line
    }
}

struct ListSecrets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List secrets: name, scope, last change and who made it (never values).")
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let secrets: [API.Secret] = try await client.sendAllPages(APIRoute.listSecrets.path)
        if connection.json {
            print(String(decoding: try API.encoder.encode(secrets), as: UTF8.self))
            return
        }
        print("NAME                           SCOPE                          UPDATED                   BY")
        for secret in secrets {
            print(
                "\(secret.name.padding(toLength: 30, withPad: " ", startingAt: 0)) "
                    + "\(secret.scope.padding(toLength: 30, withPad: " ", startingAt: 0)) "
                    + "\((secret.updatedAt.map { "\($0)" } ?? "-").padding(toLength: 25, withPad: " ", startingAt: 0)) "
                    + "\(secret.updatedBy ?? "-")")
        }
    }
}

struct DeleteSecret: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a secret from one scope.")
    @Argument(help: "Secret name.") var name: String
    @Option(help: SecretCommand.scopeHelp) var scope: String = "pipeline"
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let secret: API.Secret = try await client.send(
            "DELETE", SecretCommand.path(name, scope: scope), body: Optional<API.SetSecret>.none)
        print(connection.json ? String(decoding: try API.encoder.encode(secret), as: UTF8.self) : "secret \(secret.name) (\(secret.scope)) deleted")
    }
}
