/// A cache key as a step writes it: literal text and `{{ checksum "FILE" }}` references,
/// such as `swiftpm-{{ checksum "Package.resolved" }}`. The pipeline parser checks the
/// syntax when the pipeline is submitted; the agent renders it in the work dir (a
/// checksum is the sha256 of the file, 64 lowercase hex characters) before the commands.
///
/// Literal text is printable ASCII without spaces, `{` or `}` (a key travels in URLs and
/// listings); inside `{{ … }}` spaces are free. A rendered key is at most
/// `TransferLimits.maximumKeyBytes` long, which the parser checks with every checksum
/// counted at its full 64 characters.
public struct CacheKeyTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Part: Sendable, Hashable {
        case literal(String)
        /// The sha256 of this file, relative to the work dir.
        case checksum(String)
    }

    public let text: String
    public let parts: [Part]

    public var description: String { text }

    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Length of one rendered checksum.
    static let checksumLength = 64

    public init(_ text: String, what: String = "cache key") throws(SyntaxError) {
        guard !text.isEmpty else { throw SyntaxError(message: "\(what) is empty") }
        guard text.utf8.count <= TransferLimits.maximumKeyBytes else {
            throw SyntaxError(message: "\(what) is \(text.utf8.count) bytes long; the limit is \(TransferLimits.maximumKeyBytes)")
        }
        var parts: [Part] = []
        var literal = ""
        var rest = Substring(text)
        while let first = rest.first {
            if rest.hasPrefix("{{") {
                guard let close = rest.firstRange(of: "}}") else {
                    throw SyntaxError(message: "\(what) `\(text)` has a `{{` without its `}}`")
                }
                let inside = rest[rest.index(rest.startIndex, offsetBy: 2)..<close.lowerBound]
                let file = try Self.checksumFile(inside, whole: text, what: what)
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = ""
                parts.append(.checksum(file))
                rest = rest[close.upperBound...]
                continue
            }
            let scalar = first.unicodeScalars.first.map(\.value) ?? 0
            guard first.unicodeScalars.count == 1, scalar > 0x20, scalar < 0x7F, first != "{", first != "}" else {
                throw SyntaxError(
                    message: "\(what) `\(text)` contains `\(first.isWhitespace ? "a space" : String(first))`: outside "
                        + "`{{ checksum \"FILE\" }}` a key is printable ASCII without spaces, `{` or `}`")
            }
            literal.append(first)
            rest = rest.dropFirst()
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        let checksums = parts.count(where: { if case .checksum = $0 { true } else { false } })
        guard checksums <= TransferLimits.maximumChecksumsPerKey else {
            throw SyntaxError(
                message: "\(what) `\(text)` has \(checksums) checksums; the limit is \(TransferLimits.maximumChecksumsPerKey)")
        }
        let rendered = parts.reduce(0) { total, part in
            switch part {
            case .literal(let text): total + text.utf8.count
            case .checksum: total + Self.checksumLength
            }
        }
        guard rendered <= TransferLimits.maximumKeyBytes else {
            throw SyntaxError(
                message: "\(what) `\(text)` renders to \(rendered) bytes (each checksum is \(Self.checksumLength)); "
                    + "the limit is \(TransferLimits.maximumKeyBytes)")
        }
        self.text = text
        self.parts = parts
    }

    /// ` checksum "Package.resolved" ` → `Package.resolved`.
    private static func checksumFile(_ inside: Substring, whole: String, what: String) throws(SyntaxError) -> String {
        let trimmed = inside.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()
        let body = String(trimmed)
        let usage = "write `{{ checksum \"FILE\" }}` with FILE relative to the work dir"
        guard body.hasPrefix("checksum") else {
            throw SyntaxError(message: "\(what) `\(whole)` has `{{\(inside)}}`: \(usage)")
        }
        let argument = body.dropFirst("checksum".count)
        guard argument.first == " " else { throw SyntaxError(message: "\(what) `\(whole)` has `{{\(inside)}}`: \(usage)") }
        let quoted = argument.drop { $0 == " " }
        guard quoted.count >= 2, quoted.first == "\"", quoted.last == "\"" else {
            throw SyntaxError(message: "\(what) `\(whole)` has `{{\(inside)}}`: \(usage)")
        }
        let file = String(quoted.dropFirst().dropLast())
        guard !file.contains("\"") else { throw SyntaxError(message: "\(what) `\(whole)` has `{{\(inside)}}`: \(usage)") }
        if let problem = TransferPath.problem(with: file, what: "the checksum file of \(what) `\(whole)`") {
            throw SyntaxError(message: problem)
        }
        return file
    }

    /// The files whose checksums the key needs, in order of first use.
    public var checksumFiles: [String] {
        var seen: Set<String> = []
        return parts.compactMap { part in
            guard case .checksum(let file) = part, seen.insert(file).inserted else { return nil }
            return file
        }
    }

    /// The key with each checksum filled in by `checksum(FILE)` (its sha256 in hex).
    public func render<E: Error>(checksum: (String) throws(E) -> String) throws(E) -> String {
        var key = ""
        for part in parts {
            switch part {
            case .literal(let text): key += text
            case .checksum(let file): key += try checksum(file)
            }
        }
        return key
    }
}
