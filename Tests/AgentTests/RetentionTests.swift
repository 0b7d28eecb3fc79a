import Foundation
@testable import GantryAgent
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What an agent reclaims at start and when it stops taking jobs for lack of disk (issue 13,
/// retention, build-host half).
@Suite("Build-host retention", .timeLimit(.minutes(1)))
struct RetentionTests {
    let root = NSTemporaryDirectory() + "gantry-retention-\(UUID().uuidString)"

    // MARK: - The reclaim decision

    @Test func aFreeLockReclaimsTheAttemptAndAllItsSiblingsAHeldOneKeepsThemAndNoLockKeepsEverything() {
        let names = [
            "j1-1", "j1-1.ca.pem", "j1-1.home-Ab3xYz", "j1-1.cache.tgz", "j1-1.lock",
            "j2-1", "j2-1.ca.pem", "j2-1.lock",
            "old-3", "old-3.ca.pem",
            "notes.txt", ".hidden",
        ]
        let gone = LeftoverReclaim.reclaimable(names: names, locks: ["j1-1": .free, "j2-1": .held], held: [])
        #expect(Set(gone) == ["j1-1", "j1-1.ca.pem", "j1-1.home-Ab3xYz", "j1-1.cache.tgz", "j1-1.lock"])
    }

    @Test func anAttemptThisProcessHoldsIsKeptEvenWithAFreeLock() {
        let gone = LeftoverReclaim.reclaimable(
            names: ["j1-1", "j1-1.lock", "j1-2", "j1-2.lock"], locks: ["j1-1": .free, "j1-2": .free], held: ["j1-2"])
        #expect(Set(gone) == ["j1-1", "j1-1.lock"])
    }

    @Test func aJobIdWithDotsNeverLendsItsNameToAnotherAttempt() {
        // Job "a-1.x" attempt 2 is held by a live slot; job "a" attempt 1 was left by a killed one.
        let names = ["a-1", "a-1.ca.pem", "a-1.lock", "a-1.x-2", "a-1.x-2.ca.pem", "a-1.x-2.lock"]
        let gone = LeftoverReclaim.reclaimable(names: names, locks: ["a-1": .free, "a-1.x-2": .held], held: [])
        #expect(Set(gone) == ["a-1", "a-1.ca.pem", "a-1.lock"])
    }

    @Test func onlyNamesShapedLikeAttemptsCount() {
        #expect(LeftoverReclaim.isAttemptKey("0193-abc-1"))
        #expect(LeftoverReclaim.isAttemptKey("job.with.dots-12"))
        #expect(!LeftoverReclaim.isAttemptKey("job"))
        #expect(!LeftoverReclaim.isAttemptKey("job-"))
        #expect(!LeftoverReclaim.isAttemptKey("job-1x"))
        #expect(!LeftoverReclaim.isAttemptKey(".job-1"))
        #expect(!LeftoverReclaim.isAttemptKey("-1"))
        // A lock whose name is no attempt is never taken as one.
        #expect(LeftoverReclaim.reclaimable(names: ["x", "x.lock"], locks: ["x": .free], held: []).isEmpty)
    }

    @Test func spoolFilesGoUnlessHeldAndOtherSlotsDirsGoOnlyWithAFreeLock() {
        let files = LeftoverReclaim.reclaimableSpoolFiles(names: ["j1-1.log", "j2-3.log", "README", "j4-1.log.tmp"], held: ["j2-3"])
        #expect(files == ["j1-1.log"])
        let dirs = LeftoverReclaim.reclaimableSpoolDirs(
            names: ["h_1", "h_1.lock", "h_2", "h_2.lock", "h_pid-9", "h_pid-9.lock", "h_legacy"],
            locks: ["h_2": .held, "h_pid-9": .free], own: "h_1")
        #expect(dirs == ["h_pid-9"])
    }

    // MARK: - Reclaiming on disk

    @Test func reclaimingAWorkRootRemovesAKilledAgentsLeftoversAndKeepsALiveSlotsAndUnlockedOnes() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let files = FileManager.default
        try files.createDirectory(atPath: root + "/dead-1/src", withIntermediateDirectories: true)
        try Data(repeating: 7, count: 64 * 1024).write(to: URL(fileURLWithPath: root + "/dead-1/src/big"))
        try Data("ca".utf8).write(to: URL(fileURLWithPath: root + "/dead-1.ca.pem"))
        try files.createDirectory(atPath: root + "/dead-1.home-Q1w2E3", withIntermediateDirectories: true)
        // A killed agent's lock: the file is there, nobody holds it (the kernel let go).
        #expect(files.createFile(atPath: root + "/dead-1.lock", contents: nil))
        // A live sibling slot's attempt.
        try files.createDirectory(atPath: root + "/live-2", withIntermediateDirectories: true)
        let live = try #require(AttemptLock.take(root + "/live-2.lock"))
        // --keep-work-dirs leftovers: no lock.
        try files.createDirectory(atPath: root + "/kept-1", withIntermediateDirectories: true)

        let reclaimed = LeftoverReclaim.reclaimWorkRoot(root, held: [])
        #expect(reclaimed.entries == 4)
        #expect(reclaimed.bytes >= 64 * 1024)
        let left = Set(try files.contentsOfDirectory(atPath: root))
        #expect(left == ["live-2", "live-2.lock", "kept-1"])
        // The live slot still holds its lock, and lets go of it cleanly.
        #expect(AttemptLock.take(root + "/live-2.lock") == nil)
        live.release()
        #expect(!files.fileExists(atPath: root + "/live-2.lock"))
    }

    @Test func reclaimingASpoolKeepsHeldAttemptsAndLiveSlotsAndRemovesDeadSlots() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let files = FileManager.default
        let spool = root + "/spool"
        for slot in ["h_1", "h_2", "h_pid-9"] {
            try files.createDirectory(atPath: "\(spool)/\(slot)", withIntermediateDirectories: true)
            try Data("log".utf8).write(to: URL(fileURLWithPath: "\(spool)/\(slot)/j-1.log"))
        }
        try Data("log".utf8).write(to: URL(fileURLWithPath: "\(spool)/h_1/j-2.log"))
        let own = try #require(AttemptLock.take(spool + "/h_1.lock"))
        let sibling = try #require(AttemptLock.take(spool + "/h_2.lock"))
        #expect(files.createFile(atPath: spool + "/h_pid-9.lock", contents: nil))  // a dead slot's: nobody holds it
        let reclaimed = LeftoverReclaim.reclaimSpool(own: spool + "/h_1", held: ["j-2"], siblings: true)
        #expect(reclaimed.entries == 2)
        #expect(try files.contentsOfDirectory(atPath: spool + "/h_1") == ["j-2.log"])
        #expect(files.fileExists(atPath: spool + "/h_2/j-1.log"))
        #expect(!files.fileExists(atPath: spool + "/h_pid-9"))
        #expect(!files.fileExists(atPath: spool + "/h_pid-9.lock"))
        own.release()
        sibling.release()
    }

    // MARK: - The free-space floor

    @Test func theFloorParsesBytesSuffixesAndPercentAndZeroDisables() {
        #expect(FreeSpaceFloor(parsing: "0") == .disabled)
        #expect(FreeSpaceFloor(parsing: "0%") == .disabled)
        #expect(FreeSpaceFloor(parsing: "1048576") == .bytes(1 << 20))
        #expect(FreeSpaceFloor(parsing: "2G") == .bytes(2 << 30))
        #expect(FreeSpaceFloor(parsing: "2GiB") == .bytes(2 << 30))
        #expect(FreeSpaceFloor(parsing: "512m") == .bytes(512 << 20))
        #expect(FreeSpaceFloor(parsing: "5%") == .percent(5))
        #expect(FreeSpaceFloor(parsing: "100%") == .percent(100))
        for bad in ["", "-1", "101%", "G", "1.5G", "2X", "nan%", "99999999999999999999", "16777216T"] {
            #expect(FreeSpaceFloor(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func theDefaultFloorIsTwoGiBOrFivePercentWhicheverIsSmaller() {
        #expect(FreeSpaceFloor.standard.required(total: 1 << 40) == 2 << 30)
        #expect(FreeSpaceFloor.standard.required(total: 10 << 30) == (10 << 30) / 20)
        #expect(FreeSpaceFloor.disabled.required(total: 1 << 40) == nil)
        #expect(FreeSpaceFloor.percent(100).required(total: 1000) == 1000)
    }

    @Test func theFloorNamesTheFirstFilesystemBelowItAndNothingWhenAllAreAbove() {
        let work = FreeSpaceFloor.Space(path: "/work", available: 1 << 30, total: 100 << 30)
        let state = FreeSpaceFloor.Space(path: "/var/lib/gantry", available: 50 << 30, total: 100 << 30)
        let problem = FreeSpaceFloor.bytes(2 << 30).problem([state, work])
        #expect(problem?.contains("/work") == true)
        #expect(problem?.contains("1.0 GiB free") == true)
        #expect(problem?.contains("2.0 GiB") == true)
        #expect(FreeSpaceFloor.bytes(1 << 30).problem([state, work]) == nil)
        #expect(FreeSpaceFloor.disabled.problem([work]) == nil)
        #expect(FreeSpaceFloor.percent(100).problem([work]) != nil)
    }

    @Test func statvfsMeasuresARealFilesystem() throws {
        let space = try #require(FreeSpaceFloor.space(of: NSTemporaryDirectory()))
        #expect(space.total > 0 && space.available <= space.total)
        #expect(FreeSpaceFloor.space(of: root + "/missing") == nil)
    }
}
