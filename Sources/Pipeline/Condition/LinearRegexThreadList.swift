/// The set of program counters alive at one text position, in insertion order: a sparse
/// set (Briggs and Torczon), so adding, testing and clearing are O(1) and iterating is
/// O(members) — clearing does not touch the whole program.
///
/// Holding each program counter at most once per position is what makes the Pike VM
/// linear: however many paths reach an instruction, it is stepped once.
struct LinearRegexThreadList {
    private var sparse: [Int]
    private(set) var dense: [Int]

    init(capacity: Int) {
        sparse = Array(repeating: 0, count: capacity)
        dense = []
        dense.reserveCapacity(capacity)
    }

    func contains(_ pc: Int) -> Bool {
        let slot = sparse[pc]
        return slot < dense.count && dense[slot] == pc
    }

    /// Adds `pc`; false if it was already there.
    mutating func insert(_ pc: Int) -> Bool {
        guard !contains(pc) else { return false }
        sparse[pc] = dense.count
        dense.append(pc)
        return true
    }

    mutating func removeAll() {
        dense.removeAll(keepingCapacity: true)
    }

    var isEmpty: Bool { dense.isEmpty }
}
