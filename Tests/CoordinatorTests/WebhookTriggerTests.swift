import Crypto
import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import GantryProtocol
import GantryTransferRules
import Logging
import Synchronization
import Testing

/// The pure parts of webhook triggers: who signed a delivery (GitHub, Gitea, GitLab),
/// what a push says, which projects and refs are accepted; the projects' secrets in the
/// store, sealed and re-sealed by `rotate-key`; and what every back end of `ProjectStore`
/// must do with projects and deliveries.
@Suite("Webhook triggers", .timeLimit(.minutes(1)))
struct WebhookTriggerTests {
    static let secret = "0123456789abcdef0123456789abcdef"
    static let body = Array(#"{"ref":"refs/heads/main","after":"\#(String(repeating: "a", count: 40))"}"#.utf8)

    static func hmac(_ body: [UInt8], _ secret: String = secret) -> String {
        HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))).map { String(format: "%02x", $0) }.joined()
    }

    @Test func githubGiteaAndGitlabSignaturesAreCheckedAndEverythingElseRefused() {
        let signature = Self.hmac(Self.body)
        let github = WebhookSignature.verify(
            headers: ["x-hub-signature-256": "sha256=" + signature, "x-github-event": "push", "x-github-delivery": "d-1"],
            body: Self.body, secret: Self.secret)
        #expect(github == .success(.init(sender: .github, event: "push", deliveryID: "d-1")))
        // Upper-case hex is the same signature.
        let upper = WebhookSignature.verify(
            headers: ["x-hub-signature-256": "sha256=" + signature.uppercased(), "x-github-event": "push"], body: Self.body,
            secret: Self.secret)
        #expect((try? upper.get())?.sender == .github)
        let gitea = WebhookSignature.verify(
            headers: ["x-gitea-signature": signature, "x-gitea-event": "push", "x-gitea-delivery": "g-1"], body: Self.body,
            secret: Self.secret)
        #expect(gitea == .success(.init(sender: .gitea, event: "push", deliveryID: "g-1")))
        let gitlab = WebhookSignature.verify(
            headers: ["x-gitlab-token": Self.secret, "x-gitlab-event": "Push Hook", "x-gitlab-event-uuid": "u-1"], body: Self.body,
            secret: Self.secret)
        #expect(gitlab == .success(.init(sender: .gitlab, event: "Push Hook", deliveryID: "u-1")))

        // One changed byte of the body, another secret, a truncated or prefix-less
        // signature, no signature at all.
        var tampered = Self.body
        tampered[10] ^= 1
        #expect(WebhookSignature.verify(headers: ["x-hub-signature-256": "sha256=" + signature], body: tampered, secret: Self.secret)
            == .failure(.mismatch(.github)))
        #expect(
            WebhookSignature.verify(headers: ["x-gitea-signature": Self.hmac(Self.body, "another secret")], body: Self.body, secret: Self.secret)
                == .failure(.mismatch(.gitea)))
        #expect(
            WebhookSignature.verify(headers: ["x-hub-signature-256": signature], body: Self.body, secret: Self.secret)
                == .failure(.malformed("X-Hub-Signature-256 must start with `sha256=`")))
        if case .failure(.malformed) = WebhookSignature.verify(
            headers: ["x-hub-signature-256": "sha256=" + signature.dropLast(2)], body: Self.body, secret: Self.secret)
        {} else { Issue.record("a truncated signature was not refused as malformed") }
        #expect(
            WebhookSignature.verify(headers: ["x-gitlab-token": Self.secret + "x"], body: Self.body, secret: Self.secret)
                == .failure(.mismatch(.gitlab)))
        #expect(WebhookSignature.verify(headers: ["x-github-event": "push"], body: Self.body, secret: Self.secret) == .failure(.missing))
    }

    @Test func aDeliveryWithoutAnIdIsKnownByItsBody() {
        let signature = Self.hmac(Self.body)
        let first = try? WebhookSignature.verify(
            headers: ["x-hub-signature-256": "sha256=" + signature, "x-github-event": "push"], body: Self.body, secret: Self.secret
        ).get()
        #expect(first?.deliveryID.hasPrefix("sha256:") == true && first?.deliveryID.count == 71)
        // A control character or an over-long id is not an id.
        #expect(WebhookSignature.deliveryID("a\u{1}b", body: Self.body) == first?.deliveryID)
        #expect(WebhookSignature.deliveryID(String(repeating: "x", count: 129), body: Self.body) == first?.deliveryID)
        #expect(WebhookSignature.deliveryID(" 72d3162e-cc78-11e3 ", body: Self.body) == "72d3162e-cc78-11e3")
    }

    @Test func pushPayloadsOfEachSenderAreRead() throws {
        let commit = String(repeating: "b", count: 40)
        let github = """
            {"ref": "refs/heads/release/1.2", "before": "\(String(repeating: "0", count: 40))", "after": "\(commit)",
             "repository": {"clone_url": "https://github.com/team/app.git", "ssh_url": "git@github.com:team/app.git",
                            "html_url": "https://github.com/team/app"},
             "head_commit": {"id": "\(commit)", "message": "Fix the build"}}
            """
        let push = try PushEvent.parse(Array(github.utf8))
        #expect(push.target == .branch("release/1.2") && push.commit == commit && push.message == "Fix the build")
        #expect(push.names(try RepositoryAddress(parsing: "ssh://git@github.com:22/team/app")))
        #expect(push.names(try RepositoryAddress(parsing: "https://GitHub.com/team/app/")))
        #expect(!push.names(try RepositoryAddress(parsing: "https://github.com/team/other.git")))
        #expect(!push.names(try RepositoryAddress(parsing: "https://gitlab.com/team/app.git")))

        let gitlab = """
            {"object_kind": "tag_push", "ref": "refs/tags/v1.0", "after": "\(commit)", "checkout_sha": "\(commit)",
             "project": {"git_http_url": "https://gitlab.example.com/team/app.git", "git_ssh_url": "git@gitlab.example.com:team/app.git"},
             "commits": [{"id": "\(commit)", "message": "Release"}]}
            """
        let tag = try PushEvent.parse(Array(gitlab.utf8))
        #expect(tag.target == .tag("v1.0") && tag.message == "Release" && !tag.isDeletion)
        #expect(tag.names(try RepositoryAddress(parsing: "git@gitlab.example.com:team/app.git")))

        // An annotated tag: `after` is the tag object, the head commit is what is built;
        // control characters leave the message.
        let tagObject = String(repeating: "c", count: 40)
        let annotated = try PushEvent.parse(
            Array(
                #"{"ref": "refs/tags/v2", "after": "\#(tagObject)", "repository": {"clone_url": "https://h/r.git"}, "head_commit": {"id": "\#(commit)", "message": "a\u0000b\nc"}}"#
                    .utf8))
        #expect(annotated.commit == commit && annotated.message == "ab\nc")

        let deleted = try PushEvent.parse(
            Array(#"{"ref": "refs/heads/gone", "after": "\#(String(repeating: "0", count: 40))", "repository": {"clone_url": "https://h/r.git"}}"#.utf8))
        #expect(deleted.isDeletion)

        for bad in [
            "not json", "{}", #"{"ref": "main", "after": "\#(commit)", "repository": {"clone_url": "https://h/r"}}"#,
            #"{"ref": "refs/heads/main", "after": "abc", "repository": {"clone_url": "https://h/r"}}"#,
            #"{"ref": "refs/heads/main", "after": "\#(commit.uppercased())", "repository": {"clone_url": "https://h/r"}}"#,
            #"{"ref": "refs/heads/main", "after": "\#(commit)"}"#,
            #"{"ref": "refs/heads/a\u0001b", "after": "\#(commit)", "repository": {"clone_url": "https://h/r"}}"#,
        ] {
            #expect(throws: PushEvent.Malformed.self, "\(bad)") { try PushEvent.parse(Array(bad.utf8)) }
        }
    }

    @Test func projectSettingsAndRefPatterns() throws {
        let settings = try ProjectSettings(API.CreateProject(name: "app", repository: "https://git.example.com/app.git"))
        #expect(settings.pipelineFile == ".gantry/pipeline.yml" && settings.branches.isEmpty && settings.tags.isEmpty)
        for name in ["", "App", "-app", "a/b", "a b", String(repeating: "a", count: 65)] {
            #expect(throws: ProjectSettings.Invalid.self, "\(name)") {
                try ProjectSettings(API.CreateProject(name: name, repository: "https://git.example.com/app.git"))
            }
        }
        for file in ["../x.yml", "/etc/passwd", "a//b.yml", "ci/$(id).yml", "a b.yml", "./x.yml", "", "-", "ci/--help"] {
            #expect(throws: ProjectSettings.Invalid.self, "\(file)") {
                try ProjectSettings(API.CreateProject(name: "app", repository: "https://h/app.git", pipelineFile: file))
            }
        }
        #expect(throws: ProjectSettings.Invalid.self) {
            try ProjectSettings(API.CreateProject(name: "app", repository: "ext::sh -c id"))
        }
        #expect(throws: ProjectSettings.Invalid.self) {
            try ProjectSettings(API.CreateProject(name: "app", repository: "https://h/app.git", branches: Array(repeating: "x", count: 51)))
        }
        #expect(ProjectSettings.redacted("https://user:token@git.example.com/app.git") == "https://***@git.example.com/app.git")
        #expect(ProjectSettings.redacted("https://git.example.com/app.git") == "https://git.example.com/app.git")
        #expect(ProjectSettings.accepts(.branch("feature/x"), branches: [], tags: []))
        #expect(ProjectSettings.accepts(.branch("release/1.2"), branches: ["main", "release/*"], tags: []))
        #expect(!ProjectSettings.accepts(.branch("feature/x"), branches: ["main", "release/*"], tags: []))
        #expect(!ProjectSettings.accepts(.tag("v1"), branches: [], tags: []))
        #expect(ProjectSettings.accepts(.tag("v1.0"), branches: [], tags: ["v*"]))
    }

    @Test func webhookSecretsAreSealedAndRotateWithTheKey() throws {
        let directory = NSTemporaryDirectory() + "gantry-projects-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = CoordinatorStateDirectory(path: directory)
        let store = try SQLiteStore(path: state.database)
        let secret: String
        do {
            // Loaded without the shared lock `open` takes (as `serve` does), which would keep
            // `rotate-key` out for as long as the vault happens to live.
            let key = try SecretKeyFiles(state: state).loadOrCreate(logger: Logger(label: "test"))
            let vault = try SecretVault.load(store: store, key: key, logger: Logger(label: "test"))
            let (clear, sealed, keyID) = try vault.newWebhookSecret(project: "app")
            secret = clear
            #expect(secret.count == 64)
            let row = StoredProject(
                name: "app", repository: "https://h/app.git", pipelineFile: ".gantry/pipeline.yml", branches: "[]", tags: "[]",
                cancelSuperseded: false, runAs: nil, sealedSecret: sealed, keyId: keyID, createdBy: "admin", createdAt: Date())
            #expect(try store.insertProject(row))
            #expect(try !store.insertProject(row))
            let stored = try #require(try store.project(named: "app"))
            #expect(try vault.webhookSecret(of: stored) == secret)
            // Moved onto another project's row, the sealed secret does not open.
            var moved = row
            moved.name = "other"
            #expect(throws: (any Error).self) { try vault.webhookSecret(of: moved) }
            // Not in clear in the database.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: state.database)) + ((try? Data(contentsOf: URL(fileURLWithPath: state.database + "-wal"))) ?? Data())
            #expect(bytes.range(of: Data(secret.utf8)) == nil)
        }
        let result = try SecretKeyRotation.rotate(state: state, store: store, projects: store)
        let rotated = try #require(try store.project(named: "app"))
        #expect(rotated.keyId == result.newKeyID)
        let reopened = try SecretVault.open(state: state, store: store, logger: Logger(label: "test"))
        #expect(try reopened.webhookSecret(of: rotated) == secret)

        // A row still under the previous key (a rotation cut short) opens with the key
        // ring the vault was loaded with.
        let (old, current) = (SecretKey.generate(), SecretKey.generate())
        let sealed = try SecretBox.seal("old-secret", name: StoredProject.secretName("late"), scope: .pipeline, key: old)
        let late = StoredProject(
            name: "late", repository: "https://h/late.git", pipelineFile: ".gantry/pipeline.yml", branches: "[]", tags: "[]",
            cancelSuperseded: false, runAs: nil, sealedSecret: sealed, keyId: old.id, createdBy: "admin", createdAt: Date())
        let ringed = try SecretVault.load(store: store, key: current, ring: [old.id: old], logger: Logger(label: "test"))
        #expect(try ringed.webhookSecret(of: late) == "old-secret")
        let unringed = try SecretVault.load(store: store, key: current, logger: Logger(label: "test"))
        #expect(throws: (any Error).self) { try unringed.webhookSecret(of: late) }
    }

    // MARK: - The store, on every back end

    /// A whole second: every back end reads it back exactly.
    static let t0 = Date(timeIntervalSince1970: 1_795_000_000)

    static func project(_ name: String, createdAt: Date = Self.t0) -> StoredProject {
        StoredProject(
            name: name, repository: "https://h/\(name).git", pipelineFile: ".gantry/pipeline.yml", branches: "[]", tags: "[]",
            cancelSuperseded: false, runAs: nil, sealedSecret: Data([1, 2, 3]), keyId: "k1", createdBy: "admin", createdAt: createdAt)
    }

    @Test(arguments: StoreFactory.all)
    func projectsAreInsertedOnceListedByNameAndDeletedWithTheirDeliveries(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any ProjectStore)
        var app = Self.project("app")
        app.cancelSuperseded = true
        app.runAs = "bot"
        app.branches = #"["main","release/*"]"#
        #expect(try store.insertProject(app))
        #expect(try !store.insertProject(Self.project("app")), "the name is taken")
        #expect(try store.insertProject(Self.project("api")))
        #expect(try store.project(named: "app") == app)
        #expect(try store.project(named: "nope") == nil)
        #expect(try store.projects().map(\.name) == ["api", "app"])

        let delivery = StoredDelivery(
            project: "app", deliveryId: "d-1", pipelineId: nil, ref: "refs/heads/main", commit: String(repeating: "a", count: 40),
            bodySha256: String(repeating: "1", count: 64), owner: "process-1", receivedAt: Self.t0)
        #expect(try store.recordDelivery(delivery) == .recorded("d-1"))
        #expect(try store.deleteProject(named: "app"))
        #expect(try !store.deleteProject(named: "app"))
        #expect(try store.project(named: "app") == nil)
        #expect(try store.insertProject(Self.project("app")))
        #expect(try store.recordDelivery(delivery) == .recorded("d-1"), "the deliveries went with the project")
    }

    @Test(arguments: StoreFactory.all)
    func deliveriesAreRecordedOnceAndADeadProcesssIsTakenOver(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any ProjectStore)
        #expect(try store.insertProject(Self.project("app")))
        // Deliveries: the first is recorded; the same id, or the same body under another id,
        // is a duplicate; a forgotten one can come again; one a dead process recorded and
        // never started is taken over by the next process, under its first id.
        let delivery = StoredDelivery(
            project: "app", deliveryId: "d-1", pipelineId: nil, ref: "refs/heads/main", commit: String(repeating: "a", count: 40),
            bodySha256: String(repeating: "1", count: 64), owner: "process-1", receivedAt: Self.t0)
        #expect(try store.recordDelivery(delivery) == .recorded("d-1"))
        if case .duplicate(let earlier) = try store.recordDelivery(delivery) { #expect(earlier.deliveryId == "d-1") } else {
            Issue.record("the same delivery id was recorded twice")
        }
        var renamed = delivery
        renamed.deliveryId = "d-2"
        if case .duplicate = try store.recordDelivery(renamed) {} else { Issue.record("the same body under another id was recorded") }
        var restarted = renamed
        restarted.owner = "process-2"
        // PostgreSQL's coordinators share the database, so there another owner is taken to
        // be dead only once its delivery is `deliveryTakeoverAge` old.
        restarted.receivedAt = Self.t0.addingTimeInterval(PostgresStore.deliveryTakeoverAge)
        #expect(try store.recordDelivery(restarted) == .recorded("d-1"), "taken over from the dead process")
        try store.setDeliveryPipeline(project: "app", deliveryID: "d-1", pipelineID: "p-1")
        if case .duplicate(let started) = try store.recordDelivery(restarted) { #expect(started.pipelineId == "p-1") } else {
            Issue.record("a delivery that started a pipeline was taken over")
        }
        try store.forgetDelivery(project: "app", deliveryID: "d-1")
        #expect(try store.recordDelivery(delivery) == .recorded("d-1"))

        // The ref's deliveries that started a pipeline, newest first.
        try store.setDeliveryPipeline(project: "app", deliveryID: "d-1", pipelineID: "p-1")
        for n in 2...4 {
            var later = delivery
            later.deliveryId = "d-\(n)"
            later.bodySha256 = String(repeating: "\(n)", count: 64)
            later.receivedAt = Self.t0.addingTimeInterval(Double(n))
            later.ref = n == 4 ? "refs/heads/other" : "refs/heads/main"
            #expect(try store.recordDelivery(later) == .recorded("d-\(n)"))
            if n != 3 { try store.setDeliveryPipeline(project: "app", deliveryID: "d-\(n)", pipelineID: "p-\(n)") }
        }
        #expect(try store.deliveries(project: "app", ref: "refs/heads/main", limit: 10).map(\.deliveryId) == ["d-2", "d-1"])
        #expect(try store.deliveries(project: "app", ref: "refs/heads/main", limit: 1).map(\.pipelineId) == ["p-2"])
        #expect(try store.deliveries(project: "app", ref: "refs/heads/other", limit: 10).map(\.deliveryId) == ["d-4"])
        let stored = try #require(try store.deliveries(project: "app", ref: "refs/heads/main", limit: 10).last)
        var expected = delivery
        expected.pipelineId = "p-1"
        #expect(stored == expected, "every field reads back as written")
    }

    @Test(arguments: StoreFactory.all)
    func resealingWebhookSecretsRewritesEveryProjectOrNone(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any ProjectStore)
        #expect(try store.resealWebhookSecrets { $0 } == 0)
        for name in ["a", "b", "c"] { #expect(try store.insertProject(Self.project(name))) }
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try store.resealWebhookSecrets { row in
                guard row.name != "c" else { throw Refused() }
                var row = row
                row.keyId = "k2"
                return row
            }
        }
        #expect(try store.projects().map(\.keyId) == ["k1", "k1", "k1"], "a failed reseal leaves every row as it was")
        let count = try store.resealWebhookSecrets { row in
            var row = row
            row.keyId = "k2"
            row.sealedSecret = Data(row.name.utf8)
            return row
        }
        #expect(count == 3)
        #expect(try store.projects().map(\.keyId) == ["k2", "k2", "k2"])
        #expect(try store.project(named: "b")?.sealedSecret == Data("b".utf8))
    }

    /// Two coordinators on one PostgreSQL database receive the same push at once (a
    /// sender's retry, or a copy under another id): exactly one of them records it, and a
    /// delivery the other just recorded is not taken over from it.
    @Test func coordinatorsSharingADatabaseRecordADeliveryOnce() throws {
        let url = try PostgresServer.shared.get().makeDatabase()
        let stores = try (0..<2).map { _ in try PostgresStore(url: url, logger: Logger(label: "test")) }
        defer { for store in stores { store.pool.shutdown() } }
        #expect(try stores[0].insertProject(Self.project("app")))
        let recorded = Mutex<[String]>([])
        let failures = Mutex<[String]>([])
        for round in 0..<5 {
            CronScheduleTests.onThreads(8) { worker in
                let delivery = StoredDelivery(
                    project: "app", deliveryId: "r\(round)-\(worker % 3)", pipelineId: nil, ref: "refs/heads/main",
                    commit: String(repeating: "a", count: 40), bodySha256: "body-\(round)", owner: "coordinator-\(worker % 2)",
                    receivedAt: Date())
                do {
                    if case .recorded(let id) = try stores[worker % 2].recordDelivery(delivery) { recorded.withLock { $0.append(id) } }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let ids = recorded.withLock { $0 }
        #expect(ids.count == 5, "one delivery recorded per round: \(ids)")
    }
}
