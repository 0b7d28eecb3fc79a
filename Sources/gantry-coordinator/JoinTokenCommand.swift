import ArgumentParser
import Foundation
import GantryCoordinator
import GantryPipeline
import GantryProtocol

/// `gantry-coordinator join-token create|list|revoke`: the join tokens in the state
/// directory's database. They work on the SQLite file directly, also while `serve` runs
/// (it reads the tokens at every enrollment), so a token created or revoked here counts at
/// once.
struct JoinTokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join-token",
        abstract: "Create, list and revoke join tokens: which labels the agents enrolled with each may claim.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a join token and print it (once: only its SHA-256 is kept).",
            discussion: """
                --labels takes patterns: key=value, key=* (any value of key) or * (any label whose key is not \
                trusted). Trusted keys (`serve --trusted-label-key`, default: queue) are allowed only by a pattern \
                naming them, so `--labels 'queue=deploy,*'` lets agents claim queue=deploy and any untrusted label.

                --name binds the token to one host name: it enrolls that name only, and it is the only way to enroll \
                a name that is already enrolled (a rebuilt host) or was forgotten (`gantry agents forget`). A bound \
                token is single-use unless --uses says otherwise.
                """)

        @Option(help: "State directory created by `init`.") var state: String
        @Option(help: "Label patterns the enrolled agents may claim, comma-separated.") var labels: String = "*"
        @Option(help: "How long the token can be used: 90s, 15m, 1h, 720h, or 'never'.") var expires: String = "24h"
        @Option(help: "How many hosts may enroll with it (default: unlimited; 1 with --name).") var uses: Int?
        @Option(help: "The one host name it enrolls (also one already enrolled or forgotten).") var name: String?
        @Option(help: "A note for `join-token list` (who or what it is for).") var description: String = ""
        @Flag(help: "Print JSON for scripts.") var json = false

        func validate() throws {
            _ = try patterns()
            _ = try lifetime()
            if let uses, !(1...1_000_000).contains(uses) { throw ValidationError("--uses must be 1 to 1000000") }
            if let name, let problem = AgentID.nameProblem(name) {
                throw ValidationError("--name '\(name.logSafe(maximum: 80))' \(problem) (the host name, without a /slot)")
            }
            guard description.utf8.count <= JoinToken.maximumDescriptionLength,
                !description.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else {
                throw ValidationError(
                    "--description must be at most \(JoinToken.maximumDescriptionLength) bytes without control characters")
            }
        }

        func patterns() throws -> [LabelPattern] {
            do {
                let patterns = try LabelPattern.parseList(labels)
                guard !patterns.isEmpty else { throw ValidationError("--labels: give at least one pattern (`*` for any untrusted label)") }
                return patterns
            } catch let error as LabelPatternError {
                throw ValidationError("--labels: \(error)")
            }
        }

        /// Seconds, or nil for `never`.
        func lifetime() throws -> Int? {
            if expires == "never" { return nil }
            do {
                let seconds = try DurationParser.seconds(expires)
                guard (1...(10 * 365 * 86_400)).contains(seconds) else {
                    throw ValidationError("--expires must be 1 second to 10 years (or 'never')")
                }
                return seconds
            } catch let error as DurationParser.Failure {
                throw ValidationError("--expires must be a duration such as 1h or 720h, or 'never': \(error)")
            }
        }

        /// A token that can take over an enrolled name is used once unless asked otherwise:
        /// a copy left in a shell history then cannot enroll that name again.
        var effectiveUses: Int? { uses ?? (name == nil ? nil : 1) }

        func run() throws {
            let directory = try initializedState(state)
            let store = try StoreOpener.open(directory)
            let now = Date()
            let expiresAt = try lifetime().map { now.addingTimeInterval(TimeInterval($0)) }
            // An id is 4 random bytes: on the rare collision, draw again (a few times).
            var created: (token: JoinToken, secret: String)?
            var lastError: (any Error)?
            for _ in 0..<5 where created == nil {
                let candidate = JoinToken.create(
                    labels: try patterns(), description: description, expiresAt: expiresAt, uses: effectiveUses, now: now,
                    host: name)
                do {
                    try store.insertJoinToken(candidate.token)
                    created = candidate
                } catch {
                    lastError = error
                }
            }
            guard let (token, secret) = created.map({ ($0.token, $0.secret) }) else {
                throw ValidationError("could not store the join token: \(lastError.map { "\($0)" } ?? "unknown error")")
            }
            recordHostAction(
                store, action: "join_token.create", object: "join-token:\(token.id)",
                detail: [
                    "labels": token.labels.map(\.description).joined(separator: ","),
                    "uses": token.usesLeft.map(String.init) ?? "unlimited", "host": token.host ?? "any",
                ])
            let info = try directory.joinInfo()
            let enroll =
                "gantry-agent enroll --coordinator \(info.coordinator) --token \(secret) --ca-fingerprint \(info.caFingerprint) --state /var/lib/gantry-agent"
                + (token.host.map { " --name \($0)" } ?? "")
            if json {
                printJSON([
                    "id": token.id, "token": secret, "labels": token.labels.map(\.description).joined(separator: ","),
                    "expires_at": token.expiresAt.map { $0.formatted(.iso8601) } ?? "never",
                    "uses": token.usesLeft.map(String.init) ?? "unlimited", "host": token.host ?? "any",
                    "enroll_command": enroll,
                ])
                return
            }
            print(
                """
                Created join token \(token.id): labels \(token.labels.map(\.description).joined(separator: ",")), \
                expires \(token.expiresAt.map { $0.formatted(.iso8601) } ?? "never"), \
                uses \(token.usesLeft.map(String.init) ?? "unlimited"), host \(token.host ?? "any").
                The token is shown only now (the coordinator keeps its SHA-256 only):
                  \(secret)
                Join an agent with:
                  \(enroll)
                """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List join tokens: id, host, labels, expiry, uses left, state (never the secret).")

        @Option(help: "State directory created by `init`.") var state: String
        @Flag(help: "Print JSON for scripts.") var json = false

        func run() throws {
            let store = try StoreOpener.open(try initializedState(state))
            let now = Date()
            let rows = try store.joinTokens().map { token in
                [
                    "id": token.id, "host": token.host ?? "any", "labels": token.labels.map(\.description).joined(separator: ","),
                    "expires_at": token.expiresAt.map { $0.formatted(.iso8601) } ?? "never",
                    "uses_left": token.usesLeft.map(String.init) ?? "unlimited", "state": Self.state(of: token, now: now),
                    "description": token.description.logSafe(maximum: 80),
                ]
            }
            if json {
                printJSON(rows)
                return
            }
            let columns = ["id", "host", "labels", "expires_at", "uses_left", "state", "description"]
            let widths = columns.map { column in rows.map { $0[column, default: ""].count }.max().map { max($0, column.count) } ?? column.count }
            let line: ([String]) -> String = { cells in
                zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    .trimmingCharacters(in: .whitespaces)
            }
            print(line(columns.map { $0.uppercased() }))
            for row in rows { print(line(columns.map { row[$0, default: ""] })) }
        }

        static func state(of token: JoinToken, now: Date) -> String {
            if token.revokedAt != nil { return "revoked" }
            if let expiresAt = token.expiresAt, now >= expiresAt { return "expired" }
            if let usesLeft = token.usesLeft, usesLeft <= 0 { return "used" }
            return "active"
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a join token: no host can enroll with it from now on (hosts already enrolled keep their certificates; see `gantry agents forget`).")

        @Option(help: "State directory created by `init`.") var state: String
        @Argument(help: "The token's id (jt_...), as `join-token list` shows it.") var id: String

        func run() throws {
            let store = try StoreOpener.open(try initializedState(state))
            guard try store.revokeJoinToken(id: id, at: Date()) else {
                throw ValidationError("there is no join token '\(id.logSafe(maximum: 80))': see `gantry-coordinator join-token list --state \(state)`")
            }
            recordHostAction(store, action: "join_token.revoke", object: "join-token:\(id)")
            print("Revoked join token \(id).")
        }
    }
}

/// The state directory, or a command-line error saying to run `init`.
func initializedState(_ path: String) throws -> CoordinatorStateDirectory {
    let directory = CoordinatorStateDirectory(path: path)
    guard directory.isInitialized else {
        throw ValidationError("\(path) is not initialized: run `gantry-coordinator init --state \(path)` first")
    }
    return directory
}

func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    if let data = try? encoder.encode(value) { print(String(decoding: data, as: UTF8.self)) }
}
