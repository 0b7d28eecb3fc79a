/// An agent's id, `<name>/<slot>`: the host's enrolled name (its certificate's common
/// name, shared by every slot on the host) and the slot (`--slot`; a scaler's `--name`).
/// The one definition of what a name and a slot may be, used where they are typed
/// (`gantry-agent enroll --name`, `run --slot`, `scale --name`), where the coordinator
/// enrolls a name, and where it checks the id in every `Hello` and `DrainIdle`.
///
/// Both are plain names, 1 to 64 of `A-Z a-z 0-9 . _ -` and not `.` or `..`: they become
/// path components (the slot's spool directory is `<name>_<slot>`), step user names
/// (`gantry-step-{slot}`) and log fields. A bare name, without a slot, is an id too (an
/// agent run under its enrolled name alone).
public struct AgentID: Sendable, Hashable, CustomStringConvertible {
    public static let maximumPartLength = 64

    public let name: String
    public let slot: String?

    /// `name/slot` from its parts, each checked.
    public init(name: String, slot: String?) throws(AgentIDError) {
        if let problem = Self.nameProblem(name) { throw AgentIDError(text: name, problem: "the name \(problem)") }
        if let slot, let problem = Self.nameProblem(slot) { throw AgentIDError(text: slot, problem: "the slot \(problem)") }
        self.name = name
        self.slot = slot
    }

    /// Parses `name` or `name/slot`.
    public init(parsing text: String) throws(AgentIDError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        do {
            try self.init(name: String(parts[0]), slot: parts.count == 2 ? String(parts[1]) : nil)
        } catch {
            throw AgentIDError(text: text, problem: error.problem)
        }
    }

    public var description: String { slot.map { "\(name)/\($0)" } ?? name }

    /// Why `part` cannot be an enrolled name or a slot, or nil.
    public static func nameProblem(_ part: String) -> String? {
        guard !part.isEmpty, part.utf8.count <= maximumPartLength else {
            return "must be 1 to \(maximumPartLength) characters"
        }
        guard part != ".", part != ".." else { return "must not be '.' or '..'" }
        let allowed = part.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        guard allowed else { return "may contain only letters, digits, '.', '_' and '-'" }
        return nil
    }
}

public struct AgentIDError: Error, Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var problem: String

    public var description: String { "'\(text.logSafe(maximum: 80))' is not a valid agent id: \(problem)" }
}
