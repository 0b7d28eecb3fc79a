import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The key files under the state directory and the lock that keeps `rotate-key` and a
/// running coordinator apart.
///
/// - `secrets.key`: the current key; every new secret is sealed under it.
/// - `secrets.key.new`: the next key, while `rotate-key` re-encrypts (a rotation that
///   stopped half-way left it; running rotate-key again finishes with the same key).
/// - `secrets.key.old`: the previous key, kept until the new one is in place.
///
/// `serve` holds a shared `flock` on `secrets.key` for its whole life and `rotate-key` an
/// exclusive one, so rotating under a running coordinator (whose vault would go on sealing
/// under the old key) is refused instead of silently producing rows nobody can open.
public struct SecretKeyFiles: Sendable {
    public let current: String
    public var next: String { current + ".new" }
    public var previous: String { current + ".old" }

    public init(state: CoordinatorStateDirectory) {
        current = state.secretsKey
    }

    /// Every key present, by id: the current one, and the next and previous ones when a
    /// rotation left them. Rows name their key by id, so each opens with its own.
    public func ring() throws(SecretKeyError) -> [String: SecretKey] {
        var keys: [String: SecretKey] = [:]
        for path in [previous, next, current] where FileManager.default.fileExists(atPath: path) {
            let key = try SecretKey.read(from: path)
            keys[key.id] = key
        }
        return keys
    }

    /// The current key, created if the state directory predates secrets (logged, so the
    /// operator knows to back it up).
    public func loadOrCreate(logger: Logger) throws -> SecretKey {
        if FileManager.default.fileExists(atPath: current) { return try SecretKey.read(from: current) }
        let key = SecretKey.generate()
        try key.write(to: current)
        logger.notice(
            "created the secrets key; back it up with the state directory: without it, stored secrets cannot be opened",
            metadata: ["path": "\(current)", "key_id": "\(key.id)"])
        return key
    }

    /// Locks `secrets.key` (shared for `serve`, exclusive for `rotate-key`) without
    /// waiting; the lock lasts as long as the returned descriptor stays open.
    public func lock(exclusive: Bool) throws(SecretKeyError) -> Int32 {
        let fd = open(current, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(current, String(cString: strerror(errno))) }
        guard flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 else {
            close(fd)
            throw .locked(current)
        }
        return fd
    }
}
