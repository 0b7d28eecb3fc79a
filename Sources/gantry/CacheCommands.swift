import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry cache list|clear`: the build caches steps save (`cache:`), by branch scope.
struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "List and clear build caches (each branch writes its own scope `branch:NAME`).",
        subcommands: [ListCaches.self, ClearCaches.self])
}

struct ListCaches: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List caches, newest use last.")

    @Option(help: "Only this scope, e.g. branch:main.") var scope: String?
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        var path = APIRoute.listCaches.path([:])
        if let scope { path += "?scope=" + APIRoute.percentEncodeQuery(scope) }
        let list: API.CacheList = try await client.send("GET", path)
        if connection.json {
            print(String(decoding: try API.encoder.encode(list), as: UTF8.self))
            return
        }
        for entry in list.caches.sorted(by: { $0.lastUsedAt < $1.lastUsedAt }) {
            print("\(entry.scope)  \(entry.key)  \(entry.size) bytes  sha256 \(entry.sha256.prefix(12))  last used \(entry.lastUsedAt)")
        }
    }
}

struct ClearCaches: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clear", abstract: "Delete caches: all of them, one scope's, or one key (needs manage_caches: admin).")

    @Option(help: "Only this scope, e.g. branch:feature-x.") var scope: String?
    @Option(help: "Only this key.") var key: String?
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        var query: [String] = []
        if let scope { query.append("scope=" + APIRoute.percentEncodeQuery(scope)) }
        if let key { query.append("key=" + APIRoute.percentEncodeQuery(key)) }
        let path = APIRoute.clearCaches.path([:]) + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        let cleared: API.CacheList = try await client.send("DELETE", path)
        if connection.json {
            print(String(decoding: try API.encoder.encode(cleared), as: UTF8.self))
        } else {
            print("cleared \(cleared.caches.count) cache(s)")
        }
    }
}
