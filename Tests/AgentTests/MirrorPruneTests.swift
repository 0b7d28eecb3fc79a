import Foundation
@testable import GantryAgent
import Testing

/// `--git-mirrors-max-idle`: mirrors no checkout used for longer are removed, never one a
/// slot holds, nor anything that is not a mirror.
@Suite("Git mirror pruning")
struct MirrorPruneTests {
    static let a = String(repeating: "a", count: 64) + ".git"
    static let b = String(repeating: "b", count: 64) + ".git"
    static let c = String(repeating: "c", count: 64) + ".git"

    @Test func onlyMirrorNamesIdleLongerThanTheBoundAreChosen() {
        let mirrors = [
            MirrorPrune.Mirror(name: Self.a, lastUsed: 0),
            MirrorPrune.Mirror(name: Self.b, lastUsed: 950),
            MirrorPrune.Mirror(name: "work.git", lastUsed: 0),
            MirrorPrune.Mirror(name: String(repeating: "A", count: 64) + ".git", lastUsed: 0),
        ]
        #expect(MirrorPrune.idle(mirrors, now: 1_000, maximumIdle: 100) == [Self.a])
        #expect(MirrorPrune.idle(mirrors, now: 1_000, maximumIdle: 1_000).isEmpty)
        // Times set to the extremes neither trap nor count a future time as idle.
        #expect(MirrorPrune.isIdle(lastUsed: .min, now: 1_000, maximumIdle: 100))
        #expect(!MirrorPrune.isIdle(lastUsed: .max, now: -1_000, maximumIdle: 100))
        #expect(!MirrorPrune.isIdle(lastUsed: 2_000, now: 1_000, maximumIdle: 100))
    }

    @Test func idleMirrorsGoAndAHeldOrRecentOneStays() throws {
        let root = NSTemporaryDirectory() + "gantry-prune-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let old = Date().addingTimeInterval(-40 * 86_400)
        for name in [Self.a, Self.b, Self.c, "not-a-mirror.git"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)/objects", withIntermediateDirectories: true)
            try Data(repeating: 7, count: 8192).write(to: URL(fileURLWithPath: "\(root)/\(name)/objects/pack"))
            _ = FileManager.default.createFile(atPath: "\(root)/\(name).lock", contents: nil)
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: "\(root)/\(name).lock")
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: "\(root)/\(name)")
        }
        // b was used a moment ago; c is held by a slot right now.
        try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: "\(root)/\(Self.b).lock")
        let held = open("\(root)/\(Self.c).lock", O_RDWR)
        #expect(held >= 0 && flock(held, LOCK_EX | LOCK_NB) == 0)
        defer { close(held) }

        // What a removal cut short left behind goes too.
        try FileManager.default.createDirectory(atPath: "\(root)/\(Self.a).trash-77/objects", withIntermediateDirectories: true)
        let removed = MirrorPrune.prune(root, maximumIdle: .seconds(30 * 86_400))
        #expect(removed.mirrors == 1 && removed.bytes >= 8192, "\(removed)")
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: root))
        #expect(!left.contains(Self.a) && left.contains(Self.a + ".lock"), "the lock file stays: \(left)")
        #expect(!left.contains { $0.contains(".trash-") }, "\(left)")
        #expect(MirrorPrune.isTrashName(Self.a + ".trash-12") && !MirrorPrune.isTrashName("x.git.trash-12"))
        #expect(left.contains(Self.b) && left.contains(Self.c) && left.contains("not-a-mirror.git"), "\(left)")
    }
}
