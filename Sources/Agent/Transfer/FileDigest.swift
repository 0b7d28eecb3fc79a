import Crypto
import NIOPosix
import SystemPackage

/// sha256 as Gantry writes it (64 lowercase hex), of files read in bounded buffers.
enum FileDigest {
    static func hex(_ digest: SHA256.Digest) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isValid(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The digest of the first `size` bytes of an open file, hashed on NIO's blocking pool so
    /// a multi-gigabyte artifact does not hold one of the (few) cooperative threads the
    /// agent's connection also runs on.
    static func of(_ descriptor: SystemPackage.FileDescriptor, size: UInt64, bufferBytes: Int = 256 << 10) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive {
            var hasher = SHA256()
            var buffer = [UInt8](repeating: 0, count: bufferBytes)
            var offset: UInt64 = 0
            while offset < size {
                let want = Int(min(UInt64(bufferBytes), size - offset))
                let count = try buffer.withUnsafeMutableBytes { raw in
                    try descriptor.read(
                        fromAbsoluteOffset: Int64(offset), into: UnsafeMutableRawBufferPointer(rebasing: raw.prefix(want)))
                }
                guard count > 0 else { throw TransferError.file("the file shrank while it was hashed") }
                buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
                offset += UInt64(count)
            }
            return hex(hasher.finalize())
        }
    }
}

extension FileDigest {
    /// The digest of a small file (a lock file for a cache key), read on the caller's task.
    static func ofSmallFile(_ descriptor: SystemPackage.FileDescriptor, size: UInt64) throws(TransferError) -> String {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var offset: UInt64 = 0
        while offset < size {
            let want = Int(min(UInt64(buffer.count), size - offset))
            let count: Int
            do {
                count = try buffer.withUnsafeMutableBytes { raw in
                    try descriptor.read(
                        fromAbsoluteOffset: Int64(offset), into: UnsafeMutableRawBufferPointer(rebasing: raw.prefix(want)))
                }
            } catch {
                throw .file("cannot read a checksum file: \(error)")
            }
            guard count > 0 else { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            offset += UInt64(count)
        }
        return hex(hasher.finalize())
    }
}

/// A query string value: everything but RFC 3986's unreserved characters percent-encoded.
enum QueryEncoding {
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(digits[Int(byte >> 4)])
                out.unicodeScalars.append(digits[Int(byte & 0x0F)])
            }
        }
        return out
    }
}
