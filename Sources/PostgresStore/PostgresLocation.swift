import Foundation
import NIOSSL
import PostgresNIO

/// Where the database is, from `--database postgres://…`.
///
/// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, TLS chosen by `sslmode`:
///   `disable`, `require` (encrypted, the server's certificate verified against the system
///   trust roots or `sslrootcert`) or `verify-full` (the same; kept for libpq's spelling).
///   Without `sslmode`, loopback hosts default to `disable` and others to `require`: a
///   coordinator never sends its database password in clear across a network unasked.
/// - `postgres:///DATABASE?host=/run/postgresql&user=gantry`: a Unix socket directory,
///   libpq's convention (the socket is `DIR/.s.PGSQL.PORT`).
/// - A password may also come from `PGPASSWORD`, so it stays out of `ps` and unit files.
public struct PostgresLocation: Sendable, Equatable {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case socket(path: String)
    }

    public enum TLSMode: String, Sendable, Equatable {
        case disable, require
        case verifyFull = "verify-full"
    }

    public var endpoint: Endpoint
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var rootCertificate: String?

    public static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard Self.isPostgresURL(text), let components = URLComponents(string: text) else {
            throw PostgresStoreError.badURL("not a postgres:// URL")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard let value = item.value else { throw PostgresStoreError.badURL("parameter \(item.name) has no value") }
            query[item.name] = value
        }
        let known: Set = ["sslmode", "sslrootcert", "host", "port", "user", "password"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw PostgresStoreError.badURL("unknown parameter \(unknown)")
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty, !path.contains("/") else { throw PostgresStoreError.badURL("name one database after the host: /DATABASE") }
        self.database = path
        let portText = query["port"] ?? components.port.map(String.init) ?? "5432"
        guard let port = Int(portText), (1...65_535).contains(port) else { throw PostgresStoreError.badURL("port \(portText) is not 1-65535") }
        let host = query["host"] ?? components.host ?? ""
        if host.hasPrefix("/") {
            self.endpoint = .socket(path: host + "/.s.PGSQL.\(port)")
        } else {
            guard !host.isEmpty else { throw PostgresStoreError.badURL("no host (use ?host=/socket/dir for a Unix socket)") }
            self.endpoint = .tcp(host: host, port: port)
        }
        guard let user = components.user ?? query["user"] ?? environment["PGUSER"], !user.isEmpty else {
            throw PostgresStoreError.badURL("no user: postgres://USER@HOST/DATABASE")
        }
        self.user = user
        self.password = components.password ?? query["password"] ?? environment["PGPASSWORD"]
        if let mode = query["sslmode"] {
            guard let parsed = TLSMode(rawValue: mode) else {
                throw PostgresStoreError.badURL("sslmode \(mode) is not disable, require or verify-full")
            }
            self.tls = parsed
        } else if case .tcp(let host, _) = endpoint, !["127.0.0.1", "::1", "localhost"].contains(host) {
            self.tls = .require
        } else {
            self.tls = .disable
        }
        if case .socket = endpoint, tls != .disable { throw PostgresStoreError.badURL("TLS over a Unix socket: use sslmode=disable") }
        self.rootCertificate = query["sslrootcert"]
    }

    /// The URL with its password replaced, for logs and `ps`-visible messages.
    public var redacted: String {
        let credentials = password == nil ? user : user + ":***"
        switch endpoint {
        case .tcp(let host, let port): return "postgres://\(credentials)@\(host):\(port)/\(database)"
        case .socket(let path): return "postgres://\(credentials)@[\(path)]/\(database)"
        }
    }

    func clientConfiguration() throws -> PostgresClient.Configuration {
        switch endpoint {
        case .socket(let path):
            return PostgresClient.Configuration(unixSocketPath: path, username: user, password: password, database: database)
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS
            switch self.tls {
            case .disable: tls = .disable
            case .require, .verifyFull:
                var configuration = TLSConfiguration.makeClientConfiguration()
                configuration.minimumTLSVersion = .tlsv12
                if let rootCertificate { configuration.trustRoots = .file(rootCertificate) }
                tls = .require(configuration)
            }
            return PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
    }
}
