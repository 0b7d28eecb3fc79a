/// SQLite's parameter markers rewritten as PostgreSQL's, so a statement both back ends
/// share is written once.
///
/// `?` becomes `$1`, `$2`, … in order, and `?N` becomes `$N`. Markers inside quoted
/// strings, quoted identifiers and comments stay as they are. Statements are constants of
/// the source, never user input, so this only has to be right for SQL we write.
enum PlaceholderSQL {
    static func postgres(_ sql: String) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 8)
        var next = 1
        var scalars = Array(sql.unicodeScalars)[...]
        while let scalar = scalars.popFirst() {
            switch scalar {
            case "'", "\"":
                // Copy the quoted run; a doubled quote inside is two runs back to back.
                result.unicodeScalars.append(scalar)
                while let inner = scalars.popFirst() {
                    result.unicodeScalars.append(inner)
                    if inner == scalar { break }
                }
            case "-" where scalars.first == "-":
                result.unicodeScalars.append(scalar)
                while let inner = scalars.popFirst() {
                    result.unicodeScalars.append(inner)
                    if inner == "\n" { break }
                }
            case "?":
                var digits = ""
                while let digit = scalars.first, ("0"..."9").contains(digit) {
                    digits.unicodeScalars.append(digit)
                    scalars.removeFirst()
                }
                if digits.isEmpty {
                    result += "$\(next)"
                    next += 1
                } else {
                    result += "$" + digits
                }
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
