import Crypto
import Foundation
import GantryProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The 256-bit AES key that seals every secret, kept in `STATE/secrets.key` (0600, 64 hex
/// characters) and nowhere else: the database holds only what it sealed, so a copy of the
/// database alone reveals nothing, and the key file is the one thing to protect (and back
/// up: without it every secret is lost).
///
/// `id` (the first 8 hex characters of the key's SHA-256) is stored with each sealed
/// value, so a row says which key opens it and a rotation interrupted half-way is visible.
public struct SecretKey: Sendable {
    public let key: SymmetricKey
    public let id: String

    public init(_ key: SymmetricKey) {
        self.key = key
        self.id = key.withUnsafeBytes { bytes in
            CertificateEncoding.hex(SHA256.hash(data: Data(bytes)).prefix(4))
        }
    }

    public static func generate() -> SecretKey { SecretKey(SymmetricKey(size: .bits256)) }

    /// Writes the key as hex, 0600, through a temporary file and a rename, so a crash
    /// never leaves a truncated key behind.
    public func write(to path: String) throws {
        let hex = key.withUnsafeBytes { CertificateEncoding.hex($0) }
        try SecureFile.write(hex + "\n", to: path, mode: 0o600)
    }

    /// Reads a key file written by `write(to:)`, refusing one that others can read: a key
    /// readable by another user is a leaked key.
    public static func read(from path: String) throws(SecretKeyError) -> SecretKey {
        var status = stat()
        guard stat(path, &status) == 0 else { throw .unreadable(path, String(cString: strerror(errno))) }
        guard status.st_mode & 0o077 == 0 else { throw .tooOpen(path) }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .unreadable(path, "not a text file")
        }
        let hex = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        guard hex.count == 64 else { throw .malformed(path) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for index in stride(from: 0, to: 64, by: 2) {
            guard let high = hexValue(hex[index]), let low = hexValue(hex[index + 1]) else { throw .malformed(path) }
            bytes.append(high << 4 | low)
        }
        return SecretKey(SymmetricKey(data: bytes))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Why the secrets key could not be used, and what to do about it.
public enum SecretKeyError: Error, Equatable, CustomStringConvertible {
    case unreadable(String, String)
    case tooOpen(String)
    case malformed(String)
    case locked(String)
    case noKeyFor(name: String, scope: String, keyID: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read the secrets key \(path): \(reason)"
        case .tooOpen(let path):
            return "the secrets key \(path) is readable by other users: run `chmod 600 \(path)`, and consider the "
                + "secrets exposed (rotate them and run `gantry-coordinator rotate-key`)"
        case .malformed(let path):
            return "the secrets key \(path) is not 64 hex characters: restore it from a backup (without it, "
                + "the stored secrets cannot be opened)"
        case .locked(let path):
            return "\(path) is in use by a running `gantry-coordinator serve` (or another rotate-key): "
                + "stop the coordinator, run rotate-key, then start it again"
        case .noKeyFor(let name, let scope, let keyID):
            return "the secret \(name) (\(scope)) is sealed under key \(keyID), which is not in the state directory: "
                + "restore that key file, or delete and set the secret again"
        }
    }
}
