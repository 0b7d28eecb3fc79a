/// Masks secret values in a byte stream before it leaves the process: every form of every
/// value (`SecretForms`: raw, base64 in 3 alignments, URL- and JSON-encoded) becomes `***`.
///
/// Feed it the output in whatever pieces it arrives; it hands back what is safe to emit
/// now and holds back only the trailing bytes that could still begin a form (at most the
/// longest form), so a value split across writes or chunks is still masked and a live
/// follow lags only by that tail. `finish()` flushes the tail at the end of the stream.
///
/// Overlapping and nested matches are merged, so no byte of any match is emitted; each
/// merged run becomes one `***`. The output is the same however the input was split:
/// feeding the pieces equals masking their concatenation at once.
///
/// Cost: with no secrets, `feed` hands the input straight back (no scan, no copy). With
/// secrets, one table step per byte (`SecretAutomaton`); bytes are copied only when
/// something was held back or masked.
public struct SecretMasker: Sendable {
    /// What a masked run becomes.
    public static let replacement: [UInt8] = Array("***".utf8)

    /// Most long-pattern comparisons under way at once. Only a value that repeats itself
    /// (`abababab...`, a period under 1/64 of its length) in output that repeats it too
    /// keeps many going; past this, the oldest is masked as if it matched, so such output
    /// costs at most this many comparisons per byte and never leaks, at the price of
    /// masking up to one value's length of the bytes that follow.
    static let maximumVerifications = 64

    /// nil when there is nothing to mask.
    private let automaton: SecretAutomaton?
    /// The current state's row in the automaton's table.
    private var row = 0
    /// Bytes fed so far (stream offsets below are absolute).
    private var consumed = 0
    /// Bytes before this offset were emitted (or masked).
    private var emitted = 0
    /// The bytes from `emitted` to the start of the piece being fed.
    private var held: [UInt8] = []
    /// Long patterns whose head matched and whose remaining bytes are being compared.
    private var verifications: [Verification] = []
    /// Merged match runs not wholly emitted yet, in order, disjoint.
    private var runs: [Run] = []

    private struct Verification {
        var pattern: Int
        var start: Int
        var matched: Int
    }

    private struct Run {
        var start: Int
        var end: Int
        /// Its `***` was emitted already (the run began before an emit point and went on).
        var announced = false
    }

    /// A masker for these secret values (empty values and forms under 4 bytes are ignored).
    public init<S: Sequence>(secrets: S) where S.Element == String {
        let patterns = SecretForms.forms(of: secrets)
        automaton = patterns.isEmpty ? nil : SecretAutomaton(patterns: patterns)
    }

    /// False when there is nothing to mask: `feed` returns its input untouched.
    public var isActive: Bool { automaton != nil }

    /// Bytes fed but not emitted yet.
    public var heldBackCount: Int { consumed - emitted }

    /// Feeds the next piece of the stream; `emit` is called at most once, with the bytes
    /// that are safe to emit now (the input itself when nothing was held or masked).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard let automaton else {
            if !bytes.isEmpty { try emit(bytes) }
            return
        }
        let base = consumed
        scan(bytes, base: base, automaton: automaton)
        consumed += bytes.count
        var cut = consumed - Int(automaton.depth[automaton.state(ofRow: row)])
        for verification in verifications { cut = min(cut, verification.start) }
        try emitRegion(upTo: cut, piece: bytes, base: base, emit: emit)
    }

    /// Ends the stream: emits everything held back (a prefix of a secret that never
    /// completed is not a secret), masking the runs found. The masker can then be fed a
    /// new stream.
    public mutating func finish(emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        verifications.removeAll()
        row = 0
        try [UInt8]().withUnsafeBytes { empty in
            try emitRegion(upTo: consumed, piece: empty, base: consumed, emit: emit)
        }
    }

    /// `feed` for an array: the bytes safe to emit now.
    public mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { feed($0) { out += $0 } }
        return out
    }

    /// `finish` for an array: the rest of the stream.
    public mutating func finish() -> [UInt8] {
        var out: [UInt8] = []
        finish { out += $0 }
        return out
    }

    /// `text` masked as a stream of its own (for messages that leave the agent outside
    /// the log, such as a job's final status message).
    public func masking(_ text: String) -> String {
        guard isActive else { return text }
        var fresh = self
        fresh.row = 0
        fresh.consumed = 0
        fresh.emitted = 0
        fresh.held = []
        fresh.verifications = []
        fresh.runs = []
        var out = fresh.feed(Array(text.utf8))
        out += fresh.finish()
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: scanning

    /// Runs the piece through the automaton, recording every match as a run.
    private mutating func scan(_ bytes: UnsafeRawBufferPointer, base: Int, automaton: SecretAutomaton) {
        automaton.transitions.withUnsafeBufferPointer { transitions in
            automaton.byteClass.withUnsafeBufferPointer { byteClass in
                var row = self.row
                var index = 0
                let count = bytes.count
                while index < count {
                    if verifications.isEmpty {
                        // The hot loop: one table load per byte until a state reports.
                        while index < count {
                            let target = transitions[row &+ Int(byteClass[Int(bytes[index])])]
                            index &+= 1
                            if target >= 0 {
                                row = Int(target)
                            } else {
                                row = Int(~target)
                                report(row: row, end: base + index, automaton: automaton)
                                break
                            }
                        }
                    } else {
                        let byte = bytes[index]
                        index += 1
                        advanceVerifications(with: byte, end: base + index, automaton: automaton)
                        let target = transitions[row &+ Int(byteClass[Int(byte)])]
                        if target >= 0 {
                            row = Int(target)
                        } else {
                            row = Int(~target)
                            report(row: row, end: base + index, automaton: automaton)
                        }
                    }
                }
                self.row = row
            }
        }
    }

    /// The state at `row` was reached with the byte ending at `end`: record its short
    /// match and start verifying the long patterns whose head it completes.
    private mutating func report(row: Int, end: Int, automaton: SecretAutomaton) {
        let state = automaton.state(ofRow: row)
        let short = Int(automaton.shortMatch[state])
        if short > 0 { addRun(start: end - short, end: end) }
        let first = Int(automaton.headRangeStart[state])
        let last = Int(automaton.headRangeEnd[state])
        for index in first..<last {
            if verifications.count >= Self.maximumVerifications {
                let oldest = verifications.removeFirst()
                addRun(start: oldest.start, end: oldest.start + automaton.longLength[oldest.pattern])
            }
            verifications.append(
                Verification(
                    pattern: Int(automaton.headPatterns[index]), start: end - automaton.headLength,
                    matched: automaton.headLength))
        }
    }

    /// Compares `byte` (ending at `end`) with the next byte of each long pattern under way.
    private mutating func advanceVerifications(with byte: UInt8, end: Int, automaton: SecretAutomaton) {
        var kept = 0
        for index in verifications.indices {
            var verification = verifications[index]
            let pattern = verification.pattern
            guard automaton.storage[automaton.longOffset[pattern] + verification.matched] == byte else { continue }
            verification.matched += 1
            if verification.matched == automaton.longLength[pattern] {
                addRun(start: verification.start, end: end)
            } else {
                verifications[kept] = verification
                kept += 1
            }
        }
        verifications.removeLast(verifications.count - kept)
    }

    /// Records a match. A match never starts before the last emit point (which is at most
    /// the start of any partial match) and ends at the current byte or later (later only
    /// for one masked past `maximumVerifications`), so it overlaps no run but those at
    /// the back, and merges with them.
    private mutating func addRun(start: Int, end: Int) {
        var run = Run(start: start, end: end)
        while let last = runs.last, last.end > run.start {
            run.start = min(run.start, last.start)
            run.end = max(run.end, last.end)
            run.announced = last.announced
            runs.removeLast()
        }
        runs.append(run)
    }

    // MARK: emitting

    /// Emits `[emitted, cut)` with each run masked, and keeps `[cut, consumed)` held. The
    /// bytes are `held` (from `emitted` to `base`) followed by `piece` (from `base`).
    private mutating func emitRegion(
        upTo cut: Int, piece: UnsafeRawBufferPointer, base: Int, emit: (UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        guard cut > emitted else {
            held.append(contentsOf: piece)
            return
        }
        // Common case: nothing held before this piece and nothing to mask in what goes out.
        if held.isEmpty && base == emitted && (runs.first.map { $0.start >= cut } ?? true) {
            try emit(UnsafeRawBufferPointer(rebasing: piece[0..<(cut - base)]))
            held = Array(piece[(cut - base)...])
            emitted = cut
            return
        }
        var out: [UInt8] = []
        out.reserveCapacity(cut - emitted)
        var position = emitted
        var consumedRuns = 0
        for index in runs.indices {
            let run = runs[index]
            guard run.start < cut else { break }
            copy(from: position, to: run.start, piece: piece, base: base, into: &out)
            if !run.announced { out += Self.replacement }
            if run.end <= cut {
                position = run.end
                consumedRuns += 1
            } else {
                // The run goes on past the cut and may still grow: its `***` is out, the
                // rest of it is dropped when it ends.
                runs[index].announced = true
                runs[index].start = cut
                position = cut
            }
        }
        runs.removeFirst(consumedRuns)
        copy(from: position, to: cut, piece: piece, base: base, into: &out)
        var rest: [UInt8] = []
        rest.reserveCapacity(consumed - cut)
        copy(from: cut, to: consumed, piece: piece, base: base, into: &rest)
        held = rest
        emitted = cut
        if !out.isEmpty { try out.withUnsafeBytes { try emit($0) } }
    }

    /// Appends the stream's bytes `[from, to)`, taken from `held` and `piece`.
    private func copy(from: Int, to: Int, piece: UnsafeRawBufferPointer, base: Int, into out: inout [UInt8]) {
        guard from < to else { return }
        if from < base {
            out += held[(from - emitted)..<(min(to, base) - emitted)]
        }
        if to > base {
            out += piece[(max(from, base) - base)..<(to - base)]
        }
    }
}
