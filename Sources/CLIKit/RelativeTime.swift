import Foundation

/// Times as people read them: "3 s ago", "5 min ago", "2 h ago", "4 d ago", and durations
/// as "12 s", "3 min 4 s", "1 h 2 min".
public enum RelativeTime {
    public static func ago(_ date: Date, now: Date) -> String {
        let seconds = Int(now.timeIntervalSince(date).rounded(.down))
        if seconds < 0 { return "in " + duration(-seconds) }
        if seconds < 2 { return "just now" }
        return coarse(seconds) + " ago"
    }

    /// One unit, as in "ago": 59 s, 59 min, 47 h, then days.
    static func coarse(_ seconds: Int) -> String {
        switch seconds {
        case ..<60: return "\(seconds) s"
        case ..<3600: return "\(seconds / 60) min"
        case ..<(48 * 3600): return "\(seconds / 3600) h"
        default: return "\(seconds / 86400) d"
        }
    }

    /// Two units at most.
    public static func duration(_ seconds: Int) -> String {
        let seconds = max(0, seconds)
        switch seconds {
        case ..<60: return "\(seconds) s"
        case ..<3600: return seconds % 60 == 0 ? "\(seconds / 60) min" : "\(seconds / 60) min \(seconds % 60) s"
        default:
            let minutes = (seconds % 3600) / 60
            return minutes == 0 ? "\(seconds / 3600) h" : "\(seconds / 3600) h \(minutes) min"
        }
    }
}
