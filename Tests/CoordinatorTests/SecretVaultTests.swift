import Foundation
@testable import GantryCoordinator
import GantryPipeline
import GantryProtocol
import Logging
import Testing

/// The vault against each real store and a state directory: what is stored, which scope
/// a step gets, key rotation, and the lease and submission edges of the core.
@Suite("Secret vault", .timeLimit(.minutes(1)))
final class SecretVaultTests {
    let directory: String
    let state: CoordinatorStateDirectory
    let logger = Logger(label: "test")
    /// The store under test: each test opens it first (`use`).
    private var scratch: ScratchStore?

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-secrets-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        state = CoordinatorStateDirectory(path: directory)
    }

    /// SQLite's file is the state directory's, where `databaseBytes` looks.
    func use(_ factory: StoreFactory) throws {
        if factory.name == StoreFactory.sqlite.name {
            let store = try SQLiteStore(path: state.database)
            scratch = ScratchStore(store: store) {}
        } else {
            scratch = try factory.make()
        }
        _ = try #require(scratch?.store as? any SecretStore)
    }

    var coordinatorStore: any CoordinatorStore { scratch!.store }
    var store: any CoordinatorStore & SecretStore { coordinatorStore as! any CoordinatorStore & SecretStore }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Every byte SQLite has written: the database and its write-ahead log.
    func databaseBytes() throws -> Data {
        var data = Data()
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: state.database + suffix) {
            data += try Data(contentsOf: URL(fileURLWithPath: state.database + suffix))
        }
        return data
    }

    @Test(arguments: StoreFactory.all) func storesOnlySealedValuesAndReloadsThem(_ factory: StoreFactory) throws {
        try use(factory)
        let vault = try SecretVault.open(state: state, store: store, logger: logger)
        #expect(FileManager.default.fileExists(atPath: state.secretsKey))
        #expect(try vault.set(name: "DEPLOY_TOKEN", scope: .environment("production"), value: "prod-value-123", by: "alice"))
        #expect(try !vault.set(name: "DEPLOY_TOKEN", scope: .environment("production"), value: "prod-value-456", by: "bob"))
        try vault.set(name: "NPM_TOKEN", scope: .pipeline, value: "npm-value-789", by: "alice")
        if scratch?.isPostgres == false {
            let bytes = try databaseBytes()
            for value in ["prod-value-123", "prod-value-456", "npm-value-789"] {
                #expect(bytes.range(of: Data(value.utf8)) == nil, "\(value) is in the database in clear")
            }
        }
        let rows = try store.secrets()
        #expect(rows.map(\.name) == ["DEPLOY_TOKEN", "NPM_TOKEN"])
        #expect(rows[0].updatedBy == "bob" && rows[0].createdAt <= rows[0].updatedAt)

        let list = vault.list()
        #expect(list.map(\.name) == ["DEPLOY_TOKEN", "NPM_TOKEN"])
        #expect(list[0].scope == .environment("production") && list[0].updatedBy == "bob")

        let reloaded = try SecretVault.load(store: store, key: try SecretKey.read(from: state.secretsKey), logger: logger)
        #expect(reloaded.resolve(["DEPLOY_TOKEN"], repository: "", environment: "production").values == ["DEPLOY_TOKEN": "prod-value-456"])
        #expect(try reloaded.delete(name: "NPM_TOKEN", scope: .pipeline))
        #expect(try !reloaded.delete(name: "NPM_TOKEN", scope: .pipeline))
        #expect(try store.secrets().map(\.name) == ["DEPLOY_TOKEN"])
    }

    @Test(arguments: StoreFactory.all) func theMostSpecificApplicableScopeWins(_ factory: StoreFactory) throws {
        try use(factory)
        let vault = try SecretVault.open(state: state, store: store, logger: logger)
        try vault.set(name: "TOKEN", scope: .pipeline, value: "pipeline-value", by: "a")
        try vault.set(name: "TOKEN", scope: .repository("https://r/app.git"), value: "repository-value", by: "a")
        try vault.set(name: "TOKEN", scope: .environment("production"), value: "production-value", by: "a")
        try vault.set(name: "PROD_ONLY", scope: .environment("production"), value: "production-only", by: "a")

        func get(_ repository: String, _ environment: String?) -> [String: String] {
            vault.resolve(["TOKEN", "PROD_ONLY"], repository: repository, environment: environment).values
        }
        #expect(get("", nil) == ["TOKEN": "pipeline-value"])
        #expect(get("https://r/other.git", nil) == ["TOKEN": "pipeline-value"])
        #expect(get("https://r/app.git", nil) == ["TOKEN": "repository-value"])
        #expect(get("https://r/app.git", "staging") == ["TOKEN": "repository-value"])
        #expect(get("https://r/app.git", "production") == ["TOKEN": "production-value", "PROD_ONLY": "production-only"])
        #expect(get("", "production") == ["TOKEN": "production-value", "PROD_ONLY": "production-only"])
        #expect(vault.resolve(["PROD_ONLY"], repository: "", environment: nil).missing == ["PROD_ONLY"])
        #expect(vault.resolve(["PROD_ONLY"], repository: "", environment: "productionx").missing == ["PROD_ONLY"])
    }

    @Test(arguments: StoreFactory.all) func setRefusesBadNamesAndValuesAndStoresNothing(_ factory: StoreFactory) throws {
        try use(factory)
        let vault = try SecretVault.open(state: state, store: store, logger: logger)
        #expect(throws: SecretRuleError.self) { try vault.set(name: "TOKEN", scope: .pipeline, value: "short", by: "a") }
        #expect(throws: SecretRuleError.self) { try vault.set(name: "PATH", scope: .pipeline, value: "long-enough", by: "a") }
        #expect(try store.secrets().isEmpty && vault.list().isEmpty)
    }

    @Test(arguments: StoreFactory.all) func aMovedRowIsNotServed(_ factory: StoreFactory) throws {
        try use(factory)
        let vault = try SecretVault.open(state: state, store: store, logger: logger)
        try vault.set(name: "TOKEN", scope: .environment("staging"), value: "staging-value", by: "a")
        // Someone with write access to the database copies the staging row to production.
        try scratch?.execute("UPDATE secrets SET scope = 'environment:production'")
        let reloaded = try SecretVault.load(store: store, key: try SecretKey.read(from: state.secretsKey), logger: logger)
        #expect(reloaded.resolve(["TOKEN"], repository: "", environment: "production").missing == ["TOKEN"])
        #expect(reloaded.list().isEmpty)
    }

    @Test(arguments: StoreFactory.all) func rotateKeyReencryptsAndTheOldKeyNoLongerOpens(_ factory: StoreFactory) throws {
        try use(factory)
        let before: SecretKey
        do {
            let vault = try SecretVault.open(state: state, store: store, logger: logger)
            try vault.set(name: "TOKEN", scope: .pipeline, value: "pipeline-value", by: "a")
            try vault.set(name: "TOKEN", scope: .environment("production"), value: "production-value", by: "a")
            before = try SecretKey.read(from: state.secretsKey)
            // Refused while a coordinator (its vault) holds the key.
            #expect(throws: SecretKeyError.locked(state.secretsKey)) { try SecretKeyRotation.rotate(state: state, store: store) }
        }
        let result = try SecretKeyRotation.rotate(state: state, store: store)
        #expect(result.resealed == 2 && result.previousKeyID == before.id && result.newKeyID != before.id)
        let after = try SecretKey.read(from: state.secretsKey)
        #expect(after.id == result.newKeyID)
        #expect(!FileManager.default.fileExists(atPath: state.secretsKey + ".new"))
        #expect(!FileManager.default.fileExists(atPath: state.secretsKey + ".old"))
        let rows = try store.secrets()
        #expect(rows.allSatisfy { $0.keyId == after.id })
        for row in rows {
            let scope = try SecretScope(parsing: row.scope)
            #expect(throws: SecretBoxError.self) { try SecretBox.open(row.sealed, name: row.name, scope: scope, key: before) }
        }
        let reopened = try SecretVault.open(state: state, store: store, logger: logger)
        #expect(reopened.resolve(["TOKEN"], repository: "", environment: "production").values == ["TOKEN": "production-value"])
    }

    @Test(arguments: StoreFactory.all) func anInterruptedRotationStillOpensAndFinishes(_ factory: StoreFactory) throws {
        try use(factory)
        do {
            let vault = try SecretVault.open(state: state, store: store, logger: logger)
            try vault.set(name: "TOKEN", scope: .pipeline, value: "pipeline-value", by: "a")
        }
        // The rotation wrote the next key and re-sealed the rows, then stopped before the rename.
        let next = SecretKey.generate()
        try next.write(to: state.secretsKey + ".new")
        let old = try SecretKey.read(from: state.secretsKey)
        _ = try store.resealAll { row in
            var row = row
            row.sealed = try SecretBox.seal(
                try SecretBox.open(row.sealed, name: row.name, scope: .pipeline, key: old), name: row.name, scope: .pipeline, key: next)
            row.keyId = next.id
            return row
        }
        do {
            let vault = try SecretVault.open(state: state, store: store, logger: logger)
            #expect(vault.resolve(["TOKEN"], repository: "", environment: nil).values == ["TOKEN": "pipeline-value"])
        }
        let result = try SecretKeyRotation.rotate(state: state, store: store)
        #expect(result.newKeyID == next.id)
        #expect(try SecretKey.read(from: state.secretsKey).id == next.id)
    }

    // MARK: - The core's edges

    func makeCore(_ vault: SecretVault) throws -> CoordinatorCore {
        try CoordinatorCore(
            store: store, configuration: .init(heartbeatInterval: .seconds(1), leaseTTL: .seconds(15)), logger: logger, secrets: vault)
    }

    @Test(arguments: StoreFactory.all) func submissionNeedsEverySecretForItsStep(_ factory: StoreFactory) async throws {
        try use(factory)
        let vault = try SecretVault.open(state: state, store: store, logger: logger)
        try vault.set(name: "PROD_TOKEN", scope: .environment("production"), value: "production-value", by: "a")
        let core = try makeCore(vault)
        let yaml = "steps:\n  - key: build\n    command: make\n    secrets: [PROD_TOKEN]\n"
        do {
            _ = try await core.submit(.init(yaml: yaml, file: "ci.yml"))
            Issue.record("a step outside production was given a production-only secret")
        } catch let error as PipelineError {
            #expect(error.line == 4 && error.column == 14 && error.file == "ci.yml")
            #expect(error.message.contains("PROD_TOKEN") && error.message.contains("gantry secret set PROD_TOKEN"))
            #expect(!error.message.contains("production-value"))
        }
        let ok = try await core.submit(.init(yaml: yaml + "    environment: production\n"))
        #expect(ok.jobs.count == 1)
        #expect(try store.job(id: ok.jobs[0].id)?.secrets == ["PROD_TOKEN"])
        #expect(try store.job(id: ok.jobs[0].id)?.environment == "production")
        await #expect(throws: PipelineError.self) {
            _ = try await core.submit(
                .init(yaml: yaml + "    environment: production\n", env: ["PROD_TOKEN": "in clear"]))
        }
    }

    @Test(arguments: StoreFactory.all) func aStepMayNotReceiveMoreSecretBytesThanAnAgentAccepts(_ factory: StoreFactory) async throws {
        try use(factory)
        let vault = try SecretVault.open(state: state, store: store, logger: logger)
        let names = (1...17).map { "BIG_\($0)" }
        for name in names {
            try vault.set(name: name, scope: .pipeline, value: String(repeating: "v", count: SecretValueRule.maximumBytes), by: "a")
        }
        let core = try makeCore(vault)
        let list = names.joined(separator: ", ")
        await #expect(throws: PipelineError.self) {
            _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n    secrets: [\(list)]\n"))
        }
        let fits = names.prefix(15).joined(separator: ", ")
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n    secrets: [\(fits)]\n"))
    }

    @Test(arguments: StoreFactory.all) func leasesCarryOnlyTheSecretsTheirScopeAllows(_ factory: StoreFactory) async throws {
        try use(factory)
        let vault = try SecretVault.open(state: state, store: store, logger: logger)
        try vault.set(name: "SHARED_TOKEN", scope: .pipeline, value: "pipeline-value", by: "a")
        try vault.set(name: "PROD_TOKEN", scope: .environment("production"), value: "production-value", by: "a")
        let core = try makeCore(vault)
        _ = try await core.submit(
            .init(
                yaml: """
                    steps:
                      - key: test
                        command: make test
                        secrets: [SHARED_TOKEN]
                      - key: deploy
                        command: ./deploy
                        environment: production
                        secrets: [SHARED_TOKEN, PROD_TOKEN]
                      - key: plain
                        command: echo
                      - key: again
                        command: make test
                        secrets: [SHARED_TOKEN]
                    """))
        var leases: [String: Gantry_V1_Lease] = [:]
        for slot in 1...4 {
            let session = AgentSession(agentID: "h/\(slot)")
            var frames = session.outbound.makeAsyncIterator()
            _ = try await core.hello(
                .with {
                    $0.minVersion = 1
                    // The fourth agent speaks version 2: it would not mask secrets.
                    $0.maxVersion = slot == 4 ? 2 : 3
                    $0.agentID = "h/\(slot)"
                    $0.capacity = 1
                }, certificateName: "h", session: session
            ).get()
            await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/\(slot)", session: session)
            var lease: Gantry_V1_Lease?
            for _ in 0..<10 {
                guard let frame = await frames.next() else { break }
                if case .lease(let received) = frame.body {
                    lease = received
                    break
                }
            }
            guard let received = lease else { continue }
            leases[slot == 4 ? "v2" : received.stepKey] = received
        }
        #expect(leases["test"]?.secrets == ["SHARED_TOKEN": "pipeline-value"])
        #expect(leases["test"]?.environment == "")
        #expect(leases["deploy"]?.secrets == ["SHARED_TOKEN": "pipeline-value", "PROD_TOKEN": "production-value"])
        #expect(leases["deploy"]?.environment == "production")
        #expect(leases["plain"]?.secrets.isEmpty == true)
        // An agent of protocol version 2 ignores Lease.secrets and would not mask them:
        // its lease carries none.
        #expect(leases["v2"]?.stepKey == "again")
        #expect(leases["v2"]?.secrets.isEmpty == true)
        await core.flush()
        let bytes = try databaseBytes()
        #expect(bytes.range(of: Data("production-value".utf8)) == nil)
        #expect(bytes.range(of: Data("pipeline-value".utf8)) == nil)
    }
}
