#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The mounts of the agent's mount namespace, from `/proc/self/mountinfo`.
///
/// The agent reads it to undo its own overlay mounts (`OverlayMount`) that a killed
/// agent left behind: the work dirs a new agent reclaims (`LeftoverReclaim`), and a work
/// tree about to be updated, which must not be any overlay's lower layer any more.
struct MountTable: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        var mountPoint: String
        var fileSystemType: String
        /// The per-superblock options; an overlay's include `lowerdir=…,upperdir=…`.
        var superOptions: [String]

        /// The overlay's lower layers, if this is an overlay.
        var lowerDirectories: [String] {
            guard fileSystemType == "overlay" else { return [] }
            guard let option = superOptions.first(where: { $0.hasPrefix("lowerdir=") }) else { return [] }
            return option.dropFirst("lowerdir=".count).split(separator: ":").map(String.init)
        }
    }

    var entries: [Entry]

    /// The table of this process, or an empty one if it cannot be read.
    ///
    /// Read to its end: the kernel hands the file out about a page per `read(2)`, however
    /// large the buffer, and the newest mounts come last. Bounded to 16 MiB.
    static func current() -> MountTable {
        let descriptor = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return MountTable(entries: []) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < 16 << 20 {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer.prefix(count)
        }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    /// Parses mountinfo (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] -
    /// FSTYPE SOURCE SUPEROPTIONS`, paths with `\040`-style octal escapes. Lines that do
    /// not have that shape are skipped.
    static func parse(_ text: String) -> MountTable {
        var entries: [Entry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 10, let separator = fields.firstIndex(of: "-"), separator >= 6,
                fields.count > separator + 3
            else { continue }
            entries.append(
                Entry(
                    mountPoint: unescape(fields[4]), fileSystemType: String(fields[separator + 1]),
                    superOptions: fields[separator + 3].split(separator: ",").map { unescape($0) }))
        }
        return MountTable(entries: entries)
    }

    /// Mount points at `path` or below it, deepest first (the order to detach them in).
    func mountPoints(atOrUnder path: String) -> [String] {
        let prefix = path.hasSuffix("/") ? path : path + "/"
        return entries.map(\.mountPoint).filter { $0 == path || $0.hasPrefix(prefix) }
            .sorted { $0.utf8.count > $1.utf8.count }
    }

    /// Mount points of overlays that have `directory` as a lower layer.
    func overlays(withLowerDirectory directory: String) -> [String] {
        entries.filter { $0.lowerDirectories.contains(directory) }.map(\.mountPoint)
    }

    /// Undoes the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
                let value = octal(utf8[(index + 1)..<(index + 4)])
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        guard digits.count == 3 else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + Int(digit - UInt8(ascii: "0"))
        }
        return value <= 255 ? UInt8(value) : nil
    }
}
