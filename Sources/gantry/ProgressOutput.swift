import Foundation
import GantryCLIKit
import GantryProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything `gantry run` writes while it follows, from one place, so log lines, state
/// changes and the status block never interleave mid-line.
///
/// Live (stdout a terminal, `NO_COLOR` unset, `TERM` not `dumb`): the status block
/// (`StatusBlock`) sits below the log; before anything is written it is erased, and after
/// it is drawn again, so log lines scroll above it. Plain (anything else): log lines and
/// one stable line per state change (`gantry: build running (job …)`), no escapes at all.
/// Only complete log lines are written, each prefixed with its step's name; a step's
/// unfinished last line waits for its newline (or the end of the log).
actor ProgressOutput {
    let live: Bool
    private var block: StatusBlock
    private var drawnLines = 0
    private var partial: [String: [UInt8]] = [:]
    private var prefixes: [String: String] = [:]
    private var lastStates: [String: String] = [:]
    private var notes: [String: String] = [:]
    private var finished = false
    /// While Ctrl-C's question waits for an answer, the block is not drawn and log lines
    /// are held (up to `maximumHeld` bytes), so the question stays on the last line.
    private var paused = false
    private var held: [UInt8] = []
    static let maximumHeld = 4 << 20
    /// The longest unfinished line held for its newline.
    static let maximumLine = 1 << 20
    /// The width of the step-name prefix, from the longest name (at most 40).
    private var nameWidth: Int

    init(pipeline: API.Pipeline, live: Bool) {
        self.live = live
        block = StatusBlock(pipelineID: pipeline.id, steps: [])
        nameWidth = min(pipeline.jobs.map { TerminalText.printable($0.name, limit: 40).count }.max() ?? 0, 40)
    }

    /// Whether stdout gets the live block: a terminal, and colour allowed.
    static func isLive() -> Bool {
        ColourPolicy.useANSI(isTerminal: isatty(1) == 1, environment: ProcessInfo.processInfo.environment)
    }

    // MARK: Log bytes

    func prefix(_ job: API.Job) -> String {
        if let known = prefixes[job.id] { return known }
        let prefix = "[" + TerminalText.pad(TerminalText.printable(job.name, limit: 40), to: nameWidth) + "] "
        prefixes[job.id] = prefix
        return prefix
    }

    func write(_ bytes: [UInt8], job: API.Job) {
        let prefix = Array(prefix(job).utf8)
        var pending = partial[job.id, default: []] + bytes
        var output: [UInt8] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            output += prefix + pending[...newline]
            pending.removeSubrange(...newline)
        }
        // A line without end is not held without end: past `maximumLine` it is written as
        // a line of its own, and the rest follows on the next.
        if pending.count > Self.maximumLine {
            output += prefix + pending + [UInt8(ascii: "\n")]
            pending = []
        }
        partial[job.id] = pending
        if !output.isEmpty { emit(output) }
    }

    /// The end of a job's log: its unfinished last line, with a newline.
    func flush(job: API.Job) {
        if let rest = partial.removeValue(forKey: job.id), !rest.isEmpty {
            emit(Array(prefix(job).utf8) + rest + [UInt8(ascii: "\n")])
        }
    }

    func attemptChanged(job: API.Job, previous: Int, current: Int, reason: String?) {
        flush(job: job)
        let why = reason.map { ": " + TerminalText.printable($0, limit: 200) } ?? ""
        emit(Array("\(prefix(job))--- gantry: attempt \(current) (previous attempt \(previous) ended\(why)) ---\n".utf8))
    }

    /// A line of the CLI's own (lost the coordinator, reconnected): stderr when plain.
    func notice(_ text: String) {
        let line = "gantry: " + text + "\n"
        if live {
            emit(Array(line.utf8))
        } else {
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    // MARK: State

    /// The pipeline as last read, and a remark per job id (why it waits).
    func update(_ pipeline: API.Pipeline, notes: [String: String]) {
        self.notes = notes
        block.steps = pipeline.jobs.map { job in
            StepStatus(
                id: job.id, name: job.name, state: job.state, attempt: job.attempt, startedAt: job.startedAt,
                finishedAt: job.finishedAt, note: notes[job.id])
        }
        if live {
            redraw()
            return
        }
        var text = ""
        for job in pipeline.jobs {
            let said = job.state + (notes[job.id].map { " " + $0 } ?? "") + " \(job.attempt)"
            guard lastStates[job.id] != said else { continue }
            let first = lastStates[job.id] == nil
            lastStates[job.id] = said
            // The first sight of a waiting job says nothing new: `run` listed the jobs.
            if first && ["waiting", "queued"].contains(job.state) && notes[job.id] == nil { continue }
            let attempt = job.attempt > 1 ? ", attempt \(job.attempt)" : ""
            let note = notes[job.id].map { ": " + TerminalText.printable($0, limit: 200) } ?? ""
            text += "gantry: \(TerminalText.printable(job.name, limit: 80)) \(TerminalText.printable(job.state, limit: 20)) "
                + "(job \(TerminalText.printable(job.id, limit: 80))\(attempt))\(note)\n"
        }
        if !text.isEmpty { FileHandle.standardOutput.write(Data(text.utf8)) }
    }

    /// Removes the block while a question is asked below it (`true`), draws it again after.
    func setPaused(_ pause: Bool) {
        guard live, !finished else { return }
        if pause {
            FileHandle.standardOutput.write(Data(erase()))
            paused = true
        } else {
            paused = false
            FileHandle.standardOutput.write(Data(held))
            held = []
            redraw()
        }
    }

    /// Draws the block again (elapsed times move on).
    func redraw() {
        guard live, !finished, !paused else { return }
        var output = erase()
        output += draw()
        FileHandle.standardOutput.write(Data(output))
    }

    /// Removes the block for good: what follows is the summary.
    func finish() {
        guard live, !finished else { return }
        finished = true
        FileHandle.standardOutput.write(Data(erase() + held))
        held = []
    }

    // MARK: Drawing

    private func emit(_ bytes: [UInt8]) {
        if live, paused, held.count + bytes.count <= Self.maximumHeld {
            held += bytes
            return
        }
        guard live, !finished, !paused else {
            FileHandle.standardOutput.write(Data(bytes))
            return
        }
        FileHandle.standardOutput.write(Data(erase() + bytes + draw()))
    }

    /// Cursor up to the block's first line, and clear to the end of the screen.
    private func erase() -> [UInt8] {
        defer { drawnLines = 0 }
        return drawnLines == 0 ? [] : Array("\u{1B}[\(drawnLines)F\u{1B}[J".utf8)
    }

    private func draw() -> [UInt8] {
        let lines = block.lines(width: Self.terminalWidth() - 1, colour: true, now: Date())
        drawnLines = lines.count
        return Array(lines.map { $0 + "\n" }.joined().utf8)
    }

    /// Columns of the terminal on stdout; 80 when it does not say.
    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? 80
    }
}
