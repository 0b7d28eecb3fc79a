import AsyncHTTPClient
import Crypto
import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Subprocess
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Artifacts, promotion and caches end to end with the real binaries: steps upload and
/// download with `gantry artifact` and their job tokens; an upload cut mid-way resumes
/// from the stored offset; a job token reaches only its own job's sessions and its own
/// pipeline's artifacts; a promoted pipeline downloads the same digests and its deploy is
/// recorded against them; a feature branch's cache never reaches the default branch.
@Suite("Artifacts", .serialized, .timeLimit(.minutes(5)))
struct ArtifactTests {
    static func sha(_ data: Data) -> String { ArtifactDigest.hex(SHA256.hash(data: data)) }

    func submit(_ cluster: TestCluster, _ submission: API.SubmitPipeline) async throws -> (Int, Data) {
        try await cluster.request(.POST, "/v1/pipelines", body: try API.encoder.encode(submission))
    }

    func gantry(_ cluster: TestCluster, _ arguments: [String]) async throws -> (Bool, String) {
        let result = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry")),
            arguments: .init(arguments + ["--server", cluster.serverURL, "--token", cluster.adminToken]),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return (result.terminationStatus.isSuccess, result.standardOutput + result.standardError)
    }

    @Test func aStepUploadsALaterStepDownloadsAndAPromotionDeploysTheSameBytes() async throws {
        try await TestCluster.with("artifacts", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            try await cluster.startAgent(slot: "1")
            let cli = cluster.binaries + "/gantry"
            let root = cluster.root
            let build = """
                steps:
                  - key: build
                    commands:
                      - "mkdir -p dist && head -c 700000 /dev/urandom > dist/app.bin"
                      - "\(cli) artifact upload dist/app.bin"
                      - "\(cli) artifact upload dist/app.bin"
                      - "sha256sum dist/app.bin | cut -c1-64 > \(root)/built.sha"
                      - "echo other > other.bin"
                      - "! \(cli) artifact upload other.bin --name dist/app.bin 2> refusal.txt"
                      - "cat refusal.txt && grep -q immutable refusal.txt"
                  - key: test
                    depends_on: build
                    commands:
                      - "\(cli) artifact download 'dist/*' --step build --to out"
                      - "sha256sum out/dist/app.bin | cut -c1-64 > \(root)/tested.sha"
                """
            let (status, data) = try await submit(
                cluster, API.SubmitPipeline(yaml: build, file: "build.yml", commit: "c0ffee", branch: "main"))
            #expect(status == 201, "\(String(decoding: data, as: UTF8.self))")
            let pipeline = try API.decoder.decode(API.Pipeline.self, from: data)
            let done = try await cluster.waitForPipeline(pipeline.id)
            var logs = ""
            for job in done.jobs { logs += String(decoding: try await cluster.log(job.id), as: UTF8.self) }
            #expect(done.state == "succeeded", "\(logs)")
            let built = try String(contentsOfFile: root + "/built.sha", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let tested = try String(contentsOfFile: root + "/tested.sha", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(built.count == 64 && built == tested)

            // Listed once, with its provenance.
            let (_, listed) = try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": pipeline.id]))
            let list = try API.decoder.decode(API.ArtifactList.self, from: listed)
            let buildJob = try #require(done.jobs.first { $0.key == "build" })
            #expect(list.artifacts.count == 1)
            let artifact = try #require(list.artifacts.first)
            #expect(artifact.sha256 == built && artifact.name == "dist/app.bin" && artifact.size == 700_000)
            #expect(artifact.stepKey == "build" && artifact.jobId == buildJob.id && artifact.attempt == 1)
            #expect(artifact.commit == "c0ffee" && artifact.agentId.hasSuffix("/1"))
            // Stored once, by digest.
            let blob = cluster.coordinatorState + "/artifacts/sha256/\(built.prefix(2))/\(built)"
            #expect(try Data(contentsOf: URL(fileURLWithPath: blob)).count == 700_000)

            // A promotion of a pipeline that does not exist is refused before anything runs.
            let deploy = """
                steps:
                  - key: deploy
                    environment: production
                    commands:
                      - "\(cli) artifact download 'dist/*' --step build"
                      - "sha256sum dist/app.bin | cut -c1-64 > \(root)/deployed.sha"
                """
            let (missing, refusal) = try await submit(
                cluster, API.SubmitPipeline(yaml: deploy, file: "deploy.yml", fromPipeline: "00000000-0000-0000-0000-000000000000"))
            #expect(missing == 422 && String(decoding: refusal, as: UTF8.self).contains("does not exist"))

            // `--from-pipeline`: the deploy downloads the same digest.
            let run = try await Subprocess.run(
                .path(.init(cli)),
                arguments: [
                    "run", "--server", cluster.serverURL, "--token", cluster.adminToken, "--from-pipeline", pipeline.id,
                    try write(deploy, to: root + "/deploy.yml"),
                ],
                output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
            #expect(run.terminationStatus.isSuccess, "\(run.standardOutput) \(run.standardError)")
            let deployed = try String(contentsOfFile: root + "/deployed.sha", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(deployed == built)

            // `artifact show`: where the bytes came from and where they were deployed.
            let (shown, text) = try await gantry(cluster, ["artifact", "show", built])
            #expect(shown && text.contains("pipeline \(pipeline.id) step build job \(buildJob.id)"), "\(text)")
            #expect(text.contains("production: pipeline") && text.contains("succeeded"), "\(text)")
            let (_, detailData) = try await cluster.request(.GET, APIRoute.getArtifact.path(["digest": built]))
            let detail = try API.decoder.decode(API.ArtifactDetail.self, from: detailData)
            #expect(detail.deployments.count == 1 && detail.deployments.first?.pipelineId != pipeline.id)
            let promoted = try #require(detail.deployments.first?.pipelineId)
            let (_, promotedList) = try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": promoted]))
            #expect(try API.decoder.decode(API.ArtifactList.self, from: promotedList).promotedFrom == pipeline.id)

            // `artifacts_from:` in the file does the same.
            let inFile = "artifacts_from: \(pipeline.id)\n" + deploy
            let (fromFile, fileData) = try await submit(cluster, API.SubmitPipeline(yaml: inFile, file: "deploy.yml"))
            #expect(fromFile == 201)
            let second = try API.decoder.decode(API.Pipeline.self, from: fileData)
            #expect(second.artifactsFrom == pipeline.id)
            #expect(try await cluster.waitForPipeline(second.id).state == "succeeded")
        }
    }

    /// A retry keeps the job id with attempt + 1 and rebuilds its files: attempt 2 uploads
    /// other bytes under the name attempt 1 stored (and left a session of), succeeds, and
    /// a later step downloads attempt 2's bytes.
    @Test func aRetriedJobUploadsItsArtifactsAgain() async throws {
        try await TestCluster.with("artifact-retry") { cluster in
            try await cluster.startAgent(slot: "1")
            let cli = cluster.binaries + "/gantry"
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: build
                    retry: {automatic: [{exit_status: 75, limit: 1}]}
                    commands:
                      - "echo attempt-$GANTRY_ATTEMPT > out.txt"
                      - "\(cli) artifact upload out.txt"
                      - "[ $GANTRY_ATTEMPT -ge 2 ] || exit 75"
                  - key: check
                    depends_on: build
                    commands:
                      - "\(cli) artifact download out.txt --step build --to got"
                      - "grep -x attempt-2 got/out.txt"
                """)
            let done = try await cluster.waitForPipeline(pipeline.id)
            var logs = ""
            for job in done.jobs { logs += String(decoding: try await cluster.log(job.id), as: UTF8.self) }
            #expect(done.state == "succeeded", "\(logs)")
            let build = try #require(done.jobs.first { $0.key == "build" })
            let (_, listed) = try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": pipeline.id]))
            let artifacts = try API.decoder.decode(API.ArtifactList.self, from: listed).artifacts
            #expect(artifacts.count == 1 && artifacts.first?.attempt == 2 && artifacts.first?.jobId == build.id, "\(artifacts)")
            #expect(artifacts.first?.sha256 == Self.sha(Data("attempt-2\n".utf8)))
        }
    }

    func write(_ text: String, to path: String) throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Two held jobs (each step hands out its token and waits): one on a feature branch,
    /// one on main. Raw API calls with their tokens: a cut upload resumes, another job's
    /// session and pipeline are refused, ranges are served, caches stay in their scopes.
    @Test func uploadsResumeTokensStayConfinedAndCachesStayInTheirScope() async throws {
        try await TestCluster.with("artifact-tokens") { cluster in
            try await cluster.startAgent(slot: "1")
            try await cluster.startAgent(slot: "2")
            let go = cluster.root + "/go"
            func holder(_ name: String) -> String {
                let file = cluster.root + "/\(name).token"
                return """
                    steps:
                      - key: \(name)
                        commands:
                          - "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(file).tmp && mv \(file).tmp \(file)"
                          - "i=0; while [ ! -f \(go) ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
                    """
            }
            let (_, featureData) = try await submit(cluster, API.SubmitPipeline(yaml: holder("feature"), branch: "feature"))
            let (_, mainData) = try await submit(cluster, API.SubmitPipeline(yaml: holder("main"), branch: "main"))
            let feature = try API.decoder.decode(API.Pipeline.self, from: featureData)
            let main = try API.decoder.decode(API.Pipeline.self, from: mainData)
            let featureJob = try #require(feature.jobs.first).id, mainJob = try #require(main.jobs.first).id
            try await waitUntil("both tokens", timeout: .seconds(60)) {
                FileManager.default.fileExists(atPath: cluster.root + "/feature.token")
                    && FileManager.default.fileExists(atPath: cluster.root + "/main.token")
            }
            let featureToken = try String(contentsOfFile: cluster.root + "/feature.token", encoding: .utf8)
            let mainToken = try String(contentsOfFile: cluster.root + "/main.token", encoding: .utf8)
            defer { _ = FileManager.default.createFile(atPath: go, contents: Data()) }

            let bytes = Data((0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
            let digest = Self.sha(bytes)
            let create = try API.encoder.encode(API.CreateArtifactUpload(name: "big.bin", size: 1_000_000, sha256: digest))
            // A person's token cannot store an artifact: provenance must be a job.
            let (person, personText) = try await cluster.request(.POST, APIRoute.createArtifactUpload.path(["id": featureJob]), body: create)
            #expect(person == 403 && String(decoding: personText, as: UTF8.self).contains("only a running job"))
            // Another job's token cannot open a session for this job.
            let (foreignCreate, _) = try await cluster.request(
                .POST, APIRoute.createArtifactUpload.path(["id": featureJob]), body: create, token: mainToken)
            #expect(foreignCreate == 403)
            let (created, createdData) = try await cluster.request(
                .POST, APIRoute.createArtifactUpload.path(["id": featureJob]), body: create, token: featureToken)
            #expect(created == 201, "\(String(decoding: createdData, as: UTF8.self))")
            let session = try API.decoder.decode(API.ArtifactUpload.self, from: createdData)
            #expect(session.offset == 0 && session.artifact == nil)

            // The connection drops after 400,000 of the 1,000,000 bytes it announced.
            try cutPatch(cluster, session: session.id, token: featureToken, offset: 0, announced: 1_000_000, body: bytes.prefix(400_000))
            var stored: API.ArtifactUpload?
            try await waitUntil("the cut PATCH's bytes recorded", timeout: .seconds(30)) {
                let (_, data) = try await cluster.request(.GET, APIRoute.getArtifactUpload.path(["id": session.id]), token: featureToken)
                stored = try? API.decoder.decode(API.ArtifactUpload.self, from: data)
                return stored?.offset == 400_000
            }
            // Asking to upload the same file again resumes the same session.
            let (reopened, reopenedData) = try await cluster.request(
                .POST, APIRoute.createArtifactUpload.path(["id": featureJob]), body: create, token: featureToken)
            let resumedSession = try? API.decoder.decode(API.ArtifactUpload.self, from: reopenedData)
            #expect(reopened == 200 && resumedSession?.id == session.id && resumedSession?.offset == 400_000)
            // Another job may not see or write it.
            #expect(try await cluster.request(.GET, APIRoute.getArtifactUpload.path(["id": session.id]), token: mainToken).0 == 403)
            let (foreignPatch, _) = try await patch(cluster, session.id, token: mainToken, offset: 400_000, bytes.suffix(from: 400_000))
            #expect(foreignPatch == 403)
            // A wrong offset is answered with the session, to resume from.
            let (wrong, wrongData) = try await patch(cluster, session.id, token: featureToken, offset: 0, bytes)
            #expect(wrong == 409 && (try? API.decoder.decode(API.ArtifactUpload.self, from: wrongData))?.offset == 400_000)
            // Bytes past the declared size are refused.
            let (tooMuch, _) = try await patch(cluster, session.id, token: featureToken, offset: 400_000, bytes.suffix(from: 400_000) + Data([1]))
            #expect(tooMuch == 413)
            let (_, afterData) = try await cluster.request(.GET, APIRoute.getArtifactUpload.path(["id": session.id]), token: featureToken)
            let resumeAt = try API.decoder.decode(API.ArtifactUpload.self, from: afterData).offset
            let (resumed, resumedData) = try await patch(
                cluster, session.id, token: featureToken, offset: resumeAt, bytes.suffix(from: Int(resumeAt)))
            #expect(resumed == 200 && (try? API.decoder.decode(API.ArtifactUpload.self, from: resumedData))?.offset == 1_000_000)
            let (completed, completedData) = try await cluster.request(
                .POST, APIRoute.completeArtifactUpload.path(["id": session.id]), token: featureToken)
            let artifact = try #require(try? API.decoder.decode(API.ArtifactUpload.self, from: completedData).artifact)
            #expect(completed == 200 && artifact.sha256 == digest && artifact.size == 1_000_000 && artifact.jobId == featureJob)
            // Immutable: other bytes under the name are refused; the same bytes are born complete.
            let other = try API.encoder.encode(API.CreateArtifactUpload(name: "big.bin", size: 3, sha256: Self.sha(Data([1, 2, 3]))))
            #expect(try await cluster.request(.POST, APIRoute.createArtifactUpload.path(["id": featureJob]), body: other, token: featureToken).0 == 409)
            let (again, againData) = try await cluster.request(
                .POST, APIRoute.createArtifactUpload.path(["id": featureJob]), body: create, token: featureToken)
            #expect(again == 200 && (try? API.decoder.decode(API.ArtifactUpload.self, from: againData))?.artifact?.sha256 == digest)

            // Downloads: whole, and from a range, with the digest header.
            let content = APIRoute.downloadArtifact.path(["digest": digest])
            #expect(try await cluster.request(.GET, content, token: featureToken).1 == bytes)
            var ranged = HTTPClientRequest(url: cluster.serverURL + content)
            ranged.headers.add(name: "Authorization", value: "Bearer \(featureToken)")
            ranged.headers.add(name: "Range", value: "bytes=999000-")
            let response = try await cluster.http.execute(ranged, timeout: .seconds(30))
            let tail = try await response.body.collect(upTo: 1 << 20)
            #expect(response.status == .partialContent && Data(buffer: tail) == bytes.suffix(from: 999_000))
            #expect(response.headers.first(name: "Content-Range") == "bytes 999000-999999/1000000")
            #expect(response.headers.first(name: "X-Gantry-Sha256") == digest)
            // Another pipeline's job may neither download nor list them.
            #expect(try await cluster.request(.GET, content, token: mainToken).0 == 403)
            #expect(try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": feature.id]), token: mainToken).0 == 403)
            // Bytes held for another pipeline: knowing their digest is not enough, this job
            // must send them (they are then stored once), and only then may it download them.
            let sameBytes = try API.encoder.encode(API.CreateArtifactUpload(name: "copy.bin", size: 1_000_000, sha256: digest))
            let (opened, openedData) = try await cluster.request(
                .POST, APIRoute.createArtifactUpload.path(["id": mainJob]), body: sameBytes, token: mainToken)
            let copy = try API.decoder.decode(API.ArtifactUpload.self, from: openedData)
            #expect(opened == 201 && copy.artifact == nil && copy.offset == 0)
            #expect(try await patch(cluster, copy.id, token: mainToken, offset: 0, bytes).0 == 200)
            let (copied, copiedData) = try await cluster.request(.POST, APIRoute.completeArtifactUpload.path(["id": copy.id]), token: mainToken)
            #expect(copied == 200 && (try? API.decoder.decode(API.ArtifactUpload.self, from: copiedData))?.artifact?.jobId == mainJob)
            let blobs = cluster.coordinatorState + "/artifacts/sha256/\(digest.prefix(2))"
            #expect(try FileManager.default.contentsOfDirectory(atPath: blobs) == [digest], "stored once")
            #expect(try await cluster.request(.GET, content, token: mainToken).1 == bytes)
            // Now held in its own pipeline: the same bytes again are born complete.
            let third = try API.encoder.encode(API.CreateArtifactUpload(name: "third.bin", size: 1_000_000, sha256: digest))
            let (born, bornData) = try await cluster.request(
                .POST, APIRoute.createArtifactUpload.path(["id": mainJob]), body: third, token: mainToken)
            let bornSession = try? API.decoder.decode(API.ArtifactUpload.self, from: bornData)
            #expect(born == 201 && bornSession?.artifact?.name == "third.bin" && bornSession?.offset == 1_000_000)

            // Caches: the feature branch saves; main cannot see it, the feature can.
            let archive = Data("feature cache".utf8)
            try await saveCache(cluster, job: featureJob, token: featureToken, key: "deps-abc", archive)
            let missOnMain = try await cluster.request(.GET, resolve(mainJob, "deps-abc", ["deps-"]), token: mainToken)
            #expect(missOnMain.0 == 404 && String(decoding: missOnMain.1, as: UTF8.self).contains("cache_miss"))
            let (hit, hitData) = try await cluster.request(.GET, resolve(featureJob, "deps-abc", []), token: featureToken)
            let featureHit = try API.decoder.decode(API.CacheHit.self, from: hitData)
            #expect(hit == 200 && featureHit.exact && featureHit.entry.scope == "branch:feature")
            // Main's cache is readable from the feature branch by restore key.
            try await saveCache(cluster, job: mainJob, token: mainToken, key: "deps-main", Data("main cache".utf8))
            let (_, restoreData) = try await cluster.request(.GET, resolve(featureJob, "deps-zzz", ["deps-m"]), token: featureToken)
            let restored = try API.decoder.decode(API.CacheHit.self, from: restoreData)
            #expect(!restored.exact && restored.entry.scope == "branch:main" && restored.entry.key == "deps-main")
            let cacheContent = APIRoute.downloadCache.path(["id": featureJob, "digest": restored.entry.sha256])
            #expect(try await cluster.request(.GET, cacheContent, token: featureToken).1 == Data("main cache".utf8))
            // Main may not read the feature's archive even by digest.
            let featureArchive = APIRoute.downloadCache.path(["id": mainJob, "digest": Self.sha(archive)])
            #expect(try await cluster.request(.GET, featureArchive, token: mainToken).0 == 404)

            let (listedOK, listed) = try await gantry(cluster, ["cache", "list"])
            #expect(listedOK && listed.contains("branch:feature  deps-abc") && listed.contains("branch:main  deps-main"), "\(listed)")
            let (clearedOK, cleared) = try await gantry(cluster, ["cache", "clear", "--scope", "branch:feature"])
            #expect(clearedOK && cleared.contains("cleared 1 cache"), "\(cleared)")
            #expect(!FileManager.default.fileExists(
                atPath: cluster.coordinatorState + "/artifacts/sha256/\(Self.sha(archive).prefix(2))/\(Self.sha(archive))"))

            _ = FileManager.default.createFile(atPath: go, contents: Data())
            #expect(try await cluster.waitForPipeline(feature.id).state == "succeeded")
            #expect(try await cluster.waitForPipeline(main.id).state == "succeeded")
        }
    }

    /// Every branch restores the default branch's cache, and the branch is the submitter's
    /// word: a developer's pipeline on `main` may restore it but not save to it; the same
    /// developer's feature branch saves its own. A deployer disabled between opening and
    /// completing a save is refused at completion.
    @Test func onlyADeployersPipelineSavesTheDefaultBranchsCache() async throws {
        try await TestCluster.with("cache-protected") { cluster in
            try await cluster.startAgent(slot: "1")
            try await cluster.startAgent(slot: "2")
            try await cluster.startAgent(slot: "3")
            let developer = try await AuthorizationTests.hostToken(cluster, identity: "dev", role: "developer")
            let go = cluster.root + "/go"
            defer { _ = FileManager.default.createFile(atPath: go, contents: Data()) }
            var tokens: [String: (job: String, token: String)] = [:]
            for branch in ["main", "topic"] {
                let file = cluster.root + "/\(branch).token"
                let yaml = """
                    steps:
                      - key: hold
                        commands:
                          - "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(file).tmp && mv \(file).tmp \(file)"
                          - "i=0; while [ ! -f \(go) ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
                    """
                let (status, data) = try await cluster.request(
                    .POST, "/v1/pipelines", body: try API.encoder.encode(API.SubmitPipeline(yaml: yaml, branch: branch)),
                    token: developer)
                #expect(status == 201, "\(String(decoding: data, as: UTF8.self))")
                let job = try #require(try API.decoder.decode(API.Pipeline.self, from: data).jobs.first).id
                try await waitUntil("\(branch)'s token", timeout: .seconds(60)) { FileManager.default.fileExists(atPath: file) }
                tokens[branch] = (job, try String(contentsOfFile: file, encoding: .utf8))
            }
            let main = try #require(tokens["main"]), topic = try #require(tokens["topic"])
            let archive = Data("a developer's main cache".utf8)
            let body = try API.encoder.encode(API.CreateCacheUpload(key: "deps-1", size: UInt64(archive.count), sha256: Self.sha(archive)))
            let (refused, refusedData) = try await cluster.request(
                .POST, APIRoute.createCacheUpload.path(["id": main.job]), body: body, token: main.token)
            let text = String(decoding: refusedData, as: UTF8.self)
            #expect(refused == 403 && text.contains("cache_scope_protected") && text.contains("dev"), "\(text)")
            // The same developer's topic branch saves to its own scope.
            try await saveCache(cluster, job: topic.job, token: topic.token, key: "deps-1", archive)
            let (listedOK, listed) = try await gantry(cluster, ["cache", "list"])
            #expect(listedOK && listed.contains("branch:topic  deps-1") && !listed.contains("branch:main"), "\(listed)")

            // A deployer's main build may open a save; disabled before it completes, the
            // completion is refused too (checked again, not only at opening).
            let deployer = try await AuthorizationTests.hostToken(cluster, identity: "ship", role: "deployer")
            let shipFile = cluster.root + "/ship.token"
            let shipYAML = """
                steps:
                  - key: hold
                    commands:
                      - "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(shipFile).tmp && mv \(shipFile).tmp \(shipFile)"
                      - "i=0; while [ ! -f \(go) ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
                """
            let (shipStatus, shipData) = try await cluster.request(
                .POST, "/v1/pipelines", body: try API.encoder.encode(API.SubmitPipeline(yaml: shipYAML, branch: "main")), token: deployer)
            #expect(shipStatus == 201, "\(String(decoding: shipData, as: UTF8.self))")
            let shipJob = try #require(try API.decoder.decode(API.Pipeline.self, from: shipData).jobs.first).id
            try await waitUntil("the deployer's token", timeout: .seconds(60)) { FileManager.default.fileExists(atPath: shipFile) }
            let shipToken = try String(contentsOfFile: shipFile, encoding: .utf8)
            let (opened, openedData) = try await cluster.request(
                .POST, APIRoute.createCacheUpload.path(["id": shipJob]), body: body, token: shipToken)
            #expect(opened == 201, "\(String(decoding: openedData, as: UTF8.self))")
            let session = try API.decoder.decode(API.ArtifactUpload.self, from: openedData)
            #expect(try await patch(cluster, session.id, token: shipToken, offset: 0, archive).0 == 200)
            let (disabled, _) = try await gantry(cluster, ["identity", "disable", "ship"])
            #expect(disabled)
            let (completed, completedData) = try await cluster.request(
                .POST, APIRoute.completeArtifactUpload.path(["id": session.id]), token: shipToken)
            #expect(completed == 403 && String(decoding: completedData, as: UTF8.self).contains("cache_scope_protected"),
                "\(completed) \(String(decoding: completedData, as: UTF8.self))")
            let (_, after) = try await gantry(cluster, ["cache", "list"])
            #expect(!after.contains("branch:main"), "\(after)")
        }
    }

    /// The coordinator is killed mid-upload: the session, its offset and its part file
    /// survive, and the same job token finishes the upload against the new process.
    @Test func anUploadResumesAcrossACoordinatorRestart() async throws {
        try await TestCluster.with("artifact-restart") { cluster in
            try await cluster.startAgent(slot: "1")
            let tokenFile = cluster.root + "/job.token", go = cluster.root + "/go"
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: holder
                    commands:
                      - "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(tokenFile).tmp && mv \(tokenFile).tmp \(tokenFile)"
                      - "i=0; while [ ! -f \(go) ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
                """)
            let job = try #require(pipeline.jobs.first).id
            try await waitUntil("the step's token", timeout: .seconds(60)) { FileManager.default.fileExists(atPath: tokenFile) }
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8)
            defer { _ = FileManager.default.createFile(atPath: go, contents: Data()) }
            let bytes = Data((0..<600_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) })
            let create = try API.encoder.encode(API.CreateArtifactUpload(name: "restart.bin", size: 600_000, sha256: Self.sha(bytes)))
            let (_, createdData) = try await cluster.request(.POST, APIRoute.createArtifactUpload.path(["id": job]), body: create, token: token)
            let session = try API.decoder.decode(API.ArtifactUpload.self, from: createdData)
            #expect(try await patch(cluster, session.id, token: token, offset: 0, bytes.prefix(250_000)).0 == 200)

            try await cluster.killCoordinator()
            try await cluster.startCoordinator()
            var stored: API.ArtifactUpload?
            try await waitUntil("the session after the restart", timeout: .seconds(30)) {
                let (status, data) = try await cluster.request(.GET, APIRoute.getArtifactUpload.path(["id": session.id]), token: token)
                stored = try? API.decoder.decode(API.ArtifactUpload.self, from: data)
                return status == 200
            }
            #expect(stored?.offset == 250_000)
            #expect(try await patch(cluster, session.id, token: token, offset: 250_000, bytes.suffix(from: 250_000)).0 == 200)
            let (done, doneData) = try await cluster.request(.POST, APIRoute.completeArtifactUpload.path(["id": session.id]), token: token)
            #expect(done == 200 && (try? API.decoder.decode(API.ArtifactUpload.self, from: doneData))?.artifact?.sha256 == Self.sha(bytes))
            _ = FileManager.default.createFile(atPath: go, contents: Data())
            #expect(try await cluster.waitForPipeline(pipeline.id).state == "succeeded")
        }
    }

    /// `gantry artifact upload` through a proxy that is cut while the body streams: the
    /// CLI asks the coordinator's offset and sends only the rest.
    @Test func theCLIResumesAnUploadWhoseConnectionWasCut() async throws {
        try await TestCluster.with("artifact-cli-cut") { cluster in
            try await cluster.startAgent(slot: "1")
            let tokenFile = cluster.root + "/job.token", go = cluster.root + "/go"
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: holder
                    commands:
                      - "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(tokenFile).tmp && mv \(tokenFile).tmp \(tokenFile)"
                      - "i=0; while [ ! -f \(go) ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
                """)
            let job = try #require(pipeline.jobs.first).id
            try await waitUntil("the step's token", timeout: .seconds(60)) { FileManager.default.fileExists(atPath: tokenFile) }
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8)
            defer { _ = FileManager.default.createFile(atPath: go, contents: Data()) }
            let proxy = TCPProxy(target: cluster.httpAddress)
            let proxied = try await proxy.start()
            defer { proxy.stop() }
            let file = cluster.root + "/big.bin"
            let size = 256 << 20
            #expect(FileManager.default.createFile(atPath: file, contents: nil))
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
            let base = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            for index in 0..<(size >> 20) {
                var chunk = base
                chunk[0] = UInt8(truncatingIfNeeded: index)
                try handle.write(contentsOf: chunk)
            }
            try handle.close()
            let uploads = cluster.coordinatorState + "/artifacts/uploads"
            let upload = Task {
                try await Subprocess.run(
                    .path(.init(cluster.binaries + "/gantry")), arguments: ["artifact", "upload", file, "--name", "big.bin"],
                    environment: .inherit.updating([
                        "GANTRY_JOB_ID": job, "GANTRY_JOB_TOKEN": token, "GANTRY_API_URL": "http://\(proxied)",
                    ]),
                    output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
            }
            let ended = Mutex(false)
            Task {
                _ = await upload.result
                ended.withLock { $0 = true }
            }
            // Cut once part of the body is on the coordinator's disk (or stop waiting if the
            // upload ended first, which the checks below then report with its output).
            try await waitUntil("part of the upload on disk", timeout: .seconds(120)) {
                if ended.withLock({ $0 }) { return true }
                let parts = (try? FileManager.default.contentsOfDirectory(atPath: uploads)) ?? []
                return parts.contains { name in
                    let attributes = try? FileManager.default.attributesOfItem(atPath: uploads + "/" + name)
                    let size = (attributes?[.size] as? NSNumber)?.intValue ?? 0
                    return size > 8 << 20
                }
            }
            proxy.cut()
            proxy.restore()
            let result = try await upload.value
            #expect(result.terminationStatus.isSuccess, "\(result.standardOutput) \(result.standardError)")
            #expect(result.standardError.contains("resuming"), "\(result.standardError)")
            let (_, listed) = try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": pipeline.id]))
            let artifact = try #require(try API.decoder.decode(API.ArtifactList.self, from: listed).artifacts.first)
            let (digest, _) = try Self.fileDigest(file)
            #expect(artifact.name == "big.bin" && artifact.size == UInt64(size) && artifact.sha256 == digest)
            try? FileManager.default.removeItem(atPath: file)
        }
    }

    static func fileDigest(_ path: String) throws -> (String, Int) {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var hash = SHA256()
        var total = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hash.update(data: chunk)
            total += chunk.count
        }
        return (ArtifactDigest.hex(hash.finalize()), total)
    }

    func resolve(_ job: String, _ key: String, _ restoreKeys: [String]) -> String {
        APIRoute.resolveCache.path(["id": job]) + "?key=\(key)" + restoreKeys.map { "&restore_key=\($0)" }.joined()
    }

    func saveCache(_ cluster: TestCluster, job: String, token: String, key: String, _ archive: Data) async throws {
        let body = try API.encoder.encode(API.CreateCacheUpload(key: key, size: UInt64(archive.count), sha256: Self.sha(archive)))
        let (status, data) = try await cluster.request(.POST, APIRoute.createCacheUpload.path(["id": job]), body: body, token: token)
        #expect(status == 201, "\(String(decoding: data, as: UTF8.self))")
        let session = try API.decoder.decode(API.ArtifactUpload.self, from: data)
        #expect(try await patch(cluster, session.id, token: token, offset: 0, archive).0 == 200)
        let (done, doneData) = try await cluster.request(.POST, APIRoute.completeArtifactUpload.path(["id": session.id]), token: token)
        #expect(done == 200 && (try? API.decoder.decode(API.ArtifactUpload.self, from: doneData))?.cache?.key == key)
    }

    func patch(_ cluster: TestCluster, _ session: String, token: String, offset: UInt64, _ body: Data) async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: cluster.serverURL + APIRoute.appendArtifactUpload.path(["id": session]))
        request.method = .PATCH
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Upload-Offset", value: String(offset))
        request.body = .bytes(ByteBuffer(data: body))
        let response = try await cluster.http.execute(request, timeout: .seconds(60))
        let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
        APIContract.shared.check(
            method: "PATCH", path: APIRoute.appendArtifactUpload.path(["id": session]), status: Int(response.status.code),
            contentType: response.headers.first(name: "Content-Type"), body: data, sourceLocation: #_sourceLocation)
        return (Int(response.status.code), data)
    }

    /// A PATCH that announces `announced` bytes, sends `body`, and closes the socket.
    func cutPatch(_ cluster: TestCluster, session: String, token: String, offset: UInt64, announced: Int, body: Data) throws {
        let parts = cluster.httpAddress.split(separator: ":")
        let port = try #require(parts.last.flatMap { UInt16($0) })
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let head =
            "PATCH \(APIRoute.appendArtifactUpload.path(["id": session])) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "Authorization: Bearer \(token)\r\nUpload-Offset: \(offset)\r\nContent-Length: \(announced)\r\n\r\n"
        for chunk in [Data(head.utf8), body] {
            try chunk.withUnsafeBytes { raw in
                var sent = 0
                while sent < raw.count {
                    let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                    guard n > 0 else { throw TimedOut(description: "send failed: \(errno)") }
                    sent += n
                }
            }
        }
        // Let the server read what was sent before the connection goes.
        usleep(300_000)
    }
}
