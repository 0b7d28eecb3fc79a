import Foundation
@testable import GantryCoordinator
import GantryPipeline
import GantryProtocol
import Testing

/// `artifacts:`, `download:` and `cache:` from the pipeline file to the job row (schema
/// v13's `transfers` column) and into the lease (fields 18-21).
extension JobLifecycleTests {
    @Test mutating func aLeaseCarriesTheStepsArtifactsDownloadsAndCache() throws {
        try connect("a/1", capacity: 2)
        let (output, _) = try submit(
            """
            steps:
              - key: build
                command: make
                artifacts: [dist/*.tar.gz]
                artifacts_when: always
                cache: {key: "deps-{{ checksum \\"Package.resolved\\" }}", paths: [.build], restore_keys: [deps-]}
              - key: plain
                command: make
                download: [{step: build, path: "dist/*"}]
            """)
        let leases = Self.leases(output, to: "a/1")
        let build = try #require(leases.first { $0.stepKey == "build" })
        #expect(build.artifactPaths == ["dist/*.tar.gz"] && build.artifactsAlways)
        #expect(build.hasCache && build.cache.key == "deps-{{ checksum \"Package.resolved\" }}")
        #expect(build.cache.paths == [".build"] && build.cache.restoreKeys == ["deps-"])
        #expect(build.downloads.isEmpty)
        let plain = try #require(leases.first { $0.stepKey == "plain" })
        #expect(plain.downloads.map { [$0.step, $0.path] } == [["build", "dist/*"]])
        #expect(plain.artifactPaths.isEmpty && !plain.artifactsAlways && !plain.hasCache)
    }
}

extension StoreConformanceTests {
    @Test(arguments: StoreFactory.all)
    func aJobsTransfersReadBackAsWrittenAndNoneIsNull(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        var job = Fixture.job("p1-a", pipeline: pipeline, position: 0, state: .queued)
        job.transfers = StepTransfers(
            artifacts: ["dist/*", "build/**/*.xml"], artifactsAlways: true,
            downloads: [ArtifactDownloadRule(step: "build", path: "**")],
            cache: CacheRule(key: "k-{{ checksum \"a\" }}", paths: [".build"], restoreKeys: ["k-"]))
        let plain = Fixture.job("p1-b", pipeline: pipeline, position: 1, state: .queued)
        try store.insert(pipeline: pipeline, jobs: [job, plain])
        #expect(try store.job(id: "p1-a")?.transfers == job.transfers)
        #expect(try store.job(id: "p1-b")?.transfers == StepTransfers())
    }
}
