import Foundation

/// A cron expression (five fields, UTC) and the ticks it names (pure).
///
/// `MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK`, each `*`, a number, a range `A-B`, a step
/// `*/S` or `A-B/S`, or a comma-separated list of those (minute 0-59, hour 0-23, day 1-31,
/// month 1-12, day of week 0-7 with 0 and 7 Sunday); or `@hourly`, `@daily` (`@midnight`),
/// `@weekly`, `@monthly`, `@yearly` (`@annually`). As in cron, when both the day of the
/// month and the day of the week are restricted, a day matching either is a tick's day.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    static let aliases = [
        "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
    ]

    public init(parsing text: String) throws(Invalid) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.utf8.count <= 200 else { throw Invalid(description: "a cron expression is at most 200 bytes") }
        let expanded = Self.aliases[trimmed] ?? trimmed
        let fields = expanded.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else {
            throw Invalid(description: "`\(trimmed)`: a cron expression has five fields (minute hour day month weekday) or is @hourly, @daily, @weekly, @monthly or @yearly")
        }
        minutes = try Self.field(fields[0], "minute", 0...59)
        hours = try Self.field(fields[1], "hour", 0...23)
        days = try Self.field(fields[2], "day of the month", 1...31)
        months = try Self.field(fields[3], "month", 1...12)
        let weekdays = try Self.field(fields[4], "day of the week", 0...7)
        self.weekdays = Set(weekdays.map { $0 % 7 })
        // As in Vixie cron and cronie: a field starting with `*` (`*`, `*/2`) does not
        // restrict the day.
        daysRestricted = !fields[2].hasPrefix("*")
        weekdaysRestricted = !fields[4].hasPrefix("*")
        description = trimmed
    }

    static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>) throws(Invalid) -> Set<Int> {
        guard text.utf8.allSatisfy({ (0x30...0x39).contains($0) || "*,-/".utf8.contains($0) }) else {
            throw Invalid(description: "\(name): `\(text)` may hold only digits and `* , - /`")
        }
        var values: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(pieces.count) else { throw Invalid(description: "\(name): `\(part)` is not a value, range or step") }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), (1...range.upperBound).contains(value) else {
                    throw Invalid(description: "\(name): the step in `\(part)` must be 1 to \(range.upperBound)")
                }
                step = value
            }
            let bounds: ClosedRange<Int>
            if pieces[0] == "*" {
                bounds = range
            } else if let dash = pieces[0].firstIndex(of: "-") {
                guard let low = Int(pieces[0][..<dash]), let high = Int(pieces[0][pieces[0].index(after: dash)...]), low <= high,
                    range.contains(low), range.contains(high)
                else { throw Invalid(description: "\(name): `\(part)` is not a range within \(range.lowerBound)-\(range.upperBound)") }
                bounds = low...high
            } else {
                guard let value = Int(pieces[0]), range.contains(value) else {
                    throw Invalid(description: "\(name): `\(part)` is not a number from \(range.lowerBound) to \(range.upperBound)")
                }
                bounds = pieces.count == 2 ? value...range.upperBound : value...value
            }
            values.formUnion(stride(from: bounds.lowerBound, through: bounds.upperBound, by: step))
        }
        return values
    }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// The first tick strictly after `date`, or nil if there is none within five years
    /// (`0 0 30 2 *`: February has no 30th).
    public func next(after date: Date) -> Date? {
        let calendar = Self.calendar
        // The next whole minute, in whole seconds: `date + (60 - date mod 60)` in floating
        // point can land a hair before the minute and name the current one again.
        let start = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        var components = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: start)
        let lastYear = (components.year ?? 0) + 5
        // Each pass moves to the start of the next month, day, hour or minute that could
        // match: at most 5 years × (12 + 366 + 24 + 60) passes, in practice a few dozen.
        for _ in 0..<1_000_000 {
            guard let year = components.year, year <= lastYear, let month = components.month, let day = components.day,
                let hour = components.hour, let minute = components.minute
            else { return nil }
            if !months.contains(month) {
                components = Self.startOfNextMonth(year, month)
                continue
            }
            guard let current = calendar.date(from: components) else { return nil }
            let daysInMonth = calendar.range(of: .day, in: .month, for: current)?.count ?? 31
            if day > daysInMonth {
                components = Self.startOfNextMonth(year, month)
                continue
            }
            let weekday = calendar.component(.weekday, from: current) - 1
            let dayMatches: Bool
            if daysRestricted && weekdaysRestricted {
                dayMatches = days.contains(day) || weekdays.contains(weekday)
            } else {
                dayMatches = days.contains(day) && weekdays.contains(weekday)
            }
            if !dayMatches {
                components = calendar.dateComponents(
                    [.year, .month, .day, .hour, .minute], from: calendar.date(byAdding: .day, value: 1, to: Self.midnight(current))!)
                continue
            }
            if !hours.contains(hour) {
                components = calendar.dateComponents(
                    [.year, .month, .day, .hour, .minute],
                    from: calendar.date(byAdding: .hour, value: 1, to: current.addingTimeInterval(-Double(minute) * 60))!)
                continue
            }
            if !minutes.contains(minute) {
                components = calendar.dateComponents(
                    [.year, .month, .day, .hour, .minute], from: current.addingTimeInterval(60))
                continue
            }
            return current > date ? current : nil
        }
        return nil
    }

    static func startOfNextMonth(_ year: Int, _ month: Int) -> DateComponents {
        DateComponents(year: month == 12 ? year + 1 : year, month: month == 12 ? 1 : month + 1, day: 1, hour: 0, minute: 0)
    }

    static func midnight(_ date: Date) -> Date {
        calendar.startOfDay(for: date)
    }
}
