import Foundation
import GantryProtocol
import Subprocess
import Testing

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Pipeline meta-data end to end with the real binaries: one step sets a value with the
/// `gantry` CLI and its job token, a later step reads it; the token is masked in the
/// stored log, absent from the job views and the database, and refused once the job is
/// over.
@Suite("Meta-data", .serialized, .timeLimit(.minutes(3)))
struct MetaDataTests {
    @Test func aLaterStepReadsWhatAnEarlierOneSet() async throws {
        try await TestCluster.with("meta-data") { cluster in
            try await cluster.startAgent(slot: "1")
            let cli = cluster.binaries + "/gantry"
            let tokenFile = cluster.root + "/a.token"
            let yaml = """
                steps:
                  - key: a
                    commands:
                      - "\(cli) meta-data set version 1.2.3"
                      - "printf 'line one\\\\nline two' | \(cli) meta-data set notes -"
                      - "echo token=$GANTRY_JOB_TOKEN"
                      - "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(tokenFile)"
                  - key: b
                    depends_on: a
                    commands:
                      - "test \\"$(\(cli) meta-data get version)\\" = 1.2.3"
                      - "\(cli) meta-data get version"
                      - "test \\"$(\(cli) meta-data get missing --default fallback)\\" = fallback"
                      - "! \(cli) meta-data get missing"
                      - "\(cli) meta-data keys"
                """
            let pipeline = try await cluster.submit(yaml)
            let done = try await cluster.waitForPipeline(pipeline.id)
            let a = try #require(done.jobs.first { $0.key == "a" })
            let b = try #require(done.jobs.first { $0.key == "b" })
            let logA = String(decoding: try await cluster.log(a.id), as: UTF8.self)
            let logB = String(decoding: try await cluster.log(b.id), as: UTF8.self)
            #expect(done.jobs.map(\.state) == ["succeeded", "succeeded"], "a: \(logA)\nb: \(logB)")
            #expect(logB.contains("1.2.3\n") && logB.contains("notes\nversion\n"), "\(logB)")
            #expect(logB.contains("is not set for pipeline"), "\(logB)")

            // From a workstation with an API token: the same values.
            let (status, body) = try await cluster.request(.GET, APIRoute.getMetaData.path(["id": pipeline.id, "key": "notes"]))
            let notes = try API.decoder.decode(API.MetaData.self, from: body)
            #expect(status == 200 && notes.value == "line one\nline two" && notes.jobId == a.id)

            // The token: masked in the stored log, absent from every view and the database.
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8)
            #expect(token.hasPrefix("gjt_\(a.id).1."))
            #expect(logA.contains("token=***") && !logA.contains(token), "\(logA)")
            for path in ["/v1/jobs/\(a.id)", "/v1/pipelines/\(pipeline.id)", "/v1/jobs/\(a.id)/attempts", "/v1/jobs?limit=10"] {
                let (_, view) = try await cluster.request(.GET, path)
                #expect(!String(decoding: view, as: UTF8.self).contains("gjt_"), "\(path)")
            }
            for file in ["/gantry.sqlite", "/gantry.sqlite-wal"] {
                let data = (try? Data(contentsOf: URL(fileURLWithPath: cluster.coordinatorState + file))) ?? Data()
                #expect(data.range(of: Data("gjt_".utf8)) == nil, "\(file)")
            }

            // The job is over: its token is refused.
            let (finished, refusal) = try await cluster.request(
                .GET, APIRoute.listMetaData.path(["id": pipeline.id]), token: token)
            #expect(finished == 401 && String(decoding: refusal, as: UTF8.self).contains("no longer valid"))
            // The set was audited with its key, never its value.
            let (_, audit) = try await cluster.request(.GET, "/v1/audit?limit=50")
            let auditText = String(decoding: audit, as: UTF8.self)
            #expect(auditText.contains("metadata.set") && auditText.contains("job:\(a.id)") && auditText.contains("version"))
            #expect(!auditText.contains("1.2.3") && !auditText.contains("line two"))
        }
    }

    /// With `--http-tls` (the coordinator's certificate), a step reaches the API over
    /// https with the CA copy the agent exports as GANTRY_CA_FILE.
    @Test func overTLSAStepVerifiesTheAPIWithTheCACopy() async throws {
        try await TestCluster.with("meta-data-tls", coordinatorArguments: ["--http-tls"]) { cluster in
            try await cluster.startAgent(slot: "1")
            let cli = cluster.binaries + "/gantry"
            let marker = cluster.root + "/tls-ok"
            let file = cluster.root + "/tls.yml"
            try Data(
                """
                steps:
                  - key: a
                    commands:
                      - "case \\"$GANTRY_API_URL\\" in https://*) ;; *) exit 5;; esac"
                      - "\(cli) meta-data set scheme https"
                  - key: b
                    depends_on: a
                    commands:
                      - "test \\"$(\(cli) meta-data get scheme)\\" = https && touch \(marker)"
                """.utf8
            ).write(to: URL(fileURLWithPath: file))
            let result = try await Subprocess.run(
                .path(.init(cli)),
                arguments: [
                    "run", "--server", "https://\(cluster.httpAddress)", "--ca-file", cluster.coordinatorState + "/ca.pem",
                    "--token", cluster.adminToken, file,
                ],
                output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
            let (status, data) = (result.terminationStatus, result.standardOutput + result.standardError)
            #expect(status.isSuccess, "\(data)")
            #expect(FileManager.default.fileExists(atPath: marker), "\(data)")
        }
    }

    /// What a deploying pipeline's steps read steers its deploy, so a person writing it
    /// needs deploy for that environment: a developer may not, a deployer of it may.
    @Test func writingADeployingPipelinesMetaDataNeedsDeploy() async throws {
        try await TestCluster.with("meta-data-deploy", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            // No agent: the deploy step waits, as a production deploy waiting on a build would.
            let pipeline = try await cluster.submit("steps:\n  - key: deploy\n    command: 'true'\n    environment: production\n")
            let plain = try await cluster.submit("steps:\n  - key: build\n    command: 'true'\n")
            let developer = try await AuthorizationTests.hostToken(cluster, identity: "dev", role: "developer")
            let deployer = try await AuthorizationTests.hostToken(cluster, identity: "ops", role: "deployer:production")
            let body = Data(#"{"value": "registry.example.com/app:evil"}"#.utf8)
            let path = APIRoute.setMetaData.path(["id": pipeline.id, "key": "image"])
            let (refused, text) = try await cluster.request(.PUT, path, body: body, token: developer)
            #expect(refused == 403, "\(String(decoding: text, as: UTF8.self))")
            #expect(String(decoding: text, as: UTF8.self).contains("deploys to production"))
            let (plainStatus, _) = try await cluster.request(
                .PUT, APIRoute.setMetaData.path(["id": plain.id, "key": "image"]), body: body, token: developer)
            #expect(plainStatus == 201, "a pipeline that deploys nothing is the developer's to write")
            let (allowed, _) = try await cluster.request(.PUT, path, body: body, token: deployer)
            #expect(allowed == 201)
        }
    }

    @Test func limitsAndUnknownPipelines() async throws {
        try await TestCluster.with("meta-data-limits") { cluster in
            let pipeline = try await cluster.submit("steps:\n  - key: a\n    command: 'true'\n")
            func put(_ key: String, _ value: String, pipeline id: String? = nil) async throws -> (Int, String) {
                let (status, data) = try await cluster.request(
                    .PUT, APIRoute.setMetaData.path(["id": id ?? pipeline.id, "key": key]),
                    body: try API.encoder.encode(API.SetMetaData(value: value)))
                return (status, String(decoding: data, as: UTF8.self))
            }
            var (status, text) = try await put("a/b:c", "x")
            #expect(status == 201, "\(text)")
            (status, text) = try await put("a/b:c", "y")
            #expect(status == 200 && text.contains("\"y\""), "\(text)")
            (status, text) = try await put("bad key", "x")
            #expect(status == 422 && text.contains("only letters"), "\(text)")
            (status, text) = try await put("big", String(repeating: "v", count: 64 * 1024 + 1))
            #expect(status == 413 && text.contains("64 KiB"), "\(text)")
            (status, text) = try await put("nul", "a\u{0}b")
            #expect(status == 422 && text.contains("NUL"), "\(text)")
            (status, text) = try await put("k", "x", pipeline: "00000000-0000-0000-0000-000000000000")
            #expect(status == 404 && text.contains("no pipeline"), "\(text)")
            let (missing, missingText) = try await cluster.request(.GET, APIRoute.getMetaData.path(["id": pipeline.id, "key": "nope"]))
            #expect(missing == 404 && String(decoding: missingText, as: UTF8.self).contains("not_set"))
            let (unknown, _) = try await cluster.request(.GET, APIRoute.listMetaData.path(["id": "00000000-0000-0000-0000-000000000000"]))
            #expect(unknown == 404)
            // A thousand keys, then a new one is refused; overwriting still works.
            for index in 1..<MetaDataBounds.keys {
                let (ok, _) = try await put("k\(index)", "v")
                if ok != 201 { Issue.record("key \(index): \(ok)"); break }
            }
            (status, text) = try await put("one-too-many", "v")
            #expect(status == 413 && text.contains("1000"), "\(text)")
            (status, _) = try await put("k1", "w")
            #expect(status == 200)
            let (_, listed) = try await cluster.request(.GET, APIRoute.listMetaData.path(["id": pipeline.id]) + "?limit=10")
            let keys = try API.decoder.decode(API.MetaDataKeys.self, from: listed)
            #expect(keys.keys.count == 10 && keys.truncated)
        }
    }
}

/// The documented bound, written out here rather than read from the coordinator.
enum MetaDataBounds {
    static let keys = 1000
}
