import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// The `meta_data` table on each store: overwrite, the per-pipeline key bound (checked in
/// the same transaction as the write), ordered bounded listing; SQLite's migration from
/// v6; and the key and value rules the API applies first.
@Suite("Meta-data store")
final class MetaDataStoreTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-metadata-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func row(_ pipeline: String, _ key: String, _ value: String, job: String? = nil) -> StoredMetaData {
        StoredMetaData(pipelineId: pipeline, key: key, value: value, jobId: job, updatedAt: Fixture.t0)
    }

    @Test func aDatabaseAsV6LeftItGainsTheTable() throws {
        let path = directory + "/gantry.sqlite"
        _ = try SQLiteStore(path: path, migratingUpTo: "v6: join tokens bound to a host")
        let store = try SQLiteStore(path: path)
        try store.commit(StoreBatch([.insertPipeline(Fixture.pipeline("p1", at: Fixture.t0), jobs: [])]))
        #expect(try store.setMetaData(row("p1", "version", "1.2.3", job: "j1"), maximumKeys: 3) == .created)
        #expect(try store.metaData(pipelineID: "p1", key: "version") == row("p1", "version", "1.2.3", job: "j1"))
    }

    @Test(arguments: StoreFactory.all) func setOverwriteBoundAndList(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any CoordinatorStore & MetaDataStore)
        try store.commit(StoreBatch([.insertPipeline(Fixture.pipeline("p1", at: Fixture.t0), jobs: [])]))
        try store.commit(StoreBatch([.insertPipeline(Fixture.pipeline("p2", at: Fixture.t0), jobs: [])]))

        #expect(try store.setMetaData(row("p1", "version", "1.2.3", job: "j1"), maximumKeys: 3) == .created)
        #expect(try store.setMetaData(row("p1", "version", "1.2.4"), maximumKeys: 3) == .updated)
        #expect(try store.metaData(pipelineID: "p1", key: "version") == row("p1", "version", "1.2.4"))
        #expect(try store.metaData(pipelineID: "p2", key: "version") == nil)
        #expect(try store.setMetaData(row("p1", "b", "x"), maximumKeys: 3) == .created)
        #expect(try store.setMetaData(row("p1", "a", "x"), maximumKeys: 3) == .created)
        // Full: a new key is refused, an existing one may still be overwritten.
        #expect(try store.setMetaData(row("p1", "c", "x"), maximumKeys: 3) == .full)
        #expect(try store.setMetaData(row("p1", "a", "y"), maximumKeys: 3) == .updated)
        #expect(try store.setMetaData(row("p2", "c", "x"), maximumKeys: 3) == .created)
        #expect(try store.metaDataKeys(pipelineID: "p1", limit: 10) == ["a", "b", "version"])
        #expect(try store.metaDataKeys(pipelineID: "p1", limit: 2) == ["a", "b"])
        // A pipeline that does not exist cannot hold any.
        #expect(throws: (any Error).self) { try store.setMetaData(self.row("nope", "a", "x"), maximumKeys: 3) }
    }

    @Test func keyAndValueRules() {
        for key in ["version", "image/tag", "a:b.c-d_e", String(repeating: "k", count: 255)] {
            #expect(MetaDataRule.keyProblem(key) == nil, "\(key)")
        }
        for key in ["", String(repeating: "k", count: 256), "a b", "ä", "a\u{0}", "$(x)", "a=b", "../..\\x"] {
            #expect(MetaDataRule.keyProblem(key) != nil, "\(key)")
        }
        #expect(MetaDataRule.valueProblem("") == nil)
        #expect(MetaDataRule.valueProblem(String(repeating: "v", count: 64 * 1024)) == nil)
        #expect(MetaDataRule.valueProblem(String(repeating: "v", count: 64 * 1024 + 1)) != nil)
        #expect(MetaDataRule.valueProblem("a\u{0}b") != nil)
    }
}
