import Foundation
import GantryProtocol
import Subprocess
import Testing

/// The audit log end to end with the real binaries: a viewer's refused submit and an
/// admin's accepted one are recorded with who, which token, from where and how it ended;
/// the chain verifies through the CLI; an edit to the SQLite file made while the
/// coordinator is stopped is found by `gantry-coordinator audit verify`, at its seq.
@Suite("Audit log, end to end", .serialized, .timeLimit(.minutes(3)))
struct AuditTests {
    @Test func refusalsAndChangesAreRecordedAndAnEditIsDetected() async throws {
        try await TestCluster.with("audit") { cluster in
            // A viewer identity and its token, created through the API.
            let (created, _) = try await cluster.request(
                .POST, "/v1/identities", body: Data(#"{"name":"v","kind":"person","roles":["viewer"]}"#.utf8))
            #expect(created == 201)
            let (issued, tokenBody) = try await cluster.request(.POST, "/v1/identities/v/tokens", body: Data("{}".utf8))
            #expect(issued == 201)
            let token = try API.decoder.decode(API.CreatedToken.self, from: tokenBody)

            let submission = try API.encoder.encode(API.SubmitPipeline(yaml: "steps:\n  - key: a\n    command: echo a\n", file: "a.yml"))
            let (refused, _) = try await cluster.request(.POST, "/v1/pipelines", body: submission, token: token.secret)
            #expect(refused == 403)
            let pipeline = try await cluster.submit("steps:\n  - key: a\n    command: echo a\n")
            // A viewer cannot read the audit log either.
            #expect(try await cluster.request(.GET, "/v1/audit", token: token.secret).0 == 403)

            let viewerPage = try await page(cluster, "/v1/audit?actor=v")
            let denied = try #require(viewerPage.records.first { $0.action == "pipeline.submit" })
            #expect(denied.outcome == "denied")
            #expect(denied.tokenId == token.token.id)
            #expect(denied.address == "127.0.0.1")
            #expect(denied.hash.count == 64)

            let adminPage = try await page(cluster, "/v1/audit?object=pipeline:\(pipeline.id)")
            #expect(adminPage.records.map(\.outcome) == ["succeeded"])
            #expect(adminPage.records.first?.actor == "admin")

            // Paging: limit 1 gives a cursor that continues in seq order.
            let first = try await page(cluster, "/v1/audit?limit=1")
            let next = try #require(first.next)
            let second = try await page(cluster, "/v1/audit?limit=1&after=\(next)")
            #expect(second.records.first?.seq == next + 1)
            #expect(second.records.first?.prevHash == first.records.first?.hash)

            // Hostile query strings are refused with a reason, not run.
            for query in ["since=yesterday", "after=1%20OR%201=1", "limit=lots", "format=xml", "actor=\(String(repeating: "a", count: 400))"] {
                #expect(try await cluster.request(.GET, "/v1/audit?\(query)").0 == 400, "\(query)")
            }

            // The JSON lines export has every record, each a full record.
            let (exported, lines) = try await cluster.request(.GET, "/v1/audit?format=jsonl")
            #expect(exported == 200)
            let records = try String(decoding: lines, as: UTF8.self).split(separator: "\n").map {
                try API.decoder.decode(API.AuditRecord.self, from: Data($0.utf8))
            }
            #expect(records.map(\.seq) == Array(1...Int64(records.count)))
            #expect(records.contains { $0.seq == denied.seq && $0.hash == denied.hash })

            let verified = try await gantry(cluster, ["audit", "verify"])
            #expect(verified.status == .exited(0), "\(verified.output)")
            #expect(verified.output.contains("intact"))
            let listed = try await gantry(cluster, ["audit", "--actor", "v"])
            #expect(listed.status == .exited(0), "\(listed.output)")
            #expect(listed.output.contains("denied"))

            // Stop the coordinator, then edit the viewer's record in the file itself.
            await cluster.coordinator.stop()
            let database = cluster.coordinatorState + "/gantry.sqlite"
            let edit = try await Subprocess.run(
                .name("sqlite3"), arguments: [database, "UPDATE audit_log SET outcome = 'succeeded' WHERE seq = \(denied.seq)"],
                output: .string(limit: 65536), error: .string(limit: 65536))
            #expect(edit.terminationStatus.isSuccess, "\(edit.standardError)")
            let offline = try await Subprocess.run(
                .path(.init(cluster.binaries + "/gantry-coordinator")), arguments: ["audit", "verify", "--state", cluster.coordinatorState],
                output: .string(limit: 65536), error: .string(limit: 65536))
            let output = offline.standardOutput + offline.standardError
            #expect(offline.terminationStatus == .exited(1), "\(output)")
            #expect(output.contains("record \(denied.seq) was edited"), "\(output)")

            let export = try await Subprocess.run(
                .path(.init(cluster.binaries + "/gantry-coordinator")), arguments: ["audit", "export", "--state", cluster.coordinatorState],
                output: .string(limit: 1 << 20), error: .string(limit: 65536))
            #expect(export.terminationStatus.isSuccess)
            #expect(export.standardOutput.split(separator: "\n").count == records.count)
        }
    }

    private func page(_ cluster: TestCluster, _ path: String) async throws -> API.AuditPage {
        let (status, data) = try await cluster.request(.GET, path)
        guard status == 200 else { throw TimedOut(description: "\(path): \(status) \(String(decoding: data, as: UTF8.self))") }
        return try API.decoder.decode(API.AuditPage.self, from: data)
    }

    private func gantry(_ cluster: TestCluster, _ arguments: [String]) async throws -> (status: TerminationStatus, output: String) {
        let result = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry")), arguments: Arguments(arguments + ["--server", cluster.serverURL]),
            environment: .inherit.updating(["GANTRY_TOKEN": cluster.adminToken, "HOME": cluster.root]),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return (result.terminationStatus, result.standardOutput + result.standardError)
    }
}
