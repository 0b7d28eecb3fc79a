#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A repository's checked-out work trees on this host (`<mirror>.trees/<n>`, at most
/// `GitMirrors.workTreesPerRepository`), each a clone of the mirror with its own objects
/// and a tree checked out at one commit, owned by the step user, in a directory only the
/// agent can enter.
///
/// An attempt whose checkout is the whole history of one commit (no `depth`, no
/// submodules) mounts a tree at that commit as the lower layer of an overlay on its work
/// dir (`OverlayMount`): a checkout costs a mount when a tree is at the commit already (a
/// retry, a pipeline's parallel steps, the next pipeline of the same commit), and the
/// files a push changed when one is at an earlier commit. The step writes only to its own
/// upper layer, so the tree stays the commit, and the work dir is still fresh for every
/// attempt: nothing an earlier step wrote is there.
///
/// The slots of a tree (`n` = 0, 1, …) are chosen by their locks (`WorkTreeLock`) and
/// markers (`WorkTreeMarker`), all without waiting: a tree at the commit is shared; else
/// the least recently used free tree is brought to the commit; else, with every tree
/// taken, the checkout copies the history as without trees.
struct WorkTrees: Sendable {
    /// The directory of the repository's trees.
    var directory: String
    var count: Int

    struct Slot: Sendable, Equatable {
        var tree: String
        var lock: String
        var marker: String
        var index: Int

        init(directory: String, index: Int) {
            self.index = index
            tree = "\(directory)/\(index)"
            lock = "\(directory)/\(index).lock"
            marker = "\(directory)/\(index).ready"
        }
    }

    var slots: [Slot] { (0..<count).map { Slot(directory: directory, index: $0) } }

    /// A tree this attempt holds: shared and `ready` (at the commit, for this owner), or
    /// exclusive and to be brought to the commit.
    struct Claim: Sendable {
        var slot: Slot
        var lock: WorkTreeLock
        var ready: Bool
        /// The marker an exclusive claim removed: what the tree was, whole and clean, when
        /// it was taken; nil for a new tree or one a killed agent left half-updated.
        var previous: WorkTreeMarker? = nil
    }

    /// A ready tree at `wanted`, shared; nil if none is free.
    func claimReady(_ wanted: WorkTreeMarker) -> Claim? {
        for slot in slots where WorkTreeMarker.read(slot.marker) == wanted {
            guard let lock = WorkTreeLock.tryAcquire(slot.lock, shared: true) else { continue }
            // Read again under the lock: an updater may have taken it in between.
            if WorkTreeMarker.read(slot.marker) == wanted { return Claim(slot: slot, lock: lock, ready: true) }
        }
        return nil
    }

    /// A free tree to bring to another commit, exclusive, its marker removed: the trees
    /// already `owner`'s first (with one step user per slot, taking another slot's tree
    /// means changing the owner of every file), then the others, each group least
    /// recently made ready first; a slot with no tree yet (a clone of the whole history
    /// and every file written) only when every existing tree is in use.
    func claimToUpdate(owner: (uid: UInt32, gid: UInt32)) -> Claim? {
        let ordered = slots.map { slot in
            let marker = WorkTreeMarker.read(slot.marker)
            let exists = FileManager.default.fileExists(atPath: slot.tree + "/.git/HEAD")
            let rank = !exists ? 2 : (marker.map { $0.uid != owner.uid || $0.gid != owner.gid } ?? false) ? 1 : 0
            return (slot, rank, Self.markerTime(slot.marker), marker)
        }.sorted { ($0.1, $0.2) < ($1.1, $1.2) }
        for (slot, _, _, marker) in ordered {
            guard let lock = WorkTreeLock.tryAcquire(slot.lock, shared: false) else { continue }
            // Read again under the lock: another slot may have changed it in between.
            let previous = WorkTreeMarker.read(slot.marker).flatMap { $0 == marker ? $0 : nil }
            unlink(slot.marker)
            // A killed agent may have left an overlay on it; nothing of this host's live
            // attempts has (they hold the lock shared).
            for mountPoint in MountTable.current().overlays(withLowerDirectory: slot.tree) {
                OverlayMount.detach(mountPoint)
            }
            return Claim(slot: slot, lock: lock, ready: false, previous: previous)
        }
        return nil
    }

    /// The marker's modification time in seconds; 0 without one.
    static func markerTime(_ path: String) -> Int64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        return Int64(info.st_mtim.tv_sec)
    }
}

/// An attempt's overlay of a work tree: unmounted, its layers removed and the tree's
/// lock released when the attempt is over (`JobRunner`).
struct MountedTree: Sendable {
    /// Where it is mounted: the work dir or the checkout's `path` in it.
    var target: String
    /// The upper and work layers (`<work dir>.overlay`), beside the work dir in the agent's
    /// work root, the agent's alone (0700): the step sees its changes only through the mount.
    var layers: String
    var lock: WorkTreeLock

    /// Detaches the overlay and removes the layers. The lock goes with the value.
    func detach() {
        OverlayMount.detach(target)
        try? FileManager.default.removeItem(atPath: layers)
    }
}
