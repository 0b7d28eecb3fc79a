/// An expression's text as the lexer and parser walk it — Unicode scalars — with the map
/// back to the Character offsets that `ConditionSyntaxError` reports.
///
/// Users count what they see, so errors are in Characters; the lexer and the regex engine
/// work on scalars (see `LinearRegex`). The map has one entry per scalar plus one for the
/// end of the text, so every offset the lexer or parser can produce converts without a
/// bounds check failing.
struct ConditionSource: Sendable {
    let scalars: [Unicode.Scalar]
    private let characterOffsets: [Int]

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
        var offsets: [Int] = []
        offsets.reserveCapacity(scalars.count + 1)
        var characters = 0
        for character in text {
            for _ in character.unicodeScalars { offsets.append(characters) }
            characters += 1
        }
        offsets.append(characters)
        characterOffsets = offsets
    }

    /// The 0-based Character offset of the Character holding the scalar at `offset`
    /// (clamped to the text, so it never traps).
    func characterOffset(_ offset: Int) -> Int {
        characterOffsets[min(max(offset, 0), characterOffsets.count - 1)]
    }

    /// The 1-based column of the scalar at `offset`, for messages naming another place.
    func column(_ offset: Int) -> Int { characterOffset(offset) + 1 }
}
