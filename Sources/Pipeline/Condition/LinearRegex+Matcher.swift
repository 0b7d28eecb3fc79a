extension LinearRegex {
    /// Whether the pattern matches anywhere in `text` (or where its anchors say).
    ///
    /// A Pike VM: all NFA states alive at a position are kept in a `LinearRegexThreadList`
    /// and advanced together over each scalar, each program counter at most once per
    /// position, so the cost is O(`program.count` × scalars of `text`) whatever the
    /// pattern — `(a+)+$` on 50,000 `a`s is as cheap as `a`. A search anywhere is a new
    /// thread at pc 0 at every position, the automaton form of a leading `.*?`. It returns
    /// as soon as any thread reaches `match`.
    ///
    /// It never traps: every target in the program is inside it (`Compiler`), sets are
    /// indexed by the compiler's own indexes, and the work stack holds at most two entries
    /// per instruction.
    func matches(_ text: String) -> Bool {
        var current = LinearRegexThreadList(capacity: program.count)
        var next = LinearRegexThreadList(capacity: program.count)
        var stack: [Int] = []
        stack.reserveCapacity(2 * program.count + 2)
        let scalars = text.unicodeScalars
        var index = scalars.startIndex
        var atStart = true
        while true {
            let atEnd = index == scalars.endIndex
            if atStart || !anchoredAtStart {
                if addClosure(of: 0, to: &current, atStart: atStart, atEnd: atEnd, stack: &stack) { return true }
            }
            if atEnd || (anchoredAtStart && current.isEmpty) { return false }
            let scalar = scalars[index]
            scalars.formIndex(after: &index)
            atStart = false
            let nextAtEnd = index == scalars.endIndex
            let folded = caseInsensitive ? LinearRegex.lowercase(scalar) : scalar
            let upper = caseInsensitive ? LinearRegex.uppercase(scalar) : scalar
            next.removeAll()
            for pc in current.dense {
                let consumes: Bool
                switch program[pc] {
                case .scalar(let expected):
                    consumes = folded == expected
                case .set(let setIndex):
                    let set = sets[setIndex]
                    let holds = set.holds(scalar.value) || (caseInsensitive && (set.holds(folded.value) || set.holds(upper.value)))
                    consumes = holds != set.negated
                case .split, .jump, .assertTextStart, .assertTextEnd, .match:
                    // Already followed when the thread was added.
                    consumes = false
                }
                if consumes, addClosure(of: pc + 1, to: &next, atStart: false, atEnd: nextAtEnd, stack: &stack) {
                    return true
                }
            }
            swap(&current, &next)
        }
    }

    /// Adds `pc` and every instruction reachable from it without consuming a scalar to
    /// `list`; true as soon as `match` is reachable. Iterative, so a long chain of splits
    /// cannot overflow the call stack.
    private func addClosure(
        of pc: Int, to list: inout LinearRegexThreadList, atStart: Bool, atEnd: Bool, stack: inout [Int]
    ) -> Bool {
        stack.removeAll(keepingCapacity: true)
        stack.append(pc)
        while let pc = stack.popLast() {
            guard list.insert(pc) else { continue }
            switch program[pc] {
            case .match:
                return true
            case .jump(let target):
                stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .assertTextStart:
                if atStart { stack.append(pc + 1) }
            case .assertTextEnd:
                if atEnd { stack.append(pc + 1) }
            case .scalar, .set:
                break
            }
        }
        return false
    }
}
