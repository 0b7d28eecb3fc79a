import ArgumentParser
import Foundation
import GantryCoordinator
import GantryProtocol

/// `gantry-coordinator audit`: the audit log read straight from the state directory's
/// database, so it works with the coordinator stopped (or on a copy kept as evidence).
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify or export the audit log from the database, offline.",
        subcommands: [Verify.self, Export.self])

    /// Opens the database that exists; never creates an empty one for a mistyped path.
    static func open(_ state: String) throws -> any GantryStore {
        let directory = CoordinatorStateDirectory(path: state)
        if try directory.databaseURL() != nil { return try StoreOpener.open(directory) }
        let path = directory.database
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure(description: "no database at \(path): pass the --state directory `serve` uses")
        }
        return try SQLiteStore(path: path)
    }

    /// A runtime failure: printed as `Error: ...` without the usage text.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the hash chain; exit 1 naming the first broken record.",
            discussion: """
                Deleting the newest records leaves a shorter chain that still verifies: keep the head \
                this prints somewhere the coordinator's host cannot change, and pass it back as --anchor.
                """)

        @Option(help: "State directory.") var state: String
        @Option(help: "A head printed earlier (SEQ:HASH) that the chain must still contain.") var anchor: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            var parsedAnchor: AuditAnchor?
            if let anchor {
                guard let parsed = AuditAnchor(parsing: anchor) else {
                    throw ValidationError("--anchor is SEQ:HASH (64 hex digits), as `audit verify` prints the head")
                }
                parsedAnchor = parsed
            }
            let result = try AuditCommand.open(state).verifyAudit(anchor: parsedAnchor)
            if json {
                print(String(decoding: try API.encoder.encode(result.apiView), as: UTF8.self))
            } else {
                print(result.summary)
            }
            if !result.ok { throw ExitCode(1) }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the audit records as JSON lines (one per record, hashes in hex) for a SIEM.")

        @Option(help: "State directory.") var state: String
        @Option(help: "Only records at or after this ISO 8601 time.") var since: String?
        @Option(help: "Only records after this seq (resume an earlier export).") var after: String?

        func run() async throws {
            let filter: AuditFilter
            do throws(AuditFilter.Invalid) {
                filter = try AuditFilter(since: since, actor: nil, object: nil, after: after, limit: nil)
            } catch {
                throw ValidationError(error.description)
            }
            let store = try AuditCommand.open(state)
            try await store.forEachAuditBatch(filter) { batch in
                var text = Data()
                for record in batch {
                    text.append(try API.encoder.encode(record.apiView))
                    text.append(UInt8(ascii: "\n"))
                }
                FileHandle.standardOutput.write(text)
            }
        }
    }
}
