extension LinearRegex {
    /// Turns a `LinearRegexNode` into Pike VM instructions (Thompson's construction).
    ///
    /// The parser has already counted what this emits and refused anything over
    /// `LinearRegex.maximumInstructions`, so expanding counted repeats here is bounded.
    /// Jump targets are computed from the program's length as it grows, and a `split`
    /// emitted before its target is known is patched afterwards (`patch`), so every target
    /// points inside the final program.
    struct Compiler {
        let caseInsensitive: Bool
        private(set) var program: [LinearRegexInstruction] = []
        private(set) var sets: [LinearRegexScalarSet] = []

        init(caseInsensitive: Bool) {
            self.caseInsensitive = caseInsensitive
        }

        mutating func emit(_ instruction: LinearRegexInstruction) {
            program.append(instruction)
        }

        mutating func compile(_ node: LinearRegexNode) {
            switch node {
            case .empty:
                break
            case .scalar(let scalar):
                emit(.scalar(caseInsensitive ? LinearRegex.lowercase(scalar) : scalar))
            case .set(let set):
                sets.append(set)
                emit(.set(sets.count - 1))
            case .textStart:
                emit(.assertTextStart)
            case .textEnd:
                emit(.assertTextEnd)
            case .concatenation(let parts):
                for part in parts { compile(part) }
            case .alternation(let alternatives):
                compileAlternation(alternatives[...])
            case .repeating(let inner, let minimum, let maximum):
                compileRepeat(inner, minimum: minimum, maximum: maximum)
            }
        }

        /// `split(first, rest); first; jump end; rest` — recursively for the rest, so
        /// k alternatives cost k - 1 splits and k - 1 jumps.
        private mutating func compileAlternation(_ alternatives: ArraySlice<LinearRegexNode>) {
            guard let first = alternatives.first else { return }
            guard alternatives.count > 1 else {
                compile(first)
                return
            }
            let split = program.count
            emit(.split(split + 1, 0))
            compile(first)
            let jump = program.count
            emit(.jump(0))
            patch(split, .split(split + 1, program.count))
            compileAlternation(alternatives.dropFirst())
            patch(jump, .jump(program.count))
        }

        private mutating func compileRepeat(_ inner: LinearRegexNode, minimum: Int, maximum: Int?) {
            guard let maximum else {
                if minimum == 0 {
                    // loop: split(body, end); body; jump loop
                    let loop = program.count
                    emit(.split(loop + 1, 0))
                    compile(inner)
                    emit(.jump(loop))
                    patch(loop, .split(loop + 1, program.count))
                } else {
                    for _ in 0..<(minimum - 1) { compile(inner) }
                    // last: body; split(last, next)
                    let last = program.count
                    compile(inner)
                    emit(.split(last, program.count + 1))
                }
                return
            }
            for _ in 0..<minimum { compile(inner) }
            guard maximum > minimum else { return }
            // Each optional copy: split(body, end); body. All skip straight to the end.
            var splits: [Int] = []
            for _ in minimum..<maximum {
                splits.append(program.count)
                emit(.split(program.count + 1, 0))
                compile(inner)
            }
            let end = program.count
            for split in splits { patch(split, .split(split + 1, end)) }
        }

        private mutating func patch(_ index: Int, _ instruction: LinearRegexInstruction) {
            program[index] = instruction
        }
    }

    /// The scalar's simple lowercase mapping when it is one scalar, else the scalar itself:
    /// the fold `i` compares with. ASCII, the common case, needs no Unicode tables.
    static func lowercase(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        if scalar.isASCII {
            return ("A"..."Z").contains(scalar) ? Unicode.Scalar(UInt8(scalar.value + 32)) : scalar
        }
        return single(scalar.properties.lowercaseMapping) ?? scalar
    }

    /// The scalar's simple uppercase mapping when it is one scalar, else the scalar itself.
    static func uppercase(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        if scalar.isASCII {
            return ("a"..."z").contains(scalar) ? Unicode.Scalar(UInt8(scalar.value - 32)) : scalar
        }
        return single(scalar.properties.uppercaseMapping) ?? scalar
    }

    private static func single(_ text: String) -> Unicode.Scalar? {
        var scalars = text.unicodeScalars.makeIterator()
        guard let first = scalars.next(), scalars.next() == nil else { return nil }
        return first
    }
}
