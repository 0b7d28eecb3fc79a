import ArgumentParser
import Foundation
import GantryCoordinator
import GantryProtocol
import Logging

/// `gantry-coordinator token create`: issues an API token on the coordinator's host, from
/// the state directory's database, for bootstrapping (the first people, a CI service
/// account) and for recovery when no admin can sign in. Works while `serve` runs.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Issue API tokens on the coordinator's host.", subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an identity if needed and print a new API token for it (shown once).")

        @Option(help: "State directory.") var state: String
        @Option(help: "Identity the token belongs to (created if it does not exist).") var identity: String
        @Option(parsing: .upToNextOption, help: "Roles for a new identity: viewer, developer, deployer[:ENV+ENV], admin.")
        var role: [String] = []
        @Option(help: "Kind of a new identity: person or service.") var kind: String = "person"
        @Option(help: "Lifetime (e.g. 30d, 12h); at most 366d.") var expires: String = "90d"
        @Option(help: "What the token is for, shown in `gantry token list`.") var description: String = ""

        func run() throws {
            let directory = CoordinatorStateDirectory(path: state)
            guard directory.isInitialized else { throw ValidationError("\(state) is not initialized") }
            let store = try StoreOpener.open(directory)
            try Authenticator.ensureBootstrapIdentity(in: store)
            let bindings: [API.RoleBinding]
            do {
                bindings = try role.map { try API.RoleBinding(parsing: $0) }
            } catch {
                throw ValidationError("\(error)")
            }
            if let existing = try store.identity(named: identity) {
                guard bindings.isEmpty || bindings == existing.bindings else {
                    throw ValidationError(
                        "\(identity) exists with roles \(existing.bindings.map(\.description).joined(separator: ", ")); "
                            + "change roles with `gantry identity update`, or omit --role")
                }
            } else {
                if let problem = StoredIdentity.nameProblem(identity) { throw ValidationError("--identity \(problem)") }
                guard let kind = StoredIdentity.Kind(rawValue: kind) else { throw ValidationError("--kind is person or service") }
                guard !bindings.isEmpty else { throw ValidationError("a new identity needs at least one --role") }
                try store.save(StoredIdentity(name: identity, kind: kind, bindings: bindings, createdAt: Date(), createdBy: "host"))
                recordHostAction(
                    store, action: "identity.create", object: "identity:\(identity)",
                    detail: ["roles": bindings.map(\.description).joined(separator: ",")])
            }
            let lifetime: Int
            do {
                lifetime = try DurationParser.seconds(expires)
            } catch {
                throw ValidationError("--expires: \(error)")
            }
            let (token, secret) = try TokenIssuer.issue(
                for: identity, description: description, lifetime: TimeInterval(lifetime), in: store)
            recordHostAction(store, action: "token.create", object: "token:\(token.id)", detail: ["identity": identity])
            FileHandle.standardError.write(
                Data("token \(token.id) for \(identity), expires \(token.expiresAt.map { "\($0)" } ?? "never"); shown once:\n".utf8))
            print(secret)
        }
    }
}
