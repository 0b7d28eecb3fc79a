import Foundation
@testable import GantryAgent
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The pieces of the work-tree checkout that need no git and no mount: the mount table,
/// the ready marker, the choice of a tree by its lock and marker.
@Suite("Work trees: mount table, markers, claims")
struct WorkTreeTests {
    static let mountinfo = """
        22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
        98 22 0:45 / /srv/work/job-a-1 rw,nosuid,nodev,relatime shared:50 - overlay overlay rw,lowerdir=/srv/state/git-mirrors/ab.trees/0,upperdir=/srv/work/job-a-1.overlay/upper,workdir=/srv/work/job-a-1.overlay/work
        99 22 0:46 / /srv/work/job\\040b-1/src rw,relatime - overlay overlay rw,lowerdir=/srv/t/1:/srv/t/2,upperdir=/u,workdir=/w
        100 22 0:47 / /srv/work rw,relatime - tmpfs tmpfs rw
        101 22 0:48 / /srv/workshop rw - tmpfs tmpfs rw
        broken line
        """

    @Test func theMountTableNamesMountPointsAndLowerLayers() {
        let table = MountTable.parse(Self.mountinfo)
        #expect(table.entries.count == 5)
        #expect(table.entries[2].mountPoint == "/srv/work/job b-1/src")
        #expect(table.entries[2].lowerDirectories == ["/srv/t/1", "/srv/t/2"])
        #expect(table.entries[3].lowerDirectories.isEmpty)
        // Deepest first, the directory itself included, a sibling with the same prefix not.
        #expect(table.mountPoints(atOrUnder: "/srv/work") == ["/srv/work/job b-1/src", "/srv/work/job-a-1", "/srv/work"])
        #expect(table.mountPoints(atOrUnder: "/srv/work/job-a-1") == ["/srv/work/job-a-1"])
        #expect(table.overlays(withLowerDirectory: "/srv/state/git-mirrors/ab.trees/0") == ["/srv/work/job-a-1"])
        #expect(table.overlays(withLowerDirectory: "/srv/t/2") == ["/srv/work/job b-1/src"])
        #expect(table.overlays(withLowerDirectory: "/srv/state/git-mirrors/ab.trees").isEmpty)
        #expect(MountTable.unescape("a\\134b\\012c\\9") == "a\\b\nc\\9")
        #expect(!MountTable.current().entries.isEmpty)
    }

    @Test func markersRoundTripAndRejectAnythingElse() throws {
        let commit = String(repeating: "a", count: 40)
        let marker = WorkTreeMarker(commit: commit, uid: 65534, gid: 65534)
        #expect(WorkTreeMarker(text: marker.text) == marker)
        for text in ["", "\(commit) 1", "main 1 1", "\(commit) -1 1", "\(commit) 1 1 1", "\(commit) 1 x"] {
            #expect(WorkTreeMarker(text: text) == nil, "\(text)")
        }
        let directory = NSTemporaryDirectory() + "gantry-marker-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(marker.write(directory + "/0.ready"))
        #expect(WorkTreeMarker.read(directory + "/0.ready") == marker)
        #expect(WorkTreeMarker.read(directory + "/missing.ready") == nil)
        // A link is not followed.
        symlink(directory + "/0.ready", directory + "/link.ready")
        #expect(WorkTreeMarker.read(directory + "/link.ready") == nil)
    }

    @Test func credentialsNeverBecomeATreesOrigin() throws {
        let url = try RepositoryURL(parsing: "https://user:token@git.example.com/team/app.git", allowFile: false)
        #expect(url.withoutCredentials == "https://git.example.com/team/app.git")
        let plain = try RepositoryURL(parsing: "https://git.example.com/team/app.git", allowFile: false)
        #expect(plain.withoutCredentials == plain.text)
    }

    /// Ready trees are shared, an update takes a tree nobody uses (one never used first,
    /// then the owner's own, least recently made ready first), and nothing waits.
    @Test func claimsShareReadyTreesAndUpdateTheLeastRecentlyUsedFreeOne() throws {
        let directory = NSTemporaryDirectory() + "gantry-claims-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let trees = WorkTrees(directory: directory, count: 4)
        let (a, b) = (String(repeating: "a", count: 40), String(repeating: "b", count: 40))
        let me: (uid: UInt32, gid: UInt32) = (1000, 1000)
        func mark(_ index: Int, _ commit: String, uid: UInt32 = 1000, age: Int) {
            let slot = WorkTrees.Slot(directory: directory, index: index)
            try? FileManager.default.createDirectory(atPath: slot.tree + "/.git", withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: slot.tree + "/.git/HEAD", contents: Data("ref: refs/heads/main\n".utf8))
            _ = WorkTreeMarker(commit: commit, uid: uid, gid: uid).write(slot.marker)
            var times = [timespec(tv_sec: time(nil) - age, tv_nsec: 0), timespec(tv_sec: time(nil) - age, tv_nsec: 0)]
            utimensat(AT_FDCWD, slot.marker, &times, 0)
        }
        mark(0, a, age: 100)
        mark(1, b, uid: 2000, age: 300)
        mark(2, b, age: 200)

        // Two readers share tree 0 at `a`; a reader of `b` for uid 1000 gets tree 2.
        let reader = try #require(trees.claimReady(WorkTreeMarker(commit: a, uid: 1000, gid: 1000)))
        let another = try #require(trees.claimReady(WorkTreeMarker(commit: a, uid: 1000, gid: 1000)))
        #expect(reader.slot.index == 0 && another.slot.index == 0 && reader.ready)
        #expect(trees.claimReady(WorkTreeMarker(commit: b, uid: 1000, gid: 1000))?.slot.index == 2)
        #expect(trees.claimReady(WorkTreeMarker(commit: String(repeating: "c", count: 40), uid: 1000, gid: 1000)) == nil)

        // An update skips the shared tree 0 and prefers the owner's tree 2 over the older
        // tree 1 of another uid; its marker goes at once, and the claim remembers it.
        let update = try #require(trees.claimToUpdate(owner: me))
        #expect(update.slot.index == 2 && !update.ready)
        #expect(update.previous == WorkTreeMarker(commit: b, uid: 1000, gid: 1000))
        #expect(WorkTreeMarker.read(update.slot.marker) == nil)
        #expect(trees.claimReady(WorkTreeMarker(commit: b, uid: 1000, gid: 1000)) == nil)
        let next = try #require(trees.claimToUpdate(owner: me))
        #expect(next.slot.index == 1)
        // Slot 3 has no tree yet: a new clone only once every tree is in use.
        let new = try #require(trees.claimToUpdate(owner: me))
        #expect(new.slot.index == 3 && new.previous == nil)
        // Every slot taken: nothing, at once.
        #expect(trees.claimToUpdate(owner: me) == nil)
        _ = (reader, another, update, next, new)
    }
}
