extension String {
    /// This text made safe to put in a log line: control characters (newlines included)
    /// and the bidirectional-text overrides (which reorder what a terminal shows) are
    /// escaped, so a peer cannot forge or disguise log lines, and it is cut at `maximum`
    /// characters, so a peer cannot make one log line huge.
    public func logSafe(maximum: Int = 512) -> String {
        var result = ""
        var characters = 0
        for scalar in unicodeScalars {
            if characters >= maximum {
                result += "…"
                break
            }
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\\": result += "\\\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
                    || scalar.value == 0x2028 || scalar.value == 0x2029 || (0x202A...0x202E).contains(scalar.value)
                    || (0x2066...0x2069).contains(scalar.value) || scalar.value == 0x200E || scalar.value == 0x200F
                {
                    result += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
            characters += 1
        }
        return result
    }
}
