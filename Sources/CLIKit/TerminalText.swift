/// Text from the server made safe to print in the status block and tables: ids, names and
/// states are the server's strings, and a control character in one (an escape sequence, a
/// carriage return) could move the cursor or rewrite what the user sees. Log lines are the
/// step's own output and pass through untouched; this is only for what the CLI composes.
public enum TerminalText {
    /// `text` without control characters (C0, DEL, C1) and bidirectional overrides, at
    /// most `limit` characters.
    public static func printable(_ text: String, limit: Int = 200) -> String {
        var scalars = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            guard count < limit else { break }
            let value = scalar.value
            if value < 0x20 || (0x7F...0x9F).contains(value) || (0x202A...0x202E).contains(value)
                || (0x2066...0x2069).contains(value)
            {
                continue
            }
            scalars.append(scalar)
            count += 1
        }
        return String(scalars)
    }

    /// `text` padded with spaces to `width` characters, never cut: a column that is too
    /// narrow for a value pushes the rest of the row right rather than hide part of an id.
    public static func pad(_ text: String, to width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
