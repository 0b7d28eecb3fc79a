import Foundation
import GantryProtocol
import NIOHTTP1
import Subprocess
import SystemPackage
import Testing

/// Who may call what, against the real coordinator binary: every API route with a token
/// of every role, checked against a table written out here independently of the
/// coordinator's own declarations, so changing a route's permission fails this test.
@Suite("Authorization", .serialized, .timeLimit(.minutes(5)))
struct AuthorizationTests {
    /// The least role that may call each route (nil: anyone, without a token). Written
    /// by hand: this is the specification the route table must match.
    static let minimumRole: [APIRoute: API.Role?] = [
        .health: nil,
        .metrics: .viewer, .whoami: .viewer,
        .listPipelines: .viewer, .getPipeline: .viewer, .listJobs: .viewer, .getJob: .viewer, .jobAttempts: .viewer, .jobLog: .viewer,
        .listAgents: .viewer, .demand: .viewer,
        .createOwnToken: .viewer, .listOwnTokens: .viewer, .revokeOwnToken: .viewer,
        .submitPipeline: .developer, .cancelPipeline: .developer, .cancelJob: .developer,
        .retryJob: .developer, .rebuildPipeline: .developer, .approvePipeline: .developer, .rejectPipeline: .developer,
        .forgetAgent: .admin, .drainAgent: .admin,
        .createIdentity: .admin, .listIdentities: .admin, .updateIdentity: .admin, .disableIdentity: .admin,
        .createIdentityToken: .admin, .listIdentityTokens: .admin, .revokeIdentityToken: .admin,
        .listSecrets: .admin, .setSecret: .admin, .deleteSecret: .admin,
        .listAudit: .admin, .verifyAudit: .admin,
        .setMetaData: .developer, .getMetaData: .viewer, .listMetaData: .viewer,
        .uploadPipelineSteps: .developer,
        .createArtifactUpload: .developer, .appendArtifactUpload: .developer, .completeArtifactUpload: .developer,
        // An upload session: its job's token (its route declares `read`) or an admin only.
        .getArtifactUpload: .admin, .listArtifacts: .viewer, .getArtifact: .viewer, .downloadArtifact: .viewer,
        .resolveCache: .viewer, .createCacheUpload: .developer, .downloadCache: .viewer, .listCaches: .viewer,
        .clearCaches: .admin,
        .keepPipeline: .developer, .unkeepPipeline: .developer,
        .createProject: .admin, .listProjects: .viewer, .getProject: .viewer, .deleteProject: .admin,
        // Signed by the git server, not authenticated by a token: unknown here (404).
        .receiveWebhook: nil,
        .listDeployments: .viewer, .deliveryMetrics: .viewer, .rollbackEnvironment: .developer,
        .createSchedule: .admin, .listSchedules: .viewer, .deleteSchedule: .admin,
    ]

    /// Routes only a running job may call with its token: a person below their
    /// permission is refused by the router, and one holding it by the handler (what they
    /// store is recorded with the job that made it), 403 either way.
    static let jobTokenOnly: Set<APIRoute> = [
        .uploadPipelineSteps, .createArtifactUpload, .appendArtifactUpload, .completeArtifactUpload, .createCacheUpload,
    ]

    /// The routes a step's job token may call (for its own job and pipeline only).
    static let jobTokenRoutes: Set<APIRoute> = [
        .setMetaData, .getMetaData, .listMetaData, .uploadPipelineSteps, .createArtifactUpload, .getArtifactUpload,
        .appendArtifactUpload, .completeArtifactUpload, .listArtifacts, .downloadArtifact, .resolveCache, .createCacheUpload,
        .downloadCache,
    ]

    /// Parameters naming nothing that exists, so an allowed call changes nothing.
    static let parameters = [
        "id": "00000000-0000-0000-0000-000000000000", "name": "nobody", "host": "nohost", "slot": "0", "key": "nothing",
        "digest": String(repeating: "0", count: 64),
    ]

    /// Issues a token on the coordinator's host, as an operator bootstrapping would.
    static func hostToken(_ cluster: TestCluster, identity: String, role: String) async throws -> String {
        let result = try await Subprocess.run(
            .path(FilePath(cluster.binaries + "/gantry-coordinator")),
            arguments: ["token", "create", "--state", cluster.coordinatorState, "--identity", identity, "--role", role, "--expires", "1h"],
            output: .string(limit: 64 * 1024), error: .string(limit: 64 * 1024))
        guard result.terminationStatus.isSuccess, result.standardOutput.hasPrefix("gty_")
        else { throw TimedOut(description: "token create failed: \(result.standardError)") }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func everyRouteAllowsExactlyTheRolesItShould() async throws {
        #expect(Set(Self.minimumRole.keys) == Set(APIRoute.allCases), "a route without an expected role in this test")
        try await TestCluster.with("authorization") { cluster in
            var tokens: [API.Role: String] = [:]
            for role in API.Role.allCases {
                tokens[role] = try await Self.hostToken(cluster, identity: "\(role.rawValue)-user", role: role.rawValue)
            }
            var mismatches: [String] = []
            for route in APIRoute.allCases {
                // A route missing from the table is reported, not trapped on: a trap kills
                // the test process before it can stop the coordinators it started.
                guard let minimum = Self.minimumRole[route] else {
                    mismatches.append("\(route) has no expected role in this test's table")
                    continue
                }
                let path = route.path(Self.parameters)
                let method = HTTPMethod(rawValue: route.method)
                let body: Data? = ["POST", "PUT", "PATCH"].contains(route.method) ? Data("{}".utf8) : nil
                // No token at all: 401, except the health check.
                let (anonymous, _) = try await cluster.request(method, path, body: body, token: "")
                if (anonymous == 401) != (minimum != nil) {
                    mismatches.append("\(route) without a token answered \(anonymous)")
                }
                for role in API.Role.allCases {
                    let (status, data) = try await cluster.request(method, path, body: body, token: tokens[role]!)
                    let expectedAllowed = minimum.map { role >= $0 } ?? true
                    let allowed = status != 403 && status != 401
                    if Self.jobTokenOnly.contains(route) {
                        let text = String(decoding: data, as: UTF8.self)
                        if status == 404, data.isEmpty { mismatches.append("\(route) is not served (\(route.method) \(path))") }
                        if status != 403 || (expectedAllowed && !text.contains("job token")) {
                            mismatches.append("\(route) as \(role) answered \(status), not 403 for a person: \(text.prefix(200))")
                        }
                        continue
                    }
                    // The router's own 404 has no body: the route is declared but not served.
                    if status == 404, data.isEmpty { mismatches.append("\(route) is not served (\(route.method) \(path))") }
                    if allowed != expectedAllowed {
                        mismatches.append("\(route) as \(role) answered \(status): \(String(decoding: data.prefix(200), as: UTF8.self))")
                    }
                    if !allowed, status == 403 {
                        // The refusal names the permission, so the caller knows what to ask for.
                        let text = String(decoding: data, as: UTF8.self)
                        if let permission = route.permission, !text.contains(permission.rawValue) {
                            mismatches.append("\(route) 403 without naming \(permission.rawValue): \(text)")
                        }
                    }
                }
            }
            #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        }
    }

    /// A step's job token: every route refuses it (403, saying why) but the meta-data
    /// routes of its own pipeline; another pipeline's meta-data is refused too; a forged
    /// token is 401, and so is the real one once its job is over.
    @Test func aJobTokenMayCallOnlyItsOwnPipelinesAndJobsRoutes() async throws {
        #expect(Set(APIRoute.allCases.filter(\.jobTokenAllowed)) == Self.jobTokenRoutes)
        try await TestCluster.with("job-token") { cluster in
            try await cluster.startAgent(slot: "1")
            let other = try await cluster.submit("steps:\n  - key: other\n    command: 'true'\n")
            let tokenFile = cluster.root + "/job.token", go = cluster.root + "/go"
            // The step hands its token out and waits (bounded) until the test is done with it.
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: holder
                    commands:
                      - "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(tokenFile).tmp && mv \(tokenFile).tmp \(tokenFile)"
                      - "i=0; while [ ! -f \(go) ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
                """)
            try await waitUntil("the step's token", timeout: .seconds(60)) { FileManager.default.fileExists(atPath: tokenFile) }
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8)
            let ownJob = try #require(pipeline.jobs.first).id, otherJob = try #require(other.jobs.first).id
            var mismatches: [String] = []
            for route in APIRoute.allCases where route != .health && route != .receiveWebhook {
                let method = HTTPMethod(rawValue: route.method)
                let body: Data? = ["POST", "PUT", "PATCH"].contains(route.method) ? Data("{\"value\": \"v\"}".utf8) : nil
                // What `{id}` names: the token's pipeline, its job, or (an upload session) nothing.
                let byPipeline = route.path.hasPrefix("/v1/pipelines/{id}"), byJob = route.path.hasPrefix("/v1/jobs/{id}")
                var parameters = Self.parameters
                if byPipeline { parameters["id"] = pipeline.id }
                if byJob { parameters["id"] = ownJob }
                let (status, data) = try await cluster.request(method, route.path(parameters), body: body, token: token)
                let text = String(decoding: data, as: UTF8.self)
                if route == .downloadArtifact {
                    // Decided by the handler: a digest of no artifact of its pipeline.
                    if status != 403 || !text.contains("may download only") {
                        mismatches.append("\(route) of a foreign digest answered \(status): \(text.prefix(200))")
                    }
                } else if Self.jobTokenRoutes.contains(route) {
                    if status == 401 || status == 403 { mismatches.append("\(route) refused its own pipeline: \(status) \(text)") }
                    guard byPipeline || byJob else { continue }
                    parameters["id"] = byJob ? otherJob : other.id
                    let (foreign, refusal) = try await cluster.request(method, route.path(parameters), body: body, token: token)
                    if foreign != 403 || !String(decoding: refusal, as: UTF8.self).contains("belongs to pipeline") {
                        mismatches.append("\(route) on another pipeline answered \(foreign)")
                    }
                } else if status != 403 || !text.contains("a job token may call only") {
                    mismatches.append("\(route) with a job token answered \(status): \(text.prefix(200))")
                }
            }
            #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
            let listPath = APIRoute.listMetaData.path(["id": pipeline.id])
            let forged = String(token.dropLast()) + (token.last == "0" ? "1" : "0")
            #expect(try await cluster.request(.GET, listPath, token: forged).0 == 401)
            #expect(try await cluster.request(.GET, listPath, token: "gjt_garbage").0 == 401)

            _ = FileManager.default.createFile(atPath: go, contents: Data())
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            #expect(try await cluster.request(.GET, listPath, token: token).0 == 401)
        }
    }

    @Test func tokensAreShownOnceListedRevokedAndIdentitiesDisabled() async throws {
        try await TestCluster.with("tokens") { cluster in
            let cli = cluster.binaries + "/gantry"
            func gantry(_ arguments: [String], token: String) async throws -> (Bool, String, String) {
                let result = try await Subprocess.run(
                    .path(FilePath(cli)),
                    arguments: Arguments(arguments + (arguments.contains("--server") ? [] : ["--server", cluster.serverURL]) + ["--token", token]),
                    output: .string(limit: 1024 * 1024), error: .string(limit: 64 * 1024))
                return (result.terminationStatus.isSuccess, result.standardOutput, result.standardError)
            }
            // The admin creates a developer through the CLI, then a token for it.
            let (created, _, createError) = try await gantry(["identity", "create", "dana", "--role", "developer"], token: cluster.adminToken)
            #expect(created, "\(createError)")
            let (issued, secretLine, _) = try await gantry(["token", "create", "--identity", "dana", "--expires", "2h"], token: cluster.adminToken)
            let secret = secretLine.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(issued && secret.hasPrefix("gty_"))

            let (ok, whoami, whoamiError) = try await gantry(["whoami"], token: secret)
            #expect(ok && whoami.contains("dana") && whoami.contains("developer"), "\(whoami) \(whoamiError)")
            // A developer submits; the secret is never listed.
            let (listed, list, _) = try await gantry(["token", "list"], token: secret)
            #expect(listed && list.contains("dana") && !list.contains(secret))
            let tokenID = try #require(list.split(separator: "\n").dropFirst().first?.split(separator: " ").first.map(String.init))
            // The database holds only the digest.
            let database = try Data(contentsOf: URL(fileURLWithPath: cluster.coordinatorState + "/gantry.sqlite"))
            let wal = (try? Data(contentsOf: URL(fileURLWithPath: cluster.coordinatorState + "/gantry.sqlite-wal"))) ?? Data()
            #expect(database.range(of: Data(secret.utf8)) == nil && wal.range(of: Data(secret.utf8)) == nil)

            // A developer may not create identities: 403, and the CLI says why.
            let (escalated, _, escalateError) = try await gantry(["identity", "create", "eve", "--role", "admin"], token: secret)
            #expect(!escalated && escalateError.contains("manage_identities"), "\(escalateError)")

            // Revoked: refused from the next request on.
            let (revoked, _, _) = try await gantry(["token", "revoke", tokenID], token: secret)
            #expect(revoked)
            let (after, _, afterError) = try await gantry(["whoami"], token: secret)
            #expect(!after && afterError.contains("revoked"), "\(afterError)")

            // Disabling an identity revokes every token it holds.
            let (_, second, _) = try await gantry(["token", "create", "--identity", "dana"], token: cluster.adminToken)
            let (disabled, _, _) = try await gantry(["identity", "disable", "dana"], token: cluster.adminToken)
            #expect(disabled)
            let (stillWorks, _, _) = try await gantry(["whoami"], token: second.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(!stillWorks)
            // A name with '@' (the CLI percent-encodes it in the path) is found and disabled.
            let (mailCreated, _, mailError) = try await gantry(["identity", "create", "carol@corp.example", "--role", "viewer"], token: cluster.adminToken)
            #expect(mailCreated, "\(mailError)")
            let (_, carolToken, _) = try await gantry(["token", "create", "--identity", "carol@corp.example"], token: cluster.adminToken)
            let (carolListed, carolTokens, _) = try await gantry(["token", "list", "--identity", "carol@corp.example"], token: cluster.adminToken)
            #expect(carolListed && carolTokens.contains("carol@corp.example"), "\(carolTokens)")
            let (carolDisabled, _, carolError) = try await gantry(["identity", "disable", "carol@corp.example"], token: cluster.adminToken)
            #expect(carolDisabled, "\(carolError)")
            let (carolWorks, _, _) = try await gantry(["whoami"], token: carolToken.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(!carolWorks)
            // The CLI does not send a token over plain http to another host (192.0.2.1 is
            // TEST-NET-1: refused before any connection is tried).
            let (plain, _, plainError) = try await gantry(["whoami", "--server", "http://192.0.2.1:7080"], token: cluster.adminToken)
            #expect(!plain && plainError.contains("in clear"), "\(plainError)")
            // The admin may not disable itself.
            let (selfDisabled, _, selfError) = try await gantry(["identity", "disable", "admin"], token: cluster.adminToken)
            #expect(!selfDisabled && selfError.contains("cannot disable itself"), "\(selfError)")
        }
    }

    /// A step with `environment:` receives that environment's secrets, so submitting one
    /// needs the deploy permission for it; refused before anything is stored.
    @Test func onlyDeployersOfAnEnvironmentMaySubmitStepsThatDeployToIt() async throws {
        try await TestCluster.with("deploy-permission") { cluster in
            let yaml = """
                steps:
                  - key: build
                    command: "true"
                  - key: ship
                    depends_on: build
                    environment: production
                    agents: {queue: deploy}
                    command: "true"
                """
            let body = try API.encoder.encode(API.SubmitPipeline(yaml: yaml, file: "deploy.yml"))
            let cases: [(String, String, Bool)] = [
                ("dev", "developer", false), ("stager", "deployer:staging", false), ("shipper", "deployer:production", true),
                ("anydeployer", "deployer", true), ("boss", "admin", true),
            ]
            for (identity, role, allowed) in cases {
                let token = try await Self.hostToken(cluster, identity: identity, role: role)
                let (status, data) = try await cluster.request(.POST, "/v1/pipelines", body: body, token: token)
                let text = String(decoding: data, as: UTF8.self)
                #expect((status == 201) == allowed, "\(role): \(status) \(text)")
                if !allowed { #expect(status == 403 && text.contains("production"), "\(text)") }
            }
            // A developer may not target deploy hosts (a trusted label) even without an environment.
            let developer = try await Self.hostToken(cluster, identity: "dev2", role: "developer")
            let onDeployHost = try API.encoder.encode(
                API.SubmitPipeline(yaml: "steps:\n  - key: x\n    command: 'true'\n    agents: {queue: deploy}\n"))
            let (hostStatus, hostText) = try await cluster.request(.POST, "/v1/pipelines", body: onDeployHost, token: developer)
            #expect(hostStatus == 403 && String(decoding: hostText, as: UTF8.self).contains("trusted label"))
            // A deploying step must run on trusted agents: without a trusted label, 422.
            let untrusted = try API.encoder.encode(
                API.SubmitPipeline(yaml: "steps:\n  - key: ship\n    command: 'true'\n    environment: production\n"))
            let (placeStatus, placeText) = try await cluster.request(.POST, "/v1/pipelines", body: untrusted, token: cluster.adminToken)
            #expect(placeStatus == 422 && String(decoding: placeText, as: UTF8.self).contains("selects no trusted label"))
            // Nothing was stored for the refused ones: three pipelines of two jobs.
            let (_, jobs) = try await cluster.request(.GET, "/v1/jobs?limit=100")
            #expect(try API.decoder.decode([API.Job].self, from: jobs).count == 6)
            // The refusals are in the audit log as denied.
            let (_, audit) = try await cluster.request(.GET, "/v1/audit?actor=stager")
            #expect(String(decoding: audit, as: UTF8.self).contains("denied"))
        }
    }
}
