import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// DER/PEM conversions and fingerprints used by enrollment and the state directories.
public enum CertificateEncoding {
    public static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    public static func pem(_ certificate: Certificate) throws -> String {
        try certificate.serializeAsPEM().pemString
    }

    public static func pem(_ key: Certificate.PrivateKey) throws -> String {
        try key.serializeAsPEM().pemString
    }

    /// `sha256:` and the hex SHA-256 of the DER certificate, as `kubeadm` pins its CA.
    public static func fingerprint(der: [UInt8]) -> String {
        "sha256:" + hex(SHA256.hash(data: der))
    }

    /// Lowercase hex, two digits per byte: the one hex encoder (fingerprints, serials,
    /// tokens, key ids).
    public static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    public static func fingerprint(_ certificate: Certificate) throws -> String {
        fingerprint(der: try der(certificate))
    }

    public static func readCertificate(pemFile path: String) throws -> Certificate {
        try Certificate(pemEncoded: try readText(path))
    }

    public static func readPrivateKey(pemFile path: String) throws -> Certificate.PrivateKey {
        try Certificate.PrivateKey(pemEncoded: try readText(path))
    }

    public static func readText(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw PKIError.missingFile(path) }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PKIError.unreadable(path: path, reason: "\(error)")
        }
    }
}

/// Writes a file atomically with the given permissions (private keys and tokens: 0600),
/// durably: the data is synced before the rename and the directory after it, so a power
/// cut leaves either the old file or the new one under its name, never only a temporary.
public enum SecureFile {
    /// Syncs the directory holding `path`, making a rename or creation in it durable.
    public static func syncDirectory(of path: String) {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    public static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw PKIError.unreadable(path: temporary, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { writeToDescriptor(fd, $0) }
            guard n > 0 else { throw PKIError.unreadable(path: temporary, reason: String(cString: strerror(errno))) }
            written += n
        }
        fchmod(fd, mode)
        fsync(fd)
        guard rename(temporary, path) == 0 else {
            throw PKIError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        syncDirectory(of: path)
    }
}

/// write(2) by a name that `SecureFile.write` does not shadow.
private func writeToDescriptor(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
    write(fd, bytes.baseAddress, bytes.count)
}
