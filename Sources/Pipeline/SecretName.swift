/// What a secret may be called: one rule shared by the pipeline parser (`secrets:`) and the
/// coordinator (`gantry secret set`), so every name a step can ask for is one that can be
/// set, and the reverse.
///
/// A secret reaches its step as an environment variable of the same name, so the name is a
/// portable shell variable name (`[A-Z_][A-Z0-9_]*`, upper case so it reads as a constant),
/// and may not be one the agent sets or the step's process relies on: a secret named `PATH`
/// or `GANTRY_JOB_ID` would either be overwritten (and silently missing) or change how
/// every command runs.
public enum SecretName {
    /// Names reserved whole.
    public static let reserved: Set<String> = [
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "SHELL", "TERM", "PWD", "OLDPWD", "IFS", "ENV",
        "CDPATH", "PS1", "PS2", "PS4", "CI", "GANTRY", "HOSTNAME", "MAIL",
    ]
    /// Reserved prefixes: the agent's own variables, the locale, and the dynamic loader's.
    public static let reservedPrefixes = ["GANTRY_", "LC_", "LD_", "DYLD_", "BASH_FUNC_"]

    /// Why `name` cannot name a secret, or nil if it can. Never echoes more than an
    /// excerpt of the name.
    public static func problem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { return "a secret name is empty" }
        guard bytes.count <= PipelineLimits.maximumSecretNameBytes else {
            return "a secret name is \(bytes.count) bytes long; the limit is \(PipelineLimits.maximumSecretNameBytes)"
        }
        let valid = bytes.enumerated().allSatisfy { index, byte in
            byte == UInt8(ascii: "_") || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (index > 0 && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte))
        }
        guard valid else {
            return "the secret name `\(PipelineParser.excerpt(name))` must be upper-case letters, digits and `_`, "
                + "not starting with a digit (it becomes an environment variable)"
        }
        if reserved.contains(name) || reservedPrefixes.contains(where: name.hasPrefix) {
            return "the secret name `\(name)` is reserved (the agent or the shell sets it); choose another name"
        }
        return nil
    }
}
