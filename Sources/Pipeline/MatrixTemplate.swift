/// A string from a pipeline file that may contain `{{matrix.NAME}}` references (spaces or
/// tabs allowed inside the braces: `{{ matrix.os }}`), split once so that each job of a
/// matrix step can be measured and rendered without scanning the text again.
///
/// Only references to `matrix.` are ours: any other `{{…}}` (a Go template's
/// `{{ .Version }}`, a Helm value, a shell `${{`) is kept as written, because commands
/// hand text to tools that use braces themselves. Text that starts like one of ours
/// (`{{ matrix.`) but is not a plain name followed by `}}` is refused rather than kept,
/// since it was almost certainly meant for us (`{{ matrix.os | upper }}`).
struct MatrixTemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case text(String)
        case reference(String)
    }

    /// `{{ matrix.` without a valid name and closing `}}`; `excerpt` is where it starts.
    struct Malformed: Error, Equatable {
        var excerpt: String
    }

    private(set) var parts: [Part] = []
    /// The names referenced, each once, in order of first use.
    private(set) var references: [String] = []
    /// Bytes of the text around the references.
    private(set) var literalBytes = 0

    /// Splits `text`. Linear in its length: each byte is looked at a bounded number of times.
    init(parsing text: String) throws(Malformed) {
        let bytes = Array(text.utf8)
        var literalStart = 0
        var index = 0
        while index + 1 < bytes.count {
            guard bytes[index] == UInt8(ascii: "{"), bytes[index + 1] == UInt8(ascii: "{") else {
                index += 1
                continue
            }
            var cursor = Self.skipBlanks(bytes, from: index + 2)
            guard Self.hasPrefix(bytes, "matrix.", at: cursor) else {
                index += 1
                continue
            }
            cursor += 7
            let nameStart = cursor
            while cursor < bytes.count, Self.isNameByte(bytes[cursor]) { cursor += 1 }
            let nameEnd = cursor
            cursor = Self.skipBlanks(bytes, from: cursor)
            guard nameEnd > nameStart, Self.hasPrefix(bytes, "}}", at: cursor) else {
                let end = min(bytes.count, index + 40)
                throw Malformed(excerpt: String(decoding: bytes[index..<end], as: UTF8.self))
            }
            // Cuts fall on ASCII bytes (`{`, `}`), never inside a multi-byte character.
            if literalStart < index { appendText(bytes[literalStart..<index]) }
            let name = String(decoding: bytes[nameStart..<nameEnd], as: UTF8.self)
            parts.append(.reference(name))
            if !references.contains(name) { references.append(name) }
            index = cursor + 2
            literalStart = index
        }
        if literalStart < bytes.count { appendText(bytes[literalStart...]) }
    }

    private mutating func appendText(_ bytes: ArraySlice<UInt8>) {
        literalBytes += bytes.count
        parts.append(.text(String(decoding: bytes, as: UTF8.self)))
    }

    /// The first referenced name `values` does not define.
    func firstUndefined(in values: [String: String]) -> String? {
        references.first { values[$0] == nil }
    }

    /// The rendered length in bytes, computed without rendering: limits are checked on it
    /// before any job's strings are built. Undefined names count as empty (the parser
    /// refuses them before asking).
    func renderedBytes(_ values: [String: String]) -> Int {
        var total = literalBytes
        for part in parts {
            if case .reference(let name) = part { total += values[name]?.utf8.count ?? 0 }
        }
        return total
    }

    func render(_ values: [String: String]) -> String {
        var result = ""
        for part in parts {
            switch part {
            case .text(let text): result += text
            case .reference(let name): result += values[name] ?? ""
            }
        }
        return result
    }

    /// `[A-Za-z0-9_-]`: what a matrix dimension name may contain.
    static func isNameByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    private static func skipBlanks(_ bytes: [UInt8], from start: Int) -> Int {
        var index = start
        while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
        return index
    }

    private static func hasPrefix(_ bytes: [UInt8], _ prefix: StaticString, at start: Int) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard start + count <= bytes.count else { return false }
        return prefix.withUTF8Buffer { buffer in
            for offset in 0..<count where bytes[start + offset] != buffer[offset] { return false }
            return true
        }
    }
}
