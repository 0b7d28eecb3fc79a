/// A set of Unicode scalars, as sorted, non-overlapping, non-adjacent ranges of code
/// points: what a class (`[a-z_]`), a shorthand (`\d`) or `.` stands for.
///
/// Membership is a binary search, so a class costs O(log ranges) per input scalar however
/// it was written. Negation is kept as a flag instead of complementing the ranges, so that
/// case-insensitive matching can ask "does the positive set hold any case variant of this
/// scalar?" and only then negate: `[^a]` with `i` must refuse both `a` and `A`.
struct LinearRegexScalarSet: Sendable, Equatable {
    /// Highest Unicode code point; ranges never go beyond it.
    static let maximumCodePoint: UInt32 = 0x10FFFF

    private(set) var ranges: [ClosedRange<UInt32>]
    var negated: Bool

    init(_ ranges: [ClosedRange<UInt32>] = [], negated: Bool = false) {
        self.ranges = Self.normalized(ranges)
        self.negated = negated
    }

    /// Whether the positive set (ignoring `negated`) holds `value`.
    func holds(_ value: UInt32) -> Bool {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = low + (high - low) / 2
            let range = ranges[middle]
            if value < range.lowerBound {
                high = middle
            } else if value > range.upperBound {
                low = middle + 1
            } else {
                return true
            }
        }
        return false
    }

    /// The code points not in `ranges` (used for `\D`, `\W`, `\S` inside a class, where
    /// the class's own negation flag is already taken by `[^...]`).
    static func complement(of ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var result: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for range in normalized(ranges) {
            if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
            guard range.upperBound < maximumCodePoint else { return result }
            next = range.upperBound + 1
        }
        result.append(next...maximumCodePoint)
        return result
    }

    /// Sorted, merged ranges; overlapping and touching ranges become one.
    private static func normalized(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
        var result: [ClosedRange<UInt32>] = []
        for range in sorted {
            if let last = result.last, range.lowerBound <= last.upperBound || range.lowerBound - last.upperBound == 1 {
                result[result.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }

    // MARK: - Shorthands (ASCII only, as in RE2)

    /// `\d`: ASCII digits only, so `٣` is not a digit here (RE2 and `[0-9]` agree).
    static let digits: [ClosedRange<UInt32>] = [0x30...0x39]
    /// `\w`: ASCII letters, digits and `_`.
    static let wordCharacters: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    /// `\s`: tab, newline, form feed, carriage return and space (RE2's `\s`).
    static let whitespace: [ClosedRange<UInt32>] = [0x09...0x0A, 0x0C...0x0D, 0x20...0x20]
}
