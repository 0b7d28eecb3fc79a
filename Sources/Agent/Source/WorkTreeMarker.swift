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

/// What a work tree is when it is ready (`WorkTrees`): exactly `commit`, clean, every file
/// owned by `uid:gid`. Written (`<n>.ready`) only after the agent checked it out and
/// verified it, removed before anything changes the tree, so a tree a killed agent left
/// half-updated has none and is brought to a commit again before it is used.
struct WorkTreeMarker: Sendable, Equatable {
    var commit: String
    var uid: UInt32
    var gid: UInt32

    var text: String { "\(commit) \(uid) \(gid)\n" }

    init(commit: String, uid: UInt32, gid: UInt32) {
        self.commit = commit
        self.uid = uid
        self.gid = gid
    }

    /// Parses a marker's text; nil unless it is a full commit id and two numbers.
    init?(text: String) {
        let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 3, CheckoutRequest.isFullCommitID(fields[0]), let uid = UInt32(fields[1]),
            let gid = UInt32(fields[2])
        else { return nil }
        self.init(commit: fields[0], uid: uid, gid: gid)
    }

    /// The marker at `path`, if there is a valid one (at most 256 bytes are read).
    static func read(_ path: String) -> WorkTreeMarker? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return WorkTreeMarker(text: String(decoding: buffer.prefix(count), as: UTF8.self))
    }

    /// Writes the marker to `path` atomically (a temporary file renamed over it).
    func write(_ path: String) -> Bool {
        let temporary = path + ".new"
        unlink(temporary)
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else { return false }
        return rename(temporary, path) == 0
    }
}
