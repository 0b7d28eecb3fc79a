/// The compiled form of a set of byte patterns: an Aho-Corasick automaton over the first
/// `headLength` bytes of each pattern, as a dense table indexed by state and byte class.
///
/// Why this shape: the masker must scan every byte of a step's output at well above the
/// agent's 150 MB/s streaming rate, and it must know at every point how many trailing
/// bytes could still begin a pattern (the depth of the current state), which is exactly
/// what it holds back. A dense table makes a step one table load; byte classes (every
/// byte that occurs in no pattern head shares class 0) keep the table small. Patterns
/// longer than the head are completed by comparing the following bytes (`SecretMasker`'s
/// verifications), so the table's size does not grow with 64 KiB secrets.
///
/// Immutable after `init`, so one instance is shared by every copy of a masker.
final class SecretAutomaton: Sendable {
    /// Upper bound on the table's entries (states × classes, 4 bytes each: 16 MiB); the
    /// head length shrinks (to `SecretForms.minimumFormLength` at least) to stay within it.
    static let maximumTableEntries = 4 * 1024 * 1024
    static let preferredHeadLength = 16

    /// Bytes of each pattern held in the table; longer patterns are verified afterwards.
    let headLength: Int
    /// Byte to class (0: a byte that occurs in no head).
    let byteClass: [Int32]
    let classCount: Int
    /// `transitions[row + class]` is the next state's row (state × classCount), or its
    /// bitwise complement (negative) when that state reports something (`shortMatch` or
    /// heads), so the scanning loop tests one sign bit.
    let transitions: [Int32]
    /// Per state: the length of the string it stands for (the bytes that may begin a match).
    let depth: [Int32]
    /// Per state: the length of the longest pattern of at most `headLength` bytes that ends
    /// here (a suffix of the state's string), 0 for none.
    let shortMatch: [Int32]
    /// Per state: the long patterns whose head is exactly this state's string, as a range
    /// of `headPatterns`.
    let headRangeStart: [Int32]
    let headRangeEnd: [Int32]
    let headPatterns: [Int32]
    /// Long patterns: offset and length in `storage`.
    let longOffset: [Int]
    let longLength: [Int]
    let storage: [UInt8]

    /// `patterns` must be distinct and at least `SecretForms.minimumFormLength` bytes each.
    init(patterns: [[UInt8]]) {
        var seen = [Bool](repeating: false, count: 256)
        for pattern in patterns {
            for byte in pattern.prefix(Self.preferredHeadLength) { seen[Int(byte)] = true }
        }
        var byteClass = [Int32](repeating: 0, count: 256)
        var classCount = 1
        for byte in 0..<256 where seen[byte] {
            byteClass[byte] = Int32(classCount)
            classCount += 1
        }
        var headLength = Self.preferredHeadLength
        while headLength > SecretForms.minimumFormLength {
            let states = 1 + patterns.reduce(0) { $0 + min($1.count, headLength) }
            if states * classCount <= Self.maximumTableEntries { break }
            headLength -= 1
        }

        // The trie, rows of `classCount` entries, -1 for "no child yet".
        var table = [Int32](repeating: -1, count: classCount)
        var depth: [Int32] = [0]
        var shortMatch: [Int32] = [0]
        var heads: [[Int32]] = [[]]
        var longOffset: [Int] = []
        var longLength: [Int] = []
        var storage: [UInt8] = []
        for pattern in patterns {
            var state = 0
            for byte in pattern.prefix(headLength) {
                let slot = state * classCount + Int(byteClass[Int(byte)])
                if table[slot] < 0 {
                    table[slot] = Int32(depth.count)
                    table += repeatElement(-1, count: classCount)
                    depth.append(depth[state] + 1)
                    shortMatch.append(0)
                    heads.append([])
                }
                state = Int(table[slot])
            }
            if pattern.count <= headLength {
                shortMatch[state] = max(shortMatch[state], Int32(pattern.count))
            } else {
                heads[state].append(Int32(longOffset.count))
                longOffset.append(storage.count)
                longLength.append(pattern.count)
                storage += pattern
            }
        }

        // Breadth-first: failure links, inherited short matches, and the missing transitions
        // filled in from the failure state (a complete DFA). A state's failure state is
        // shallower, so it is finished before the state itself is visited.
        let stateCount = depth.count
        var failure = [Int32](repeating: 0, count: stateCount)
        var queue: [Int32] = []
        queue.reserveCapacity(stateCount)
        for slot in 0..<classCount {
            if table[slot] < 0 {
                table[slot] = 0
            } else {
                queue.append(table[slot])
            }
        }
        var next = 0
        while next < queue.count {
            let state = Int(queue[next])
            next += 1
            let fail = Int(failure[state])
            shortMatch[state] = max(shortMatch[state], shortMatch[fail])
            for slot in 0..<classCount {
                let child = table[state * classCount + slot]
                let fallback = table[fail * classCount + slot]
                if child < 0 {
                    table[state * classCount + slot] = fallback
                } else {
                    failure[Int(child)] = fallback
                    queue.append(child)
                }
            }
        }

        var headRangeStart = [Int32](repeating: 0, count: stateCount)
        var headRangeEnd = [Int32](repeating: 0, count: stateCount)
        var headPatterns: [Int32] = []
        for state in 0..<stateCount {
            headRangeStart[state] = Int32(headPatterns.count)
            headPatterns += heads[state]
            headRangeEnd[state] = Int32(headPatterns.count)
        }
        let reports = (0..<stateCount).map { shortMatch[$0] > 0 || headRangeEnd[$0] > headRangeStart[$0] }
        self.transitions = table.map { target in
            let row = target * Int32(classCount)
            return reports[Int(target)] ? ~row : row
        }
        self.headLength = headLength
        self.byteClass = byteClass
        self.classCount = classCount
        self.depth = depth
        self.shortMatch = shortMatch
        self.headRangeStart = headRangeStart
        self.headRangeEnd = headRangeEnd
        self.headPatterns = headPatterns
        self.longOffset = longOffset
        self.longLength = longLength
        self.storage = storage
    }

    /// The state a row offset stands for.
    @inline(__always)
    func state(ofRow row: Int) -> Int { row / classCount }
}
