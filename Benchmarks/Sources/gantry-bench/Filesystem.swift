import Foundation

/// The filesystem a path is on, as the report states it: checkouts and cache restores
/// create tens of thousands of files, and how fast that goes depends on the filesystem
/// more than on anything Gantry does.
struct Filesystem: Equatable {
    var type: String
    var source: String
    /// ext4 only: whether it has a journal (`/proc/fs/jbd2/<device>-8` exists).
    var journaled: Bool?

    var description: String {
        let journal = journaled.map { $0 ? ", journaled" : ", without a journal" } ?? ""
        return "\(type)\(journal) (`\(source)`)"
    }

    /// What the report says about it.
    var note: String {
        guard type == "ext4", journaled == false else { return "" }
        return "without a journal, ext4's inode allocator skips every inode deleted in the last "
            + "5 to 30 seconds (`recently_deleted` in `fs/ext4/ialloc.c`, checked only when there is no "
            + "journal), so creating many files just after many were deleted (the previous job's work dir, "
            + "the previous clone) costs up to 1 ms per file instead of tens of µs. Both sides of each "
            + "comparison would meet that state alike, but the figures would time the allocator, not git; on a journaled ext4, XFS or tmpfs it does not arise."
    }

    /// The mount whose mount point is the longest prefix of `path`, from `/proc/self/mountinfo`.
    static func of(_ path: String) -> Filesystem {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        var best: (point: String, type: String, source: String)?
        for line in text.split(separator: "\n") {
            // "id parent major:minor root mountpoint options ... - fstype source superoptions"
            let halves = line.components(separatedBy: " - ")
            let left = halves.first?.split(separator: " ") ?? []
            let right = halves.count == 2 ? halves[1].split(separator: " ") : []
            guard left.count > 4, right.count > 1 else { continue }
            let point = String(left[4])
            let inside = point == "/" || path == point || path.hasPrefix(point + "/")
            if inside, point.count >= (best?.point.count ?? -1) { best = (point, String(right[0]), String(right[1])) }
        }
        guard let best else { return Filesystem(type: "unknown", source: "?", journaled: nil) }
        var journaled: Bool?
        if best.type == "ext4" {
            let device = (best.source as NSString).lastPathComponent
            let journals = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/fs/jbd2")) ?? []
            journaled = journals.contains { $0.hasPrefix(device + "-") }
        }
        return Filesystem(type: best.type, source: best.source, journaled: journaled)
    }
}
