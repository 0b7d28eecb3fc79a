/// A `block:` step: the pipeline pauses there until someone allowed approves or rejects it
/// (`gantry approve` / `gantry reject`). It runs no command and holds no agent; approved,
/// it ends `succeeded` and the steps after it run; rejected, it ends `failed`. Its fields
/// are asked of the approver and stored as the pipeline's meta-data, for later steps.
public struct BlockStep: Sendable, Equatable, Codable {
    /// What the approver is asked (`block: "Deploy to production?"`).
    public var prompt: String
    public var fields: [BlockField]
    /// Roles that may decide (`allowed: {roles: [deployer]}`): a principal holding one of
    /// them, or a higher one, may. Empty with `identities` empty: whoever may deploy.
    public var roles: [String]
    /// Identities that may decide, by name (`allowed: {identities: [alice]}`).
    public var identities: [String]

    public init(prompt: String, fields: [BlockField] = [], roles: [String] = [], identities: [String] = []) {
        self.prompt = prompt
        self.fields = fields
        self.roles = roles
        self.identities = identities
    }
}

/// One input a block asks for; its value is stored as meta-data under `key`.
public struct BlockField: Sendable, Equatable, Codable {
    /// A meta-data key: 1-255 bytes of letters, digits and `_ . : / -`.
    public var key: String
    /// What the approver sees.
    public var label: String
    public var required: Bool
    /// Allowed values (`select:`); empty for free text.
    public var options: [String]
    /// Used when the approver gives none.
    public var defaultValue: String?

    public init(key: String, label: String, required: Bool = false, options: [String] = [], defaultValue: String? = nil) {
        self.key = key
        self.label = label
        self.required = required
        self.options = options
        self.defaultValue = defaultValue
    }
}
