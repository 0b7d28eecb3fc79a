/// Range-checks every field of a decoded `Envelope` against `WireLimits`.
///
/// Runs on the connection's own task, before a message reaches the coordinator's single
/// writer, so a hostile value fails that connection with a clear error and never reaches
/// arithmetic that could trap. After validation, every count and offset fits an `Int`
/// with room to add, every attempt is at least 1, and every string is short and free of
/// control characters where it names something.
public enum MessageValidation {
    /// Checks `envelope` as received by the coordinator from an agent or a scaler.
    /// `authenticated` is false for the first message of a connection (Hello or
    /// EnrollRequest); it only changes which messages are expected, not the bounds.
    public static func validate(_ envelope: Gantry_V1_Envelope, authenticated: Bool) throws(ProtocolError) {
        switch envelope.body {
        case .none:
            throw .unknownMessage
        case .hello(let hello):
            try agentID(hello.agentID, "hello.agent_id")
            try text(hello.hostname, "hello.hostname", maximum: WireLimits.hostnameLength)
            try text(hello.agentVersion, "hello.agent_version", maximum: WireLimits.agentVersionLength)
            try labels(hello.labels)
            try check(hello.instance.count <= WireLimits.instanceLength, "hello.instance is longer than \(WireLimits.instanceLength) bytes")
            try check(hello.capacity <= WireLimits.capacity, "hello.capacity \(hello.capacity) exceeds \(WireLimits.capacity)")
            try count(hello.held.count, "hello.held")
            for held in hello.held {
                try attempt(jobID: held.jobID, held.attempt, "hello.held")
                try offset(held.ackedLogOffset, "hello.held.acked_log_offset")
            }
        case .enrollRequest(let request):
            if let problem = AgentID.nameProblem(request.agentID) {
                throw .malformed("enroll_request.agent_id \(problem)")
            }
            try check(request.token.utf8.count <= WireLimits.tokenLength, "enroll_request.token is too long")
            try check(
                !request.csrDer.isEmpty && request.csrDer.count <= WireLimits.csrLength,
                "enroll_request.csr_der must be 1 to \(WireLimits.csrLength) bytes")
        case .ready(let ready):
            try check(ready.slots <= WireLimits.capacity, "ready.slots \(ready.slots) exceeds \(WireLimits.capacity)")
        case .leaseAck(let ack):
            try attempt(jobID: ack.jobID, ack.attempt, "lease_ack")
            try text(ack.reason, "lease_ack.reason", maximum: WireLimits.messageLength)
        case .jobStarted(let started):
            try attempt(jobID: started.jobID, started.attempt, "job_started")
        case .logChunk(let chunk):
            try attempt(jobID: chunk.jobID, chunk.attempt, "log_chunk")
            try offset(chunk.offset, "log_chunk.offset")
            try check(
                chunk.rawLength >= 1 && chunk.rawLength <= WireLimits.chunkRawLength,
                "log_chunk.raw_length \(chunk.rawLength) must be 1 to \(WireLimits.chunkRawLength)")
            try check(
                !chunk.data.isEmpty && chunk.data.count <= WireLimits.chunkDataLength(rawLength: chunk.rawLength),
                "log_chunk.data is \(chunk.data.count) bytes, not a deflate stream of \(chunk.rawLength) bytes")
        case .heartbeat(let heartbeat):
            try count(heartbeat.running.count, "heartbeat.running")
            for running in heartbeat.running {
                try attempt(jobID: running.jobID, running.attempt, "heartbeat.running")
                try offset(running.logOffset, "heartbeat.running.log_offset")
            }
            try text(heartbeat.notReadyReason, "heartbeat.not_ready_reason", maximum: WireLimits.messageLength)
        case .jobFinished(let finished):
            try attempt(jobID: finished.jobID, finished.attempt, "job_finished")
            try offset(finished.logLength, "job_finished.log_length")
            try text(finished.message, "job_finished.message", maximum: WireLimits.messageLength)
            try check(
                JobFailureCode.isValid(finished.failure),
                "job_finished.failure must be empty, a known code or 1-\(JobFailureCode.maximumLength) bytes of a-z and _")
        case .drain(let drain):
            try text(drain.reason, "drain.reason", maximum: WireLimits.messageLength)
        case .error(let error):
            try text(error.message, "error.message", maximum: WireLimits.messageLength)
            try text(error.jobID, "error.job_id", maximum: WireLimits.jobIDLength)
        case .drainIdle(let request):
            try check(
                request.agentIds.count <= WireLimits.drainIdleAgents && request.count <= UInt32(WireLimits.drainIdleAgents),
                "drain_idle names more than \(WireLimits.drainIdleAgents) agents")
            for id in request.agentIds { try agentID(id, "drain_idle.agent_ids") }
        case .renewRequest(let request):
            try check(
                !request.csrDer.isEmpty && request.csrDer.count <= WireLimits.csrLength,
                "renew_request.csr_der must be 1 to \(WireLimits.csrLength) bytes")
        case .welcome, .lease, .logAck, .heartbeatAck, .finishAck, .cancel, .enrollResponse, .demand,
            .drainIdleResult, .renewResponse:
            // Coordinator-to-agent messages: the gate refuses them; nothing here to bound.
            break
        }
        _ = authenticated
    }

    // MARK: - Checks

    static func check(_ condition: Bool, _ problem: @autoclosure () -> String) throws(ProtocolError) {
        if !condition { throw .malformed(problem()) }
    }

    static func count(_ count: Int, _ field: String) throws(ProtocolError) {
        try check(
            count <= WireLimits.attemptsPerMessage,
            "\(field) lists \(count) attempts; at most \(WireLimits.attemptsPerMessage) are allowed")
    }

    static func attempt(jobID: String, _ attempt: UInt32, _ field: String) throws(ProtocolError) {
        try name(jobID, "\(field).job_id", maximum: WireLimits.jobIDLength)
        try check(attempt >= 1, "\(field).attempt must be at least 1")
    }

    static func offset(_ value: UInt64, _ field: String) throws(ProtocolError) {
        try check(value <= WireLimits.logOffset, "\(field) \(value) exceeds the maximum log offset \(WireLimits.logOffset)")
    }

    /// An identifier: 1 to `maximum` bytes, printable, no whitespace.
    static func name(_ value: String, _ field: String, maximum: Int) throws(ProtocolError) {
        let bytes = value.utf8.count
        try check(bytes >= 1 && bytes <= maximum, "\(field) must be 1 to \(maximum) bytes, got \(bytes)")
        // Every message carries ids, so the common case (printable ASCII, as the coordinator
        // makes them) is one pass over the bytes; anything else gets the Unicode check.
        let printableASCII = value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        try check(
            printableASCII
                || !value.unicodeScalars.contains { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F },
            "\(field) contains whitespace or control characters")
        // Agent and job ids become path components (spool, work dirs, cgroups) on agents.
        try check(!Self.hasBadPathComponent(value.utf8), "\(field) has an empty, `.` or `..` path component")
    }

    /// Whether `/`-separated `bytes` have an empty, `.` or `..` component (without splitting).
    public static func hasBadPathComponent(_ bytes: String.UTF8View) -> Bool {
        var length = 0
        var dots = 0
        for byte in bytes {
            if byte == UInt8(ascii: "/") {
                if length == 0 || length == dots && dots <= 2 { return true }
                length = 0
                dots = 0
            } else {
                length += 1
                if byte == UInt8(ascii: ".") { dots += 1 }
            }
        }
        return length == 0 || length == dots && dots <= 2
    }

    /// An agent id, `<name>/<slot>` (`AgentID`).
    static func agentID(_ value: String, _ field: String) throws(ProtocolError) {
        do {
            _ = try AgentID(parsing: value)
        } catch {
            throw .malformed("\(field): \(error)")
        }
    }

    /// Free text: at most `maximum` bytes (control characters are escaped when logged).
    static func text(_ value: String, _ field: String, maximum: Int) throws(ProtocolError) {
        try check(value.utf8.count <= maximum, "\(field) is \(value.utf8.count) bytes; at most \(maximum) are allowed")
    }

    static func labels(_ labels: [String: String]) throws(ProtocolError) {
        try check(labels.count <= WireLimits.labelCount, "hello.labels has \(labels.count) entries; at most \(WireLimits.labelCount)")
        for (key, value) in labels {
            if let problem = LabelSet.keyProblem(key) { throw .malformed("hello.labels: '\(key.logSafe(maximum: 80))': \(problem)") }
            if let problem = LabelSet.valueProblem(value) { throw .malformed("hello.labels[\(key)]: \(problem)") }
        }
    }
}
