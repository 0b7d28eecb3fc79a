import Foundation

/// One step's line in the status block.
public struct StepStatus: Sendable, Equatable {
    public var id: String
    public var name: String
    /// The job state as the API names it (`waiting`, `queued`, `running`, `succeeded`, …).
    public var state: String
    public var attempt: Int
    /// When it started running, for the elapsed time; nil before.
    public var startedAt: Date?
    /// When it finished; nil before.
    public var finishedAt: Date?
    /// A short remark (`no agent offers os=windows`), shown after the state.
    public var note: String?

    public init(
        id: String, name: String, state: String, attempt: Int = 1, startedAt: Date? = nil, finishedAt: Date? = nil,
        note: String? = nil
    ) {
        self.id = id
        self.name = name
        self.state = state
        self.attempt = attempt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.note = note
    }
}

/// The compact block `gantry run` redraws below the log on a terminal: one line per step
/// (the unfinished first when they do not all fit), and a summary line. A pure value: the
/// lines depend only on the steps, the width, the colour flag and the time given, so it is
/// tested without a terminal; writing and erasing it is the caller's business.
public struct StatusBlock: Sendable, Equatable {
    public var pipelineID: String
    public var steps: [StepStatus]
    /// At most this many step lines; the rest are counted in the summary.
    public var maximumStepLines: Int

    public init(pipelineID: String, steps: [StepStatus], maximumStepLines: Int = 10) {
        self.pipelineID = pipelineID
        self.steps = steps
        self.maximumStepLines = maximumStepLines
    }

    static let unfinished: Set<String> = ["waiting", "queued", "leased", "running", "blocked"]

    /// The block's lines, each at most `width` columns (counted as characters) and without
    /// a newline. With `colour`, states carry SGR colours; without, nothing but text.
    public func lines(width: Int, colour: Bool, now: Date) -> [String] {
        let width = max(width, 20)
        // Unfinished steps first, in pipeline order, then the finished ones.
        let ordered = steps.filter { Self.unfinished.contains($0.state) } + steps.filter { !Self.unfinished.contains($0.state) }
        let shown = ordered.prefix(max(0, maximumStepLines))
        let nameWidth = min(shown.map { TerminalText.printable($0.name, limit: 40).count }.max() ?? 0, 40)
        var lines: [String] = []
        for step in shown {
            let name = TerminalText.pad(TerminalText.printable(step.name, limit: 40), to: nameWidth)
            let state = TerminalText.printable(step.state, limit: 20)
            var detail = ""
            if step.attempt > 1 { detail += " attempt \(step.attempt)" }
            if let started = step.startedAt {
                detail += " " + RelativeTime.duration(Int((step.finishedAt ?? now).timeIntervalSince(started)))
            }
            if let note = step.note { detail += " — " + TerminalText.printable(note, limit: 200) }
            let plain = "\(Self.mark(step.state)) \(name)  \(state)\(detail)"
            let cut = Self.cut(plain, to: width)
            lines.append(colour ? Self.colourize(cut, state: step.state) : cut)
        }
        var counts: [String: Int] = [:]
        for step in steps { counts[Self.group(step.state), default: 0] += 1 }
        let order = ["running", "waiting", "succeeded", "failed", "cancelled", "skipped"]
        let summary = order.compactMap { key in counts[key].map { "\($0) \(key)" } }.joined(separator: ", ")
        let more = ordered.count > shown.count ? " (\(ordered.count - shown.count) more not shown)" : ""
        lines.append(Self.cut("pipeline \(TerminalText.printable(pipelineID, limit: 80)): \(summary)\(more)", to: width))
        return lines
    }

    /// Which summary group a state counts in.
    static func group(_ state: String) -> String {
        switch state {
        case "leased", "running": return "running"
        case "waiting", "queued", "blocked": return "waiting"
        case "succeeded": return "succeeded"
        case "skipped": return "skipped"
        case "cancelled": return "cancelled"
        default: return "failed"
        }
    }

    static func mark(_ state: String) -> String {
        switch group(state) {
        case "running": return ">"
        case "waiting": return "."
        case "succeeded": return "+"
        case "skipped": return "-"
        case "cancelled": return "x"
        default: return "!"
        }
    }

    /// A status line is cut to the width (a status line that wraps breaks the redraw);
    /// the ids the user needs are printed in full elsewhere.
    static func cut(_ text: String, to width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }

    static func colourize(_ line: String, state: String) -> String {
        let code: String
        switch group(state) {
        case "running": code = "36"
        case "waiting": code = "2"
        case "succeeded": code = "32"
        case "skipped": code = "2"
        case "cancelled": code = "33"
        default: code = "31"
        }
        return "\u{1B}[\(code)m\(line)\u{1B}[0m"
    }
}

/// Whether to use ANSI: only on a terminal, with `NO_COLOR` unset or empty and a `TERM`
/// other than `dumb` (https://no-color.org).
public enum ColourPolicy {
    public static func useANSI(isTerminal: Bool, environment: [String: String]) -> Bool {
        guard isTerminal else { return false }
        if let noColour = environment["NO_COLOR"], !noColour.isEmpty { return false }
        return environment["TERM"] != "dumb"
    }
}
