import ArgumentParser
import AsyncHTTPClient
import Foundation
import GantryCLIKit
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// Options every command shares: where the API is, how to authenticate, and which CA
/// an https server must chain to.
struct Connection: ParsableArguments {
    @Option(help: "Coordinator HTTP API URL (env GANTRY_SERVER, or the one `gantry login` saved).") var server: String?
    @Option(help: "API token (env GANTRY_TOKEN, or ~/.config/gantry/token).") var token: String?
    @Option(help: "PEM CA certificate an https server must chain to (env GANTRY_CA_FILE; default the CA pinned by `gantry login`).")
    var caFile: String?
    @Flag(help: "Machine-readable JSON output.") var json = false
    @Flag(help: "Allow plain http:// to a host other than loopback (env GANTRY_INSECURE_HTTP=1): the token crosses the network in clear.")
    var insecureHttp = false

    /// `insideStep`: a command a step runs (`gantry meta-data`) also takes the server from
    /// GANTRY_API_URL and the token from GANTRY_JOB_TOKEN (after --server/GANTRY_SERVER and
    /// --token/GANTRY_TOKEN, before what `gantry login` saved), which the agent sets.
    func client(insideStep: Bool = false) throws -> APIClient {
        let environment = ProcessInfo.processInfo.environment
        let stepServer = insideStep ? environment["GANTRY_API_URL"].flatMap { $0.isEmpty ? nil : $0 } : nil
        let stepToken = insideStep ? environment["GANTRY_JOB_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } : nil
        let base = try Self.baseURL(
            server ?? environment["GANTRY_SERVER"] ?? stepServer ?? CLIConfig.read(CLIConfig.server) ?? "http://127.0.0.1:7080",
            allowInsecure: insecureHttp)
        guard let resolved = token ?? environment["GANTRY_TOKEN"] ?? stepToken ?? CLIConfig.read(CLIConfig.token),
            !resolved.isEmpty
        else {
            throw ValidationError(
                "no API token: pass --token, set GANTRY_TOKEN, or run `gantry login` "
                    + "(the coordinator's is in STATE/admin.token)")
        }
        var trust: [UInt8]?
        if let file = caFile ?? environment["GANTRY_CA_FILE"] {
            trust = try CLIConfig.readCA(file, flag: "--ca-file")
        } else if FileManager.default.fileExists(atPath: CLIConfig.ca) {
            trust = try CLIConfig.readCA(CLIConfig.ca, flag: "the CA pinned by `gantry login`")
        }
        return try APIClient(base: base, token: resolved, trustedCA: trust)
    }

    /// An http(s) URL without its trailing slash. Plain http is refused to any host but
    /// loopback: every request carries the bearer token, and the server's own loopback
    /// rule cannot protect a token the client already sent.
    static func baseURL(_ text: String, allowInsecure: Bool = false) throws -> String {
        guard text.hasPrefix("http://") || text.hasPrefix("https://"), text.utf8.count <= 2048 else {
            throw ValidationError("--server must be an http:// or https:// URL, got '\(text.prefix(100))'")
        }
        if text.hasPrefix("http://"), !allowInsecure, ProcessInfo.processInfo.environment["GANTRY_INSECURE_HTTP"] != "1",
            !isLoopback(URL(string: text)?.host ?? "")
        {
            throw ValidationError(
                "refusing to send the API token in clear to \(text.prefix(100)): use https:// (the coordinator's "
                    + "`serve --http-tls`), or pass --insecure-http if something else encrypts the path")
        }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    static func isLoopback(_ host: String) -> Bool {
        let host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
            && host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }
}

/// A thin typed wrapper over AsyncHTTPClient for the coordinator's API.
///
/// An https server is verified, hostname included, against `trustedCA` when given (the
/// coordinator's own CA) or else the system's roots; a server that fails verification is
/// an error that says how to trust the right CA, never a silent fallback.
struct APIClient: Sendable {
    let base: String
    let token: String
    let http: HTTPClient

    init(base: String, token: String, trustedCA: [UInt8]? = nil) throws {
        self.base = base
        self.token = token
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        if let trustedCA {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(trustedCA))
            } catch {
                throw CLIError("the CA certificate is not PEM: \(error)")
            }
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        // A redirect would carry the bearer token to wherever it points.
        configuration.redirectConfiguration = .disallow
        // Fail at once: retrying a refused connection or an unverifiable certificate for
        // the 10 s connect timeout only delays the message that says what to fix.
        configuration.connectionPool.retryConnectionEstablishment = false
        // `gantry run` follows up to `PipelineFollower.maximumFollowers` logs at once, each
        // a long-lived request, besides its polls: the default of 8 per host made the
        // ninth step print nothing until an earlier one ended.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = Self.connectionsPerHost
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The followers, the poll, the agents' read and a cancel, with room to spare.
    static let connectionsPerHost = PipelineFollower.maximumFollowers + 8

    func shutdown() {
        try? http.syncShutdown()
    }

    func send<Response: Decodable>(_ method: String, _ path: String) async throws -> Response {
        try await send(method, path, body: Optional<API.SubmitPipeline>.none)
    }

    func send<Body: Encodable, Response: Decodable>(_ method: String, _ path: String, body: Body?) async throws -> Response {
        var request = HTTPClientRequest(url: base + path)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try API.encoder.encode(body)))
        }
        let response = try await execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        try check(response.status, bytes)
        do {
            return try API.decoder.decode(Response.self, from: Data(buffer: bytes))
        } catch {
            throw CLIError("unexpected response from \(base)\(path): \(error)")
        }
    }

    /// Every page of a listing whose body is a JSON array, following its RFC 8288
    /// `Link: <…>; rel="next"` headers: only to paths of this API (never another host),
    /// and at most `maximumPages`.
    func sendAllPages<Item: Decodable>(_ path: String, maximumPages: Int = 100) async throws -> [Item] {
        var items: [Item] = []
        var next: String? = path
        var pages = 0
        while let current = next, pages < maximumPages {
            pages += 1
            var request = HTTPClientRequest(url: base + current)
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let response = try await execute(request, timeout: .seconds(60))
            let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
            try check(response.status, bytes)
            do {
                items += try API.decoder.decode([Item].self, from: Data(buffer: bytes))
            } catch {
                throw CLIError("unexpected response from \(base)\(current): \(error)")
            }
            next = response.headers.first(name: "Link").flatMap(Self.nextPage)
        }
        return items
    }

    /// The path of a `Link` header's `rel="next"` target, when it is one of this API's.
    static func nextPage(_ link: String) -> String? {
        guard link.utf8.count <= 4096, link.hasPrefix("</v1/"), link.hasSuffix(">; rel=\"next\""),
            let end = link.firstIndex(of: ">")
        else { return nil }
        let path = String(link[link.index(after: link.startIndex)..<end])
        return path.contains("//") || path.unicodeScalars.contains { $0.value <= 0x20 || $0.value >= 0x7F } ? nil : path
    }

    func stream(_ path: String, _ onBytes: @Sendable ([UInt8]) async -> Void) async throws {
        var request = HTTPClientRequest(url: base + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await execute(request, timeout: .hours(24))
        if response.status != .ok {
            try check(response.status, try await response.body.collect(upTo: 1024 * 1024))
        }
        for try await buffer in response.body {
            await onBytes(Array(buffer.readableBytesView))
        }
    }

    func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await http.execute(request, timeout: timeout)
        } catch {
            if Self.isCertificateFailure(error) {
                throw CLIError(
                    "cannot verify the TLS certificate of \(base): \(error). Pass the coordinator's CA with --ca-file "
                        + "(GANTRY_CA_FILE; it is STATE/ca.pem), or pin it with `gantry login --server \(base) "
                        + "--ca-fingerprint SHA256` (`gantry-coordinator join-info` prints it)")
            }
            throw CLIError(
                "cannot reach the coordinator at \(base): \(error). Is `gantry-coordinator serve` running? (--server / GANTRY_SERVER)",
                exitCode: CLIExit.unreachable)
        }
    }

    /// A TLS failure (an untrusted chain, a name mismatch), as opposed to no answer at all.
    static func isCertificateFailure(_ error: any Error) -> Bool {
        if error is NIOSSLError || error is NIOSSLExtraError { return true }
        let text = String(describing: error)
        return text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate")
    }

    /// A refusal of the server as a whole (401, 403, 5xx) exits 3, like no answer at all;
    /// any other refusal is about this request and exits 1.
    func check(_ status: HTTPResponseStatus, _ body: ByteBuffer) throws {
        guard (200..<300).contains(Int(status.code)) else {
            let exitCode = CLIExit.isRefusal(Int(status.code)) ? CLIExit.unreachable : CLIExit.failed
            if let error = try? API.decoder.decode(API.ErrorBody.self, from: Data(buffer: body)) {
                throw CLIError("\(error)", code: error.error.code, exitCode: exitCode, status: Int(status.code))
            }
            let text = TerminalText.printable(String(decoding: body.readableBytesView.prefix(2000), as: UTF8.self), limit: 500)
            throw CLIError("the coordinator answered \(status.code): \(text)", exitCode: exitCode, status: Int(status.code))
        }
    }

    /// A followed log's response: which attempt it serves (`Gantry-Log-Attempt`) and its
    /// body, for the caller to read and count (`LogFollower`).
    func openLog(_ path: String) async throws -> (attempt: Int?, body: HTTPClientResponse.Body) {
        var request = HTTPClientRequest(url: base + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await execute(request, timeout: .hours(24))
        if response.status != .ok {
            try check(response.status, try await response.body.collect(upTo: 1024 * 1024))
        }
        let attempt = response.headers.first(name: "Gantry-Log-Attempt").flatMap { $0.utf8.count <= 9 ? Int($0) : nil }
        return (attempt, response.body)
    }
}

/// `~/.config/gantry/`: what `gantry login` saves (server URL, token, pinned CA), each 0600.
enum CLIConfig {
    static var directory: String {
        (ProcessInfo.processInfo.environment["HOME"] ?? "~") + "/.config/gantry"
    }
    static var server: String { directory + "/server" }
    static var token: String { directory + "/token" }
    static var ca: String { directory + "/ca.pem" }

    /// A small text file's trimmed contents, nil when absent or empty.
    static func read(_ path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// A PEM CA file's bytes, at most 1 MiB.
    static func readCA(_ path: String, flag: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("\(flag): cannot read \(path)")
        }
        guard data.count <= 1 << 20 else { throw CLIError("\(flag): \(path) is larger than 1 MiB; it should be one PEM CA") }
        return Array(data)
    }

    /// Writes `text` to `path` (0600) inside the config directory (created 0700).
    static func save(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try SecureFile.write(text, to: path, mode: 0o600)
    }
}
