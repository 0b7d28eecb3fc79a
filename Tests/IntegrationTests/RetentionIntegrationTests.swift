import Foundation
import GantryProtocol
import Subprocess
import Testing

#if canImport(Glibc)
import Glibc
#endif

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

    /// The coordinator's `STATE/artifacts` on a 1 MiB tmpfs (mounted by the test; skipped
    /// where mounting is not permitted): a 2 MiB upload fails the step with
    /// `artifact_upload_failed` and `disk_full` in its reason (and the CLI's with the same
    /// message in the log), the coordinator keeps serving, and once the filesystem is
    /// grown a small upload is stored and read back intact.
    @Test func aFullDiskFailsTheUploadClearlyAndTheCoordinatorKeepsServing() async throws {
        #if os(Linux)
        try await TestCluster.with("disk-full") { cluster in
            await cluster.coordinator.stop()
            let artifacts = cluster.coordinatorState + "/artifacts"
            try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
            guard mount("tmpfs", artifacts, "tmpfs", 0, "size=1m,mode=0700") == 0 else {
                print("skipped: mounting a tmpfs is not permitted here (errno \(errno))")
                return
            }
            defer { umount2(artifacts, Int32(MNT_DETACH)) }
            try await cluster.startCoordinator()
            try await cluster.startAgent(slot: "1")
            let cli = cluster.binaries + "/gantry"
            // Declared (`artifacts:`): the agent uploads after the commands, retries the
            // 507 a few times, then fails the step with the coordinator's message.
            let big = try await cluster.submit(
                """
                steps:
                  - key: build
                    commands:
                      - "head -c 2097152 /dev/zero > big.bin"
                    artifacts: big.bin
                """)
            let failed = try await cluster.waitForPipeline(big.id, timeout: .seconds(120))
            let job = try #require(failed.jobs.first)
            #expect(failed.state == "failed")
            #expect(job.failure == "artifact_upload_failed", "\(job)")
            #expect(job.reason?.contains("disk_full") == true && job.reason?.contains("507") == true, "\(job.reason ?? "")")
            // From a step with the CLI: the same clear error in the step's log.
            let cliUpload = try await cluster.submit(
                """
                steps:
                  - key: build
                    commands:
                      - "head -c 2097152 /dev/zero > big.bin"
                      - "\(cli) artifact upload big.bin"
                """)
            let cliFailed = try await cluster.waitForPipeline(cliUpload.id, timeout: .seconds(60))
            let cliLog = String(decoding: try await cluster.log(cliFailed.jobs[0].id), as: UTF8.self)
            #expect(cliFailed.state == "failed" && cliLog.contains("the coordinator's disk is full"), "\(cliLog)")
            // The coordinator kept serving; once an operator adds space, a new upload is
            // stored and read back intact.
            #expect(try await cluster.request(.GET, "/healthz").0 == 200)
            guard mount("tmpfs", artifacts, "tmpfs", UInt(MS_REMOUNT), "size=8m,mode=0700") == 0 else {
                Issue.record("remounting the tmpfs larger failed (errno \(errno))")
                return
            }
            let small = try await cluster.submit(
                """
                steps:
                  - key: build
                    commands:
                      - "echo small > small.txt"
                      - "\(cli) artifact upload small.txt"
                      - "\(cli) artifact download small.txt --step build --to got && grep -x small got/small.txt"
                """)
            let done = try await cluster.waitForPipeline(small.id, timeout: .seconds(60))
            let log = String(decoding: try await cluster.log(done.jobs[0].id), as: UTF8.self)
            #expect(done.state == "succeeded", "\(log)")
        }
        #endif
    }
}
