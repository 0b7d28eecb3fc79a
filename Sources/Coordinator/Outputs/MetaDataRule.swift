/// The bounds of pipeline meta-data, checked by the API before anything is stored.
///
/// Meta-data carries small outputs between steps (a version, an image tag, a URL), not
/// artifacts: the bounds keep one pipeline's rows within about 64 MiB at the very worst,
/// and every key safe to print, to put in a path and to pass to a shell unquoted.
public enum MetaDataRule {
    /// Keys are 1 to 255 bytes of `[A-Za-z0-9_.:/-]`.
    public static let maximumKeyBytes = 255
    /// Values are text (valid UTF-8, which JSON guarantees) of at most 64 KiB, no NUL.
    public static let maximumValueBytes = 64 * 1024
    /// Distinct keys one pipeline may hold; overwriting a key does not count again.
    public static let maximumKeysPerPipeline = 1000
    /// Largest `PUT` body: a value may grow six-fold when JSON-escaped (`\u0001`), plus
    /// the envelope.
    public static let maximumBody = 6 * maximumValueBytes + 1024

    /// Why `key` is not a valid key, or nil.
    public static func keyProblem(_ key: String) -> String? {
        let bytes = key.utf8
        guard (1...maximumKeyBytes).contains(bytes.count) else {
            return "a meta-data key is 1 to \(maximumKeyBytes) bytes, this one is \(bytes.count)"
        }
        guard bytes.allSatisfy(isKeyByte) else {
            return "a meta-data key may hold only letters, digits and _ . : / - (got '\(key.logSafe(maximum: 80))')"
        }
        return nil
    }

    /// Why `value` is not a valid value, or nil.
    public static func valueProblem(_ value: String) -> String? {
        if value.utf8.count > maximumValueBytes {
            return "a meta-data value is at most \(maximumValueBytes) bytes (64 KiB), this one is \(value.utf8.count)"
        }
        if value.utf8.contains(0) { return "a meta-data value may not contain a NUL byte" }
        return nil
    }

    private static func isKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "-"):
            return true
        default: return false
        }
    }
}
