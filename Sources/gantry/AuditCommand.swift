import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry audit`: read, export and verify the coordinator's audit log (admin).
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, export (--jsonl) or verify the audit log.", subcommands: [List.self, Verify.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List audit records, oldest first (the default subcommand).")
        @OptionGroup var connection: Connection
        @Option(help: "Only records at or after this ISO 8601 time (2026-12-01T05:00:00Z).") var since: String?
        @Option(help: "Only records by this identity.") var actor: String?
        @Option(help: "Only records on this object (pipeline:ID, identity:NAME, token:ID, ...).") var object: String?
        @Option(help: "Only records after this seq (the `next` of an earlier page).") var after: Int64?
        @Option(help: "At most this many (1 to 1000; ignored with --jsonl, which exports every match).") var limit: Int = 100
        @Flag(help: "Every matching record as JSON lines, hashes included, for a SIEM.") var jsonl = false

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1 to 1000") }
            if jsonl, connection.json { throw ValidationError("give --json or --jsonl, not both") }
        }

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            var query: [(String, String)] = []
            if let since { query.append(("since", since)) }
            if let actor { query.append(("actor", actor)) }
            if let object { query.append(("object", object)) }
            if let after { query.append(("after", String(after))) }
            if jsonl {
                query.append(("format", "jsonl"))
                try await client.stream(Self.path(query)) { bytes in FileHandle.standardOutput.write(Data(bytes)) }
                return
            }
            query.append(("limit", String(limit)))
            let page: API.AuditPage = try await client.send("GET", Self.path(query))
            if connection.json {
                print(String(decoding: try API.encoder.encode(page), as: UTF8.self))
                return
            }
            print("SEQ     AT                        ACTOR            ADDRESS          OUTCOME    ACTION              OBJECT")
            for record in page.records {
                print(
                    [
                        String(record.seq).padding(7), record.at.padding(25), record.actor.padding(16),
                        (record.address ?? "-").padding(16), record.outcome.padding(10), record.action.padding(19), record.object,
                    ].joined(separator: " "))
            }
            if let next = page.next { print("(more: --after \(next))") }
        }

        /// `/v1/audit` with each value percent-encoded (a `+` in a time zone offset too).
        static func path(_ query: [(String, String)]) -> String {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            let items = query.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
            return APIRoute.listAudit.path + (items.isEmpty ? "" : "?" + items.joined(separator: "&"))
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit log's hash chain; exit 1 naming the first broken record.",
            discussion: "Keep the head it prints outside the coordinator and pass it as --anchor later: that detects deleted newest records.")
        @OptionGroup var connection: Connection
        @Option(help: "A head printed earlier (SEQ:HASH) that the chain must still contain.") var anchor: String?

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            var path = APIRoute.verifyAudit.path
            if let anchor { path += "?anchor=" + (anchor.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: ":"))) ?? "") }
            let result: API.AuditVerification = try await client.send("GET", path)
            if connection.json {
                print(String(decoding: try API.encoder.encode(result), as: UTF8.self))
            } else {
                print(result.message)
            }
            guard result.ok else {
                if !connection.json {
                    FileHandle.standardError.write(Data("gantry: the audit log is broken at record \(result.brokenSeq ?? 0)\n".utf8))
                }
                throw ExitCode(1)
            }
        }
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        padding(toLength: max(width, count), withPad: " ", startingAt: 0)
    }
}
