/// Reads a pipeline duration (`timeout`, `cancel_grace`) into seconds: a whole number of
/// seconds (`90`) or numbers with the units `h`, `m`, `s`, each at most once and in that
/// order (`90s`, `15m`, `2h`, `1h30m`, `1h0m5s`).
///
/// It is separate from `PipelineParser` and has no YAML in it so a fuzz target can call it
/// directly. It never traps: the text is short, only ASCII digits count (`Character.isNumber`
/// would accept "٣" or "½"), each number has at most `maximumDigits` digits and all
/// arithmetic is overflow-checked, so even a 32-bit `Int` cannot wrap. Whether the value is
/// in range for a given key is the caller's decision (`PipelineLimits`).
public enum DurationParser {
    /// Longest text looked at: `1h30m` needs 5 characters; anything much longer is not a
    /// duration someone wrote.
    public static let maximumLength = 32
    /// Most digits in one number: more than any accepted duration needs (604800 s is 6),
    /// few enough that the value cannot overflow before the range check.
    public static let maximumDigits = 9

    /// Why a text is not a duration, phrased to follow "must be a duration such as …: ".
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case tooLong(length: Int)
        /// `position` is 1-based, in characters.
        case unexpectedCharacter(String, position: Int)
        case numberTooLong(position: Int)
        case missingNumber(unit: Character, position: Int)
        case unitOutOfOrder(unit: Character, position: Int)
        case missingUnit(position: Int)
        case overflow

        public var description: String {
            switch self {
            case .empty:
                return "it is empty"
            case .tooLong(let length):
                return "it is \(length) bytes long; a duration has at most \(DurationParser.maximumLength)"
            case .unexpectedCharacter(let character, let position):
                return "`\(character)` at position \(position) is not an ASCII digit or one of the units h, m, s"
            case .numberTooLong(let position):
                return "the number at position \(position) has more than \(DurationParser.maximumDigits) digits"
            case .missingNumber(let unit, let position):
                return "the unit `\(unit)` at position \(position) has no number before it"
            case .unitOutOfOrder(let unit, let position):
                return "the unit `\(unit)` at position \(position) is repeated or out of order: write hours, minutes, seconds in that order, each once"
            case .missingUnit(let position):
                return "the number at position \(position) has no unit: once units are used, every number needs one"
            case .overflow:
                return "it is too large"
            }
        }
    }

    /// Seconds, possibly 0; never negative.
    public static func seconds(_ text: String) throws(Failure) -> Int {
        let length = text.utf8.count
        guard length > 0 else { throw .empty }
        guard length <= maximumLength else { throw .tooLong(length: length) }
        var total = 0
        var number = 0
        var digits = 0
        var numberStart = 1
        var usedUnits = false
        var lastUnitRank = -1
        for (index, scalar) in text.unicodeScalars.enumerated() {
            let position = index + 1
            switch scalar {
            case "0"..."9":
                if digits == 0 { numberStart = position }
                digits += 1
                guard digits <= maximumDigits else { throw .numberTooLong(position: numberStart) }
                let digit = Int(scalar.value - 48)
                let (shifted, shiftOverflow) = number.multipliedReportingOverflow(by: 10)
                let (sum, sumOverflow) = shifted.addingReportingOverflow(digit)
                guard !shiftOverflow, !sumOverflow else { throw .overflow }
                number = sum
            case "h", "m", "s":
                let unit = Character(scalar)
                guard digits > 0 else { throw .missingNumber(unit: unit, position: position) }
                let (rank, factor) = scalar == "h" ? (0, 3600) : scalar == "m" ? (1, 60) : (2, 1)
                guard rank > lastUnitRank else { throw .unitOutOfOrder(unit: unit, position: position) }
                let (part, partOverflow) = number.multipliedReportingOverflow(by: factor)
                let (sum, sumOverflow) = total.addingReportingOverflow(part)
                guard !partOverflow, !sumOverflow else { throw .overflow }
                total = sum
                lastUnitRank = rank
                usedUnits = true
                number = 0
                digits = 0
            default:
                throw .unexpectedCharacter(scalar.escaped(asASCII: false), position: position)
            }
        }
        if digits > 0 {
            guard !usedUnits else { throw .missingUnit(position: numberStart) }
            return number
        }
        return total
    }
}
