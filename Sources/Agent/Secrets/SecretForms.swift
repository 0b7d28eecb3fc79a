/// The byte strings a secret value can take in a step's output: the value itself and the
/// encodings a tool commonly applies to it before printing (base64, URL encoding, JSON
/// strings). `SecretMasker` masks every one of them.
///
/// Only encodings that keep the value recognisable as one contiguous string are covered;
/// a step that transforms a secret otherwise (hex, reversed, split, compressed,
/// encrypted) is not caught, and cannot be by a masker that sees only the output.
enum SecretForms {
    /// Shorter forms are not masked: a 1-3 byte pattern would mask most of any log. The
    /// coordinator refuses secret values under 8 bytes, so only exotic inner base64 forms
    /// of short values fall under this.
    static let minimumFormLength = 4

    /// Every distinct form of every value, each at least `minimumFormLength` bytes.
    static func forms<S: Sequence>(of values: S) -> [[UInt8]] where S.Element == String {
        var seen = Set<[UInt8]>()
        var result: [[UInt8]] = []
        for value in values {
            for form in forms(of: Array(value.utf8))
            where form.count >= minimumFormLength && seen.insert(form).inserted {
                result.append(form)
            }
        }
        return result
    }

    /// The forms of one value, and of the value without leading and trailing whitespace
    /// when that differs (a secret pasted with a trailing newline is printed without it
    /// by `echo $SECRET` or any tool that trims), possibly with duplicates.
    static func forms(of value: [UInt8]) -> [[UInt8]] {
        // A value too short to mask as itself is not masked in any form either: its padded
        // base64 alone would reach 4 bytes and mask unrelated text.
        var variants = value.count >= minimumFormLength ? [value] : []
        let trimmed = trimmingWhitespace(value)
        if trimmed.count != value.count && trimmed.count >= minimumFormLength { variants.append(trimmed) }
        var result: [[UInt8]] = []
        for variant in variants {
            result.append(variant)
            result += base64Forms(of: variant)
            result += percentForms(of: variant)
            result += jsonForms(of: variant)
        }
        return result
    }

    // MARK: base64

    static let standardAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// The value's own base64 (standard, padded; base64url, unpadded: a padded base64url
    /// text contains it), and for each alphabet and each of the 3 byte alignments the
    /// value can have inside a longer encoded text (`base64 < file-with-the-secret`, a
    /// basic-auth header `user:secret`), the characters that depend on the value's bytes
    /// alone: the first 0, 2 or 3 characters also carry bits of the preceding bytes and
    /// the last partial one bits of the following bytes, so they vary with the context.
    /// GitHub Actions masks the same shifted forms.
    static func base64Forms(of value: [UInt8]) -> [[UInt8]] {
        var result: [[UInt8]] = [base64(value, alphabet: standardAlphabet, padded: true)]
        for alphabet in [standardAlphabet, urlAlphabet] {
            if alphabet == urlAlphabet { result.append(base64(value, alphabet: alphabet, padded: false)) }
            for shift in 0..<3 {
                let encoded = base64(Array(repeating: 0, count: shift) + value, alphabet: alphabet, padded: false)
                // Character i holds bits [6i, 6i + 6) of the shifted input; the value's bits
                // are [8 * shift, 8 * (shift + count)).
                let first = (8 * shift + 5) / 6
                let end = min(encoded.count, 8 * (shift + value.count) / 6)
                if first < end { result.append(Array(encoded[first..<end])) }
            }
        }
        return result
    }

    static func base64(_ bytes: [UInt8], alphabet: [UInt8], padded: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let b0 = UInt32(bytes[index])
            let b1 = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            if remaining > 1 { out.append(alphabet[Int(group >> 6 & 63)]) } else if padded { out.append(UInt8(ascii: "=")) }
            if remaining > 2 { out.append(alphabet[Int(group & 63)]) } else if padded { out.append(UInt8(ascii: "=")) }
            index += 3
        }
        return out
    }

    // MARK: URL encoding

    /// RFC 3986 percent-encoding of everything but the unreserved characters, with upper-
    /// and lower-case hex digits, and with `+` for a space (HTML forms, `quote_plus`).
    /// An encoder that leaves other characters alone (`/` in a path, `!*'()` in
    /// JavaScript's encodeURIComponent) produces a form not covered here.
    static func percentForms(of value: [UInt8]) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for upper in [true, false] {
            for plus in [false, true] {
                var out: [UInt8] = []
                out.reserveCapacity(value.count * 3)
                for byte in value {
                    if isUnreserved(byte) {
                        out.append(byte)
                    } else if plus && byte == UInt8(ascii: " ") {
                        out.append(UInt8(ascii: "+"))
                    } else {
                        out.append(UInt8(ascii: "%"))
                        out.append(hexDigit(byte >> 4, upper: upper))
                        out.append(hexDigit(byte & 15, upper: upper))
                    }
                }
                result.append(out)
            }
        }
        return result
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    // MARK: JSON

    /// The value as the content of a JSON string, as the common encoders write it: `\"`,
    /// `\\`, the short escapes for control characters and `\u00XX` for the others; with
    /// and without `\/` (Swift's JSONEncoder, PHP), with non-ASCII as `\uXXXX` (Python's
    /// default `ensure_ascii`) or raw, with `<`, `>`, `&` as `\u003c`... (Go's default),
    /// with lower- and upper-case hex.
    static func jsonForms(of value: [UInt8]) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for options in 0..<16 {
            result.append(
                jsonEscaped(
                    value, escapeSlash: options & 1 != 0, asciiOnly: options & 2 != 0, escapeHTML: options & 4 != 0,
                    upperHex: options & 8 != 0))
        }
        return result
    }

    static func jsonEscaped(_ value: [UInt8], escapeSlash: Bool, asciiOnly: Bool, escapeHTML: Bool, upperHex: Bool)
        -> [UInt8]
    {
        var out: [UInt8] = []
        out.reserveCapacity(value.count + 8)
        func unicodeEscape(_ unit: UInt16) {
            out += [UInt8(ascii: "\\"), UInt8(ascii: "u")]
            for shift in stride(from: 12, through: 0, by: -4) {
                out.append(hexDigit(UInt8(truncatingIfNeeded: unit >> UInt16(shift)) & 15, upper: upperHex))
            }
        }
        for scalar in String(decoding: value, as: UTF8.self).unicodeScalars {
            switch scalar {
            case "\"": out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case "\\": out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case "/" where escapeSlash: out += [UInt8(ascii: "\\"), UInt8(ascii: "/")]
            case "\n": out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case "\r": out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case "\t": out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case "\u{08}": out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case "\u{0C}": out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            default:
                if scalar.value < 0x20 || (escapeHTML && "<>&\u{2028}\u{2029}".unicodeScalars.contains(scalar)) {
                    unicodeEscape(UInt16(scalar.value))
                } else if scalar.value < 0x80 || !asciiOnly {
                    out.append(contentsOf: String(scalar).utf8)
                } else {
                    for unit in String(scalar).utf16 { unicodeEscape(unit) }
                }
            }
        }
        return out
    }

    // MARK: helpers

    static func hexDigit(_ nibble: UInt8, upper: Bool) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : (upper ? UInt8(ascii: "A") : UInt8(ascii: "a")) + nibble - 10
    }

    static func trimmingWhitespace(_ bytes: [UInt8]) -> [UInt8] {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return [] }
        return Array(bytes[first...last])
    }
}
