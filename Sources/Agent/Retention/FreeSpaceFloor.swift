#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--min-free-space`: the free space below which an agent takes no new jobs, so a full
/// disk shows as an agent that says why it is not ready (`gantry agents`) instead of as
/// jobs failing one after the other. A running job is never stopped by it.
///
/// Checked for the filesystem of the work root and, when it is another one, of the state
/// directory (the spool): before the agent first says `Ready`, then every
/// `AgentRuntime.Options.freeSpaceCheckInterval`.
public enum FreeSpaceFloor: Sendable, Equatable {
    /// `0`: never checked.
    case disabled
    case bytes(UInt64)
    /// Of the filesystem's size, 0 < p <= 100.
    case percent(Double)
    /// 2 GiB or 5% of the filesystem, whichever is smaller: a big build disk keeps 2 GiB
    /// free, a small one (a CI container's) is not declared full while half empty.
    case standard

    public static let standardBytes: UInt64 = 2 << 30
    public static let standardPercent = 5.0

    /// `BYTES` (a plain number, or with a `K`, `M`, `G` or `T` suffix, powers of 1024, an
    /// optional `iB`/`B`), or `PERCENT%` (above 0, at most 100); `0` disables.
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces
        if trimmed.hasSuffix("%") {
            guard let value = Double(trimmed.dropLast()), value.isFinite, value >= 0, value <= 100 else { return nil }
            self = value == 0 ? .disabled : .percent(value)
            return
        }
        var number = Substring(trimmed.uppercased())
        for suffix in ["IB", "B"] where number.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            break
        }
        var shift: UInt64 = 0
        if let unit = number.last, let power = ["K": 10, "M": 20, "G": 30, "T": 40][String(unit)] {
            shift = UInt64(power)
            number = number.dropLast()
        }
        guard !number.isEmpty, let value = UInt64(number), value <= (UInt64.max >> shift) else { return nil }
        self = value == 0 ? .disabled : .bytes(value << shift)
    }

    /// The bytes that must stay free on a filesystem of `total` bytes (nil: no floor).
    public func required(total: UInt64) -> UInt64? {
        switch self {
        case .disabled: return nil
        case .bytes(let bytes): return bytes
        case .percent(let percent): return UInt64((Double(total) * percent / 100).rounded(.up))
        case .standard:
            return min(Self.standardBytes, UInt64((Double(total) * Self.standardPercent / 100).rounded(.up)))
        }
    }

    /// One filesystem as `statvfs` sees it: what an unprivileged user may still use, of
    /// how much.
    public struct Space: Sendable, Equatable {
        public var path: String
        public var available: UInt64
        public var total: UInt64

        public init(path: String, available: UInt64, total: UInt64) {
            self.path = path
            self.available = available
            self.total = total
        }
    }

    /// Why the agent must not take jobs, or nil when every filesystem is above the floor.
    /// Pure; `AgentRuntime` measures with `space(of:)`.
    public func problem(_ filesystems: [Space]) -> String? {
        for space in filesystems {
            guard let required = required(total: space.total), space.available < required else { continue }
            return "low disk space: \(Self.format(space.available)) free on the filesystem of \(space.path), "
                + "below the floor of \(Self.format(required)) (--min-free-space); taking no new jobs until space returns"
        }
        return nil
    }

    /// `statvfs` of `path`; nil if it cannot be read (then it is not checked).
    public static func space(of path: String) -> Space? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        let unit = UInt64(info.f_frsize == 0 ? info.f_bsize : info.f_frsize)
        let (available, overflowA) = UInt64(info.f_bavail).multipliedReportingOverflow(by: unit)
        let (total, overflowT) = UInt64(info.f_blocks).multipliedReportingOverflow(by: unit)
        return Space(path: path, available: overflowA ? .max : available, total: overflowT ? .max : total)
    }

    /// The device of `path`, to check a filesystem once when the work root and the state
    /// directory share it.
    public static func device(of path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt64(info.st_dev)
    }

    static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let tenths = (value * 10).rounded() / 10
        return "\(tenths) \(units[unit])"
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
