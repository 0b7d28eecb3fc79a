import GantryProtocol

/// Range checks on what the coordinator sends, done before the agent acts on it: a hostile
/// or buggy coordinator can make the agent refuse a lease or drop the connection, never
/// trap, create files outside its directories, or sleep for years.
///
/// The bounds are wider than the coordinator's own pipeline limits (Sources/Pipeline's
/// `PipelineLimits`: timeout 7 days, grace 1 hour, 256 commands of 64 KiB, 256 env
/// entries), so those can grow without an agent upgrade, and far narrower than what could
/// overflow a conversion or a `Duration`.
public enum CoordinatorValueChecks {
    /// Longest step timeout the agent accepts: 31 days.
    public static let maximumTimeoutSeconds: UInt32 = 31 * 24 * 3600
    /// Longest cancel grace: 1 day.
    public static let maximumCancelGraceSeconds: UInt32 = 24 * 3600
    /// Job ids become file and cgroup names; the coordinator's are UUIDs (36 bytes).
    public static let maximumJobIDLength = 128
    public static let maximumCommands = 4096
    public static let maximumCommandBytes = 1024 * 1024
    public static let maximumEnvironmentEntries = 4096
    public static let maximumEnvironmentNameBytes = 1024
    /// Names and other short strings of a lease (pipeline id, step key, repository, ...).
    public static let maximumFieldBytes = 64 * 1024
    /// Secrets a lease may carry, and their sizes. The masker compiles every form of every
    /// value (about 20 patterns and 20 times the value's bytes), so the total is bounded
    /// too: 1 MiB of values keeps one attempt's masker within some 20 MiB of patterns and
    /// a 16 MiB table, where 100 values of 64 KiB would need over 100 MiB.
    public static let maximumSecrets = 100
    public static let maximumSecretNameBytes = 255
    public static let maximumSecretValueBytes = 64 * 1024
    public static let maximumSecretBytesTotal = 1024 * 1024
    /// The job token (`gjt_<job>.<attempt>.<64 hex>`, some 150 bytes) and the API URL.
    public static let maximumJobTokenBytes = 512
    public static let maximumAPIURLBytes = 2048
    /// Heartbeat interval and lease TTL the Welcome may announce: 10 minutes and 1 hour.
    public static let maximumHeartbeatIntervalMs: UInt32 = 600_000
    public static let maximumLeaseTTLMs: UInt32 = 3_600_000

    /// Why the agent refuses `lease`, or nil if every value is in range. The reason is sent
    /// back in `LeaseAck.reason`.
    public static func problem(with lease: Gantry_V1_Lease) -> String? {
        if let problem = jobIDProblem(lease.jobID) { return problem }
        if lease.attempt == 0 { return "lease.attempt must be at least 1" }
        if lease.timeoutSeconds > maximumTimeoutSeconds {
            return "lease.timeout_seconds \(lease.timeoutSeconds) exceeds the agent's limit of \(maximumTimeoutSeconds)"
        }
        if lease.cancelGraceSeconds > maximumCancelGraceSeconds {
            return "lease.cancel_grace_seconds \(lease.cancelGraceSeconds) exceeds the agent's limit of \(maximumCancelGraceSeconds)"
        }
        if lease.commands.count > maximumCommands {
            return "lease has \(lease.commands.count) commands, more than the agent's limit of \(maximumCommands)"
        }
        for (index, command) in lease.commands.enumerated() {
            if command.utf8.count > maximumCommandBytes {
                return "lease.commands[\(index)] is \(command.utf8.count) bytes, more than \(maximumCommandBytes)"
            }
            if command.utf8.contains(0) { return "lease.commands[\(index)] contains a NUL byte" }
        }
        if lease.env.count > maximumEnvironmentEntries {
            return "lease.env has \(lease.env.count) entries, more than the agent's limit of \(maximumEnvironmentEntries)"
        }
        for (name, value) in lease.env {
            if name.isEmpty || name.utf8.count > maximumEnvironmentNameBytes || name.utf8.contains(0)
                || name.contains("=")
            {
                return "lease.env has an invalid variable name (empty, too long, or containing '=' or NUL)"
            }
            if value.utf8.count > maximumCommandBytes || value.utf8.contains(0) {
                return "lease.env[\(loggable(name, maximum: 64))] is too long or contains a NUL byte"
            }
        }
        if let problem = secretsProblem(lease.secrets) { return problem }
        do { _ = try TransferPlan(lease: lease) } catch { return "lease transfers: \(error)" }
        let fields = [
            ("pipeline_id", lease.pipelineID), ("step_key", lease.stepKey), ("repository", lease.repository),
            ("commit", lease.commit), ("branch", lease.branch), ("environment", lease.environment),
        ]
        for (field, value) in fields {
            if value.utf8.count > maximumFieldBytes || value.utf8.contains(0) {
                return "lease.\(field) is longer than \(maximumFieldBytes) bytes or contains a NUL byte"
            }
        }
        if lease.jobToken.utf8.count > maximumJobTokenBytes
            || !lease.jobToken.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            return "lease.job_token is longer than \(maximumJobTokenBytes) bytes or not printable ASCII"
        }
        if !lease.apiURL.isEmpty {
            let printable = lease.apiURL.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
            let scheme = lease.apiURL.hasPrefix("http://") || lease.apiURL.hasPrefix("https://")
            if lease.apiURL.utf8.count > maximumAPIURLBytes || !printable || !scheme {
                return "lease.api_url must be an http(s) URL of printable ASCII, at most \(maximumAPIURLBytes) bytes"
            }
        }
        return nil
    }

    /// Why the lease's secrets are refused, or nil. A reason names a secret at most, never
    /// shows a value: it is logged and sent back in `LeaseAck.reason`.
    public static func secretsProblem(_ secrets: [String: String]) -> String? {
        if secrets.count > maximumSecrets {
            return "lease.secrets has \(secrets.count) entries, more than the agent's limit of \(maximumSecrets)"
        }
        var total = 0
        for (name, value) in secrets {
            guard isEnvironmentName(name), name.utf8.count <= maximumSecretNameBytes else {
                return "lease.secrets has an invalid name (not [A-Za-z_][A-Za-z0-9_]*, or over \(maximumSecretNameBytes) bytes)"
            }
            if value.utf8.count > maximumSecretValueBytes || value.utf8.contains(0) {
                return "lease.secrets[\(name)] is over \(maximumSecretValueBytes) bytes or contains a NUL byte"
            }
            total += value.utf8.count
        }
        if total > maximumSecretBytesTotal {
            return "lease.secrets hold \(total) bytes in all, more than the agent's limit of \(maximumSecretBytesTotal)"
        }
        return nil
    }

    /// A portable environment variable name (POSIX): a letter or `_`, then letters,
    /// digits and `_`. Secret names are chosen by people, so nothing wider is needed.
    public static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
        }
    }

    /// Job ids name the attempt's work dir, spool file and cgroup, so they are plain
    /// names: 1 to `maximumJobIDLength` of `A-Z a-z 0-9 . _ -`, not starting with a dot.
    public static func jobIDProblem(_ jobID: String) -> String? {
        guard !jobID.isEmpty, jobID.utf8.count <= maximumJobIDLength else {
            return "lease.job_id must be 1 to \(maximumJobIDLength) bytes"
        }
        let allowed = jobID.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        guard allowed, !jobID.hasPrefix(".") else {
            return "lease.job_id may contain only letters, digits, '.', '_' and '-', and not start with '.'"
        }
        return nil
    }

    /// The heartbeat interval and silence limit a `Welcome` announces, or an error naming
    /// the value out of range. `override` is the agent's own `--heartbeat-interval`.
    public static func timing(of welcome: Gantry_V1_Welcome, override: Duration?) throws -> (
        heartbeat: Duration, silenceLimit: Duration
    ) {
        guard welcome.heartbeatIntervalMs <= maximumHeartbeatIntervalMs else {
            throw AgentError.connectionClosed(
                "the coordinator announced heartbeat_interval_ms \(welcome.heartbeatIntervalMs), more than the agent's limit of \(maximumHeartbeatIntervalMs)")
        }
        guard welcome.leaseTtlMs <= maximumLeaseTTLMs else {
            throw AgentError.connectionClosed(
                "the coordinator announced lease_ttl_ms \(welcome.leaseTtlMs), more than the agent's limit of \(maximumLeaseTTLMs)")
        }
        let heartbeat = override ?? .milliseconds(max(welcome.heartbeatIntervalMs, 100))
        return (heartbeat, max(.milliseconds(welcome.leaseTtlMs), heartbeat * 3))
    }

    /// A log offset from the coordinator as an `Int` (it never traps; offsets beyond what
    /// the spool holds are clamped by the streamer).
    public static func offset(_ value: UInt64) -> Int {
        Int(clamping: value)
    }

    /// Text from the coordinator made safe for one log line: control characters escaped,
    /// at most `maximum` characters.
    public static func loggable(_ text: String, maximum: Int = 512) -> String {
        var result = ""
        for (count, scalar) in text.unicodeScalars.enumerated() {
            if count >= maximum {
                result += "…"
                break
            }
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) || scalar == "\\" {
                result += scalar == "\\" ? "\\\\" : "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
