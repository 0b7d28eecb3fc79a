import Foundation
import GantryProtocol
import Subprocess
import Testing

/// Retention with the real binaries: two finished pipelines with a log and an artifact
/// each, one kept with `gantry keep`; the coordinator restarted with ages of under a
/// second removes the other's artifact, blob and log (its log endpoint answers 410), and
/// nothing of the kept one.
@Suite("Retention end to end", .serialized, .timeLimit(.minutes(5)))
struct RetentionIntegrationTests {
    func gantry(_ cluster: TestCluster, _ arguments: [String]) async throws -> (Bool, String) {
        let result = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry")),
            arguments: .init(arguments + ["--server", cluster.serverURL, "--token", cluster.adminToken]),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return (result.terminationStatus.isSuccess, result.standardOutput + result.standardError)
    }

    @Test func retentionRemovesTheUnkeptPipelinesArtifactsAndLogsButNotTheKeptOnes() async throws {
        try await TestCluster.with("retention") { cluster in
            try await cluster.startAgent(slot: "1")
            let cli = cluster.binaries + "/gantry"
            var pipelines: [API.Pipeline] = []
            for name in ["kept", "gone"] {
                let submitted = try await cluster.submit(
                    """
                    steps:
                      - key: build
                        commands:
                          - "echo log-of-\(name)"
                          - "echo bytes-of-\(name) > out.txt"
                          - "\(cli) artifact upload out.txt"
                    """)
                let done = try await cluster.waitForPipeline(submitted.id)
                let log = String(decoding: try await cluster.log(done.jobs[0].id), as: UTF8.self)
                #expect(done.state == "succeeded", "\(log)")
                pipelines.append(done)
            }
            let (kept, gone) = (pipelines[0], pipelines[1])
            let (keptOK, keptText) = try await gantry(cluster, ["keep", kept.id])
            #expect(keptOK && keptText.contains("kept"), "\(keptText)")
            // Keep and let go again on the other one: not kept afterwards.
            let (_, _) = try await gantry(cluster, ["keep", gone.id])
            let (unkeptOK, unkeptText) = try await gantry(cluster, ["keep", "--remove", gone.id])
            #expect(unkeptOK && unkeptText.contains("not kept"), "\(unkeptText)")
            #expect(try await cluster.pipeline(kept.id).kept == true)
            #expect(try await cluster.pipeline(gone.id).kept == nil)
            func artifacts(_ id: String) async throws -> [API.Artifact] {
                let (_, data) = try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": id]))
                return try API.decoder.decode(API.ArtifactList.self, from: data).artifacts
            }
            let keptDigest = try #require(try await artifacts(kept.id).first?.sha256)
            let goneDigest = try #require(try await artifacts(gone.id).first?.sha256)

            // Ages of under a second, a run every second.
            await cluster.coordinator.stop()
            try await cluster.startCoordinator(extraArguments: [
                "--retain-logs-days", "0.00001", "--retain-artifacts-days", "0.00001", "--retention-interval", "1",
            ])
            let deadline = ContinuousClock.now + .seconds(30)
            while try await !artifacts(gone.id).isEmpty, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(try await artifacts(gone.id).isEmpty)
            var goneLog = try await cluster.request(.GET, APIRoute.jobLog.path(["id": gone.jobs[0].id]))
            while goneLog.0 != 410, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                goneLog = try await cluster.request(.GET, APIRoute.jobLog.path(["id": gone.jobs[0].id]))
            }
            #expect(goneLog.0 == 410 && String(decoding: goneLog.1, as: UTF8.self).contains("log_removed"))
            let (goneBlob, _) = try await cluster.request(.GET, APIRoute.downloadArtifact.path(["digest": goneDigest]))
            #expect(goneBlob == 404)
            // The kept pipeline: its artifact, its bytes and its log stay.
            #expect(try await artifacts(kept.id).map(\.sha256) == [keptDigest])
            let (keptBlob, bytes) = try await cluster.request(.GET, APIRoute.downloadArtifact.path(["digest": keptDigest]))
            #expect(keptBlob == 200 && String(decoding: bytes, as: UTF8.self) == "bytes-of-kept\n")
            #expect(String(decoding: try await cluster.log(kept.jobs[0].id), as: UTF8.self).contains("log-of-kept"))
        }
    }
}
