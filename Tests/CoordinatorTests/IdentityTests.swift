import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// Roles, role bindings and the authenticator: what a token stands for and when it stops
/// standing for anything. The route × role table over the real API is in the integration
/// tests (`AuthorizationTests`).
@Suite("Identities, roles and tokens", .timeLimit(.minutes(1)))
struct IdentityTests {
    static func identities(_ scratch: ScratchStore) throws -> any IdentityStore {
        try #require(scratch.store as? any IdentityStore)
    }

    @Test func rolesAreCumulative() {
        #expect(API.Role.viewer.permissions == [.read, .manageOwnTokens])
        #expect(API.Role.developer.permissions == [.read, .manageOwnTokens, .submit, .cancel, .retry])
        #expect(API.Role.deployer.permissions.isSuperset(of: API.Role.developer.permissions))
        #expect(API.Role.deployer.permissions.contains(.approve) && API.Role.deployer.permissions.contains(.deploy))
        #expect(!API.Role.deployer.permissions.contains(.manageSecrets))
        #expect(API.Role.admin.permissions == Set(API.Permission.allCases))
    }

    @Test func bindingsParseTheCommandLineForm() throws {
        #expect(try API.RoleBinding(parsing: "viewer") == API.RoleBinding(role: .viewer))
        #expect(try API.RoleBinding(parsing: "deployer:production+staging") == API.RoleBinding(role: .deployer, environments: ["production", "staging"]))
        #expect(try API.RoleBinding(parsing: "deployer:production+staging").description == "deployer:production+staging")
        for bad in ["root", "", "admin:production", "deployer:", "deployer:prod uction", "deployer:a++b", String(repeating: "x", count: 10_000)] {
            #expect(throws: API.RoleBindingError.self, "\(bad.prefix(20))") { try API.RoleBinding(parsing: bad) }
        }
    }

    @Test func aDeployerDeploysOnlyToItsEnvironments() {
        let limited = Principal(identity: "d", tokenID: "t", bindings: [API.RoleBinding(role: .deployer, environments: ["staging"])])
        #expect(limited.mayDeploy(to: "staging") && !limited.mayDeploy(to: "production"))
        let any = Principal(identity: "d", tokenID: "t", bindings: [API.RoleBinding(role: .deployer)])
        #expect(any.mayDeploy(to: "production"))
        let developer = Principal(identity: "x", tokenID: "t", bindings: [API.RoleBinding(role: .developer)])
        #expect(!developer.mayDeploy(to: "staging") && developer.allows(.submit) && !developer.allows(.deploy))
        let admin = Principal(identity: "a", tokenID: "t", bindings: [API.RoleBinding(role: .admin)])
        #expect(admin.mayDeploy(to: "production"))
        // The default branch's cache, which production deploys restore too, takes deploying
        // everywhere: a staging-only deployer may not save it.
        #expect(admin.mayDeployEverywhere && any.mayDeployEverywhere)
        #expect(!limited.mayDeployEverywhere && !developer.mayDeployEverywhere)
        #expect(!Principal(identity: "n", tokenID: "t", bindings: []).allows(.read))
    }

    func identity(_ name: String, _ role: API.Role, in store: any IdentityStore) throws {
        try store.save(StoredIdentity(name: name, kind: .person, bindings: [API.RoleBinding(role: role)], createdAt: Date(), createdBy: "test"))
    }

    @Test(arguments: StoreFactory.all) func aTokenIsItsIdentityUntilItExpiresOrIsRevoked(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.identities(scratch)
        try identity("dev", .developer, in: store)
        let now = Date()
        let (token, secret) = try TokenIssuer.issue(for: "dev", description: "ci", lifetime: 3600, in: store, now: now)
        #expect(secret.hasPrefix("gty_") && secret.count == 68)
        #expect(token.hash == APITokenSecret.digest(secret))
        // Only the digest is stored.
        #expect(try store.tokens(identity: "dev").allSatisfy { !String(decoding: $0.hash, as: UTF8.self).contains(secret) })
        let authenticator = Authenticator(store: store, bootstrapToken: nil)

        let principal = try authenticator.authenticate(header: "Bearer \(secret)", now: now).get()
        #expect(principal == Principal(identity: "dev", tokenID: token.id, bindings: [API.RoleBinding(role: .developer)]))
        #expect(authenticator.authenticate(header: "Bearer \(secret)", now: now.addingTimeInterval(3601)) == .failure(.expired(token.id)))
        #expect(authenticator.authenticate(header: "Bearer \(secret)x", now: now) == .failure(.unknown))
        #expect(authenticator.authenticate(header: secret, now: now) == .failure(.missing))
        #expect(authenticator.authenticate(header: nil, now: now) == .failure(.missing))
        #expect(authenticator.authenticate(header: "Bearer " + String(repeating: "a", count: 100_000), now: now) == .failure(.unknown))

        #expect(try store.revokeToken(id: token.id, identity: "someone-else", at: now) == false)
        #expect(try store.revokeToken(id: token.id, identity: "dev", at: now))
        #expect(authenticator.authenticate(header: "Bearer \(secret)", now: now) == .failure(.revoked(token.id)))
    }

    @Test(arguments: StoreFactory.all) func disablingAnIdentityRevokesEveryToken(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.identities(scratch)
        try identity("ops", .admin, in: store)
        let (_, first) = try TokenIssuer.issue(for: "ops", description: nil, lifetime: nil, in: store)
        let (_, second) = try TokenIssuer.issue(for: "ops", description: nil, lifetime: nil, in: store)
        let authenticator = Authenticator(store: store, bootstrapToken: nil)
        #expect(try store.disableIdentity(named: "ops", at: Date()))
        for secret in [first, second] {
            guard case .failure = authenticator.authenticate(header: "Bearer \(secret)") else {
                Issue.record("a disabled identity's token still works")
                return
            }
        }
        #expect(throws: TokenIssuer.Failure.disabled("ops")) {
            try TokenIssuer.issue(for: "ops", description: nil, lifetime: nil, in: store)
        }
    }

    @Test(arguments: StoreFactory.all) func theBootstrapTokenIsTheAdminIdentity(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.identities(scratch)
        try Authenticator.ensureBootstrapIdentity(in: store)
        try Authenticator.ensureBootstrapIdentity(in: store)
        let authenticator = Authenticator(store: store, bootstrapToken: "f00d")
        let principal = try authenticator.authenticate(header: "Bearer f00d").get()
        #expect(principal.identity == "admin" && principal.tokenID == "admin.token" && principal.allows(.manageIdentities))
        _ = try store.disableIdentity(named: "admin", at: Date())
        #expect(authenticator.authenticate(header: "Bearer f00d") == .failure(.disabled("admin")))
        // Without the file, there is no bootstrap token at all.
        #expect(Authenticator(store: store, bootstrapToken: nil).authenticate(header: "Bearer f00d") == .failure(.unknown))
    }

    @Test(arguments: StoreFactory.all) func tokenLifetimesAndDescriptionsAreBounded(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.identities(scratch)
        try identity("v", .viewer, in: store)
        #expect(throws: TokenIssuer.Failure.badLifetime) { try TokenIssuer.issue(for: "v", description: nil, lifetime: 10, in: store) }
        #expect(throws: TokenIssuer.Failure.badLifetime) {
            try TokenIssuer.issue(for: "v", description: nil, lifetime: 400 * 86_400, in: store)
        }
        #expect(throws: TokenIssuer.Failure.badDescription) {
            try TokenIssuer.issue(for: "v", description: "a\u{1B}[2Jb", lifetime: nil, in: store)
        }
        #expect(throws: TokenIssuer.Failure.noSuchIdentity("nobody")) {
            try TokenIssuer.issue(for: "nobody", description: nil, lifetime: nil, in: store)
        }
        let (token, _) = try TokenIssuer.issue(for: "v", description: nil, lifetime: nil, in: store)
        let lifetime = try #require(token.expiresAt).timeIntervalSince(token.createdAt)
        #expect(abs(lifetime - 90 * 86_400) < 1)
    }

    @Test func identityNamesAreBounded() {
        #expect(StoredIdentity.nameProblem("alice@example.com") == nil)
        for bad in ["", "a b", "a/b", "ä", String(repeating: "a", count: 65), "a\n"] {
            #expect(StoredIdentity.nameProblem(bad) != nil, "\(bad)")
        }
    }

    @Test func routesFillTheirPathParameters() {
        #expect(APIRoute.revokeIdentityToken.path(["name": "a b", "id": "tok_1"]) == "/v1/identities/a%20b/tokens/tok_1")
        #expect(APIRoute.forgetAgent.path(["host": "h", "slot": "1"]) == "/v1/agents/h/1/forget")
        #expect(APIRoute.setSecret.path(["name": "X/../Y"]) == "/v1/secrets/X%2F..%2FY")
    }

    @Test(arguments: StoreFactory.all) func anIdentityHoldsABoundedNumberOfLiveTokens(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.identities(scratch)
        try identity("many", .viewer, in: store)
        for _ in 0..<TokenIssuer.maximumLiveTokens {
            _ = try TokenIssuer.issue(for: "many", description: nil, lifetime: nil, in: store)
        }
        #expect(throws: TokenIssuer.Failure.tooManyTokens("many")) {
            try TokenIssuer.issue(for: "many", description: nil, lifetime: nil, in: store)
        }
        // Revoking one makes room again.
        let first = try #require(try store.tokens(identity: "many").first)
        _ = try store.revokeToken(id: first.id, identity: "many", at: Date())
        _ = try TokenIssuer.issue(for: "many", description: nil, lifetime: nil, in: store)
    }
}
