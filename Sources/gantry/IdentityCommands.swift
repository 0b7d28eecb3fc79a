import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry whoami`: the identity and roles behind the token in use.
struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Show the identity, token and roles you are using.")
    @OptionGroup var connection: Connection

    func run() async throws {
        let me: API.WhoAmI = try await connection.call("GET", APIRoute.whoami.path)
        try connection.show(me) {
            "\($0.identity) (token \($0.tokenId)): \($0.roles.map(\.description).joined(separator: ", "))\n"
                + "may: \($0.permissions.joined(separator: ", "))"
        }
    }
}

/// `gantry token create|list|revoke`: one's own API tokens, or (admin) another
/// identity's with `--identity`.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke API tokens.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; its secret is printed once, on stdout.")
        @OptionGroup var connection: Connection
        @Option(help: "Another identity's token (admin only).") var identity: String?
        @Option(help: "Lifetime, e.g. 30d or 12h (default 90d, at most 366d).") var expires: String?
        @Option(help: "What it is for.") var description: String?

        func run() async throws {
            let path = identity.map { APIRoute.createIdentityToken.path(["name": $0]) } ?? APIRoute.createOwnToken.path
            let created: API.CreatedToken = try await connection.call(
                "POST", path, body: API.CreateToken(description: description, expiresIn: expires))
            if connection.json { return print(try encodedJSON(created)) }
            FileHandle.standardError.write(
                Data("token \(created.token.id) for \(created.token.identity), expires \(created.token.expiresAt.map { "\($0)" } ?? "never"); shown once:\n".utf8))
            print(created.secret)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var connection: Connection
        @Option(help: "Another identity's tokens (admin only).") var identity: String?

        func run() async throws {
            let path = identity.map { APIRoute.listIdentityTokens.path(["name": $0]) } ?? APIRoute.listOwnTokens.path
            let client = try connection.client()
            defer { client.shutdown() }
            let tokens: [API.Token] = try await client.sendAllPages(path)
            if connection.json { return print(try encodedJSON(tokens)) }
            print("TOKEN             IDENTITY        STATE     EXPIRES                LAST USED              DESCRIPTION")
            let now = Date()
            for token in tokens {
                let state = token.revokedAt != nil ? "revoked" : (token.expiresAt.map { $0 <= now } ?? false) ? "expired" : "active"
                print(
                    [
                        token.id.padded(17), token.identity.padded(15), state.padded(9),
                        (token.expiresAt.map { "\($0)" } ?? "never").padded(22), (token.lastUsedAt.map { "\($0)" } ?? "-").padded(22),
                        token.description,
                    ].joined(separator: " "))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: refused from the next request on.")
        @Argument(help: "Token id (tok_…).") var id: String
        @OptionGroup var connection: Connection
        @Option(help: "The identity holding it, when it is not yours (admin only).") var identity: String?

        func run() async throws {
            let path = identity.map { APIRoute.revokeIdentityToken.path(["name": $0, "id": id]) }
                ?? APIRoute.revokeOwnToken.path(["id": id])
            let token: API.Token = try await connection.call("DELETE", path)
            try connection.show(token) { "revoked \($0.id) of \($0.identity)" }
        }
    }
}

/// `gantry identity create|list|update|disable` (admin).
struct IdentityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity", abstract: "Manage people and service accounts (admin).",
        subcommands: [Create.self, List.self, Update.self, Disable.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an identity with roles.")
        @Argument(help: "Name (letters, digits, - _ . @).") var name: String
        @Option(parsing: .upToNextOption, help: "Roles: viewer, developer, deployer[:ENV+ENV], admin.") var role: [String]
        @Option(help: "person or service.") var kind: String = "person"
        @OptionGroup var connection: Connection

        func run() async throws {
            let identity: API.Identity = try await connection.call(
                "POST", APIRoute.createIdentity.path, body: API.SaveIdentity(name: name, kind: kind, roles: role))
            try connection.show(identity, IdentityCommand.describe)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List identities.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            let identities: [API.Identity] = try await client.sendAllPages(APIRoute.listIdentities.path)
            try connection.show(identities) { $0.map(IdentityCommand.describe).joined(separator: "\n") }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace an identity's roles.")
        @Argument(help: "Name.") var name: String
        @Option(parsing: .upToNextOption, help: "The new roles.") var role: [String]
        @Option(help: "person or service.") var kind: String?
        @OptionGroup var connection: Connection

        func run() async throws {
            let identity: API.Identity = try await connection.call(
                "PUT", APIRoute.updateIdentity.path(["name": name]), body: API.SaveIdentity(name: nil, kind: kind, roles: role))
            try connection.show(identity, IdentityCommand.describe)
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an identity and revoke all its tokens.")
        @Argument(help: "Name.") var name: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let identity: API.Identity = try await connection.call("DELETE", APIRoute.disableIdentity.path(["name": name]))
            try connection.show(identity, IdentityCommand.describe)
        }
    }

    static func describe(_ identity: API.Identity) -> String {
        let state = identity.disabledAt.map { "disabled \($0)" } ?? "enabled"
        return "\(identity.name.padded(20)) \(identity.kind.padded(8)) \(state.padded(10)) \(identity.roles.map(\.description).joined(separator: ", "))"
    }
}

func encodedJSON<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try API.encoder.encode(value), as: UTF8.self)
}

extension String {
    func padded(_ width: Int) -> String {
        padding(toLength: max(width, count), withPad: " ", startingAt: 0)
    }
}
