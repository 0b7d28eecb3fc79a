import GantryProtocol
import Subprocess
import SystemPackage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs one leased job: a fresh work dir, a clean environment (plus the lease's secrets),
/// each command via `/bin/sh -c` in its own session, stdout and stderr merged in order
/// into the spool, with every secret masked before a byte is written (`SecretMasker`).
///
/// swift-subprocess starts children with a normal signal mask (Foundation.Process blocks
/// SIGTERM in children, swift-corelibs-foundation#4772, which would make cancel useless).
public struct JobRunner: Sendable {
    public struct Spec: Sendable {
        public var jobID: String
        public var attempt: UInt32
        public var pipelineID: String
        public var stepKey: String
        public var commands: [String]
        public var env: [String: String]
        public var timeout: Duration?
        public var repository: String
        public var commit: String
        public var branch: String
        /// NAME -> value: set in the step's environment and masked in its log. Never
        /// printed: the spec's descriptions list the names only.
        public var secrets: [String: String]
        /// The environment the step deploys to (`GANTRY_ENVIRONMENT`), empty for none.
        public var environmentName: String
        /// The attempt's job token (`GANTRY_JOB_TOKEN`), empty for none: masked in the log
        /// like a secret, never printed.
        public var jobToken: String
        /// The API as steps reach it (`GANTRY_API_URL`), empty for none.
        public var apiURL: String
        /// The API serves the coordinator's own certificate: steps get the agent's pinned
        /// CA as `GANTRY_CA_FILE`.
        public var apiUsesCoordinatorCA: Bool
        /// How to check the source out first (lease field 17); nil: not at all.
        public var checkout: Gantry_V1_CheckoutSpec?
        /// `artifacts:`, `download:` and `cache:` (lease fields 18-21), carried out by
        /// `JobTransfers` around the commands. Checked by `CoordinatorValueChecks` first.
        public var transfers: TransferPlan

        public init(lease: Gantry_V1_Lease) {
            jobID = lease.jobID
            attempt = lease.attempt
            pipelineID = lease.pipelineID
            stepKey = lease.stepKey
            commands = lease.commands
            env = lease.env
            // In range by `CoordinatorValueChecks.problem(with:)`; UInt32 seconds cannot
            // overflow a Duration either way.
            timeout = lease.timeoutSeconds > 0 ? .seconds(lease.timeoutSeconds) : nil
            repository = lease.repository
            commit = lease.commit
            branch = lease.branch
            secrets = lease.secrets
            environmentName = lease.environment
            jobToken = lease.jobToken
            apiURL = lease.apiURL
            apiUsesCoordinatorCA = lease.apiUsesCoordinatorCa
            checkout = lease.hasCheckout ? lease.checkout : nil
            transfers = (try? TransferPlan(lease: lease)) ?? TransferPlan()
        }
    }

    public struct Result: Sendable, Equatable {
        public var outcome: Gantry_V1_Outcome
        public var exitStatus: Int32
        public var signal: Int32
        public var message: String
        /// The agent's own reason for failing the job (`JobFinished.failure`, a
        /// `JobFailureCode`), empty when the commands decided.
        public var failure: String = ""
    }

    /// Variables passed through from the agent's own environment; everything else is
    /// dropped so a job cannot read the agent's secrets or depend on its setup.
    public static let environmentAllowList = [
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHELL", "TERM",
    ]

    public let agentID: String
    public let workRoot: String
    public let keepWorkDirs: Bool
    /// The unprivileged user steps run as (nil: the agent's own user, see `StepUser`).
    public let stepUser: StepUser?
    /// The CA certificate the agent pinned at enrollment (`STATE/ca.pem`), copied for
    /// steps as `GANTRY_CA_FILE` when the API serves the coordinator's certificate.
    public let caCertificate: String?
    /// The host's git mirrors, for leases that ask for a checkout; nil: such a lease fails
    /// with `checkout_failed`.
    public let gitMirrors: GitMirrors?

    public init(
        agentID: String, workRoot: String, keepWorkDirs: Bool, stepUser: StepUser? = nil, caCertificate: String? = nil,
        gitMirrors: GitMirrors? = nil
    ) {
        self.caCertificate = caCertificate
        self.gitMirrors = gitMirrors
        self.agentID = agentID
        self.workRoot = workRoot
        self.keepWorkDirs = keepWorkDirs
        self.stepUser = stepUser
    }

    /// The mode of the work root: 0700, or 0711 when steps run as another user (they must
    /// reach their own attempt dir by path; they still cannot list the root).
    public var workRootMode: mode_t {
        stepUser == nil ? AgentDirectories.privateMode : AgentDirectories.sharedWorkRootMode
    }

    public func workDirectory(for spec: Spec) -> String {
        "\(workRoot)/\(spec.jobID)-\(spec.attempt)"
    }

    /// Where a step finds the copy of the CA (`GANTRY_CA_FILE`): next to its work dir in
    /// the work root, not inside it, so a checkout or `git clean` never sees or removes
    /// it, and a step user reaches it by path through the 0711 root. Removed with the
    /// work dir.
    public func caCopyPath(for spec: Spec) -> String {
        "\(workDirectory(for: spec)).ca.pem"
    }

    public func environment(for spec: Spec, workDirectory: String, caFile: String? = nil) -> [String: String] {
        var environment: [String: String] = [:]
        let inherited = ProcessInfo.processInfo.environment
        for name in Self.environmentAllowList { environment[name] = inherited[name] }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        if let stepUser {
            environment["USER"] = stepUser.name
            environment["LOGNAME"] = stepUser.name
            environment["HOME"] = stepUser.home ?? workDirectory
        }
        environment.merge(spec.env) { $1 }
        // Secrets win over the pipeline's env: a variable a step was granted as a secret
        // cannot be replaced by a plain value from the YAML (or a pull request editing it).
        // The GANTRY_* variables below win over both: the agent finds a job's processes by
        // GANTRY_JOB_ID and GANTRY_ATTEMPT (`JobProcesses`).
        environment.merge(spec.secrets) { $1 }
        environment["CI"] = "true"
        environment["GANTRY"] = "true"
        environment["GANTRY_JOB_ID"] = spec.jobID
        environment["GANTRY_ATTEMPT"] = String(spec.attempt)
        environment["GANTRY_PIPELINE_ID"] = spec.pipelineID
        environment["GANTRY_STEP"] = spec.stepKey
        environment["GANTRY_AGENT_ID"] = agentID
        environment["GANTRY_WORK_DIR"] = workDirectory
        environment["GANTRY_REPOSITORY"] = spec.repository
        environment["GANTRY_COMMIT"] = spec.commit
        environment["GANTRY_BRANCH"] = spec.branch
        // Set exactly when the lease names an environment, so a step can trust it: a
        // pipeline's own env cannot pretend to deploy somewhere.
        environment["GANTRY_ENVIRONMENT"] = spec.environmentName.isEmpty ? nil : spec.environmentName
        // For `gantry meta-data` inside the step; set only when the lease carries them.
        environment["GANTRY_JOB_TOKEN"] = spec.jobToken.isEmpty ? nil : spec.jobToken
        environment["GANTRY_API_URL"] = spec.apiURL.isEmpty ? nil : spec.apiURL
        environment["GANTRY_CA_FILE"] = caFile
        return environment
    }

    /// Runs the commands in order, stopping at the first failure or stop request.
    /// `onOutput` is awaited after each append to the spool; it is where backpressure
    /// applies (while it waits, the step's output pipe is not read, so the step blocks).
    public func run(
        _ spec: Spec, spool: LogSpool, control: ProcessGroupControl, onOutput: @escaping @Sendable () async -> Void
    ) async -> Result {
        let directory = workDirectory(for: spec)
        var caFile: String?
        var mounted: MountedTree?
        defer {
            control.reapStragglers()
            // The overlay first: removing the work dir through it would only fill its upper layer.
            mounted?.detach()
            if !keepWorkDirs { try? FileManager.default.removeItem(atPath: directory) }
            if let caFile { unlink(caFile) }
        }
        do {
            if !FileManager.default.fileExists(atPath: workRoot) { try AgentDirectories.ensure(workRoot, mode: workRootMode) }
            // The agent's until the checkout is done (`WorkDirectoryHandover`).
            try AgentDirectories.createWorkDirectory(directory, owner: nil)
        } catch {
            return Result(outcome: .failed, exitStatus: -1, signal: 0, message: "cannot create work dir \(directory): \(error)")
        }
        caFile = copyCA(for: spec)
        let environment = self.environment(for: spec, workDirectory: directory, caFile: caFile)
        let timeoutTask = spec.timeout.map { timeout in
            Task {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { control.stop(.timedOut) }
            }
        }
        defer { timeoutTask?.cancel() }

        // One masker for the whole attempt: stdout and stderr reach the runner as one
        // merged stream, and a value whose halves come from two commands is still one value
        // in the log. Everything bound for the spool goes through it, the agent's own
        // notes included; it is flushed once, when the last command is over.
        var masker = SecretMasker(secrets: Array(spec.secrets.values) + (spec.jobToken.isEmpty ? [] : [spec.jobToken]))
        /// A line of the agent's own in the step's log (`gantry: …`), masked like the step's output.
        let note = { (text: String) async in
            let bytes = Array(text.utf8)
            try? bytes.withUnsafeBytes { raw in try masker.feed(raw) { try spool.append($0) } }
            await onOutput()
        }
        // What comes before the commands, each able to end the job instead (with its own
        // `failure` code): the source first (then the work dir becomes the step user's),
        // then the cache and the `download:`s. Transfers (cache, `download:`, `artifacts:`)
        // go around the commands, on this task and their own HTTP connections
        // (`JobTransfers` says where this runs), inside the step's timeout and stopped by a
        // cancel like the commands.
        var prepared: Result?
        (prepared, mounted) = await checkOut(spec, directory: directory, control: control, note: note)
        if prepared == nil, let stepUser {
            do {
                if let mounted {
                    try WorkDirectoryHandover.handOver(directory, to: stepUser, mountedAt: mounted.target)
                } else {
                    try await WorkDirectoryHandover.handOver(directory, to: stepUser)
                }
            } catch {
                await note("gantry: \(error)\n")
                prepared = Result(outcome: .failed, exitStatus: -1, signal: 0, message: "\(error)")
            }
        }
        var result: Result
        if let prepared {
            result = prepared
        } else {
            let transfers = JobTransfers(
                spec: spec, workDirectory: directory, caFile: caCertificate, stepUser: stepUser, control: control)
            switch await transfersBeforeCommands(transfers, control: control, masker: &masker, spool: spool, onOutput: onOutput) {
            case .failed(let failure):
                result = failure
            case .ready(let restoredCache):
                result = await runCommands(
                    spec, environment: environment, directory: directory, spool: spool, control: control, masker: &masker,
                    onOutput: onOutput)
                result = await transfersAfterCommands(
                    transfers, result: result, cache: restoredCache, control: control, masker: &masker, spool: spool,
                    onOutput: onOutput)
            }
        }
        do {
            try masker.finish { try spool.append($0) }
        } catch {
            result = Self.logWriteFailure(error)
        }
        await onOutput()
        // The status message leaves the agent too (JobFinished.message).
        result.message = masker.masking(result.message)
        return result
    }

    private func runCommands(
        _ spec: Spec, environment: [String: String], directory: String, spool: LogSpool, control: ProcessGroupControl,
        masker: inout SecretMasker, onOutput: @escaping @Sendable () async -> Void
    ) async -> Result {
        /// A line of the agent's own in the step's log, masked like the step's output.
        func note(_ text: String, masker: inout SecretMasker) async {
            let bytes = Array(text.utf8)
            try? bytes.withUnsafeBytes { raw in try masker.feed(raw) { try spool.append($0) } }
            await onOutput()
        }
        var last = Result(outcome: .succeeded, exitStatus: 0, signal: 0, message: "")
        for command in spec.commands {
            if let reason = control.stopReason { return Self.stopped(reason, after: last) }
            do {
                last = try await runCommand(
                    command, environment: environment, directory: directory, spool: spool, control: control,
                    masker: &masker, onOutput: onOutput)
            } catch CommandFailure.logWrite(let error) {
                return Self.logWriteFailure(error)
            } catch CommandFailure.outputRead(let error) {
                // A timeout or cancel that killed the step can end the output read with an
                // error: the stop, not the read, is what happened to the step.
                if let reason = control.stopReason { return Self.stopped(reason, after: last) }
                await note("gantry: could not read the step's output: \(error)\n", masker: &masker)
                return Result(
                    outcome: .failed, exitStatus: -1, signal: 0, message: "the agent could not read the step's output: \(error)")
            } catch {
                if let reason = control.stopReason { return Self.stopped(reason, after: last) }
                await note("gantry: could not start `/bin/sh -c`: \(error)\n", masker: &masker)
                return Result(outcome: .failed, exitStatus: -1, signal: 0, message: "could not start the command: \(error)")
            }
            if let reason = control.stopReason { return Self.stopped(reason, after: last) }
            if last.outcome != .succeeded { return last }
        }
        return last
    }

    /// Nothing more can be written to the log: the reason goes in the final status.
    static func logWriteFailure(_ error: any Error) -> Result {
        Result(
            outcome: .failed, exitStatus: -1, signal: 0,
            message: "the agent could not write the step's output to its log spool, so it stopped the step: \(error)")
    }

    /// Why a command that did start could not be run to its end. Anything else
    /// `runCommand` throws means it could not be started.
    enum CommandFailure: Error {
        /// Appending its output to the spool failed (disk full, I/O error).
        case logWrite(any Error)
        /// Reading its output pipe failed.
        case outputRead(any Error)
    }

    private func runCommand(
        _ command: String, environment: [String: String], directory: String, spool: LogSpool,
        control: ProcessGroupControl, masker: inout SecretMasker, onOutput: @escaping @Sendable () async -> Void
    ) async throws -> Result {
        var options = PlatformOptions()
        options.createSession = true
        var custom: [Environment.Key: String] = [:]
        for (key, value) in environment {
            if let name = Environment.Key(rawValue: key) { custom[name] = value }
        }
        // A step running as the agent's user moves itself into the attempt's cgroup; a step
        // user cannot, so the agent moves it and then lets it run (`waitingShellArguments`).
        let cgroup = control.cgroup
        let agentMovesStep = cgroup != nil && stepUser != nil
        var arguments: [String]
        if let cgroup {
            arguments = agentMovesStep ? JobCgroup.waitingShellArguments(for: command) : cgroup.shellArguments(for: command)
        } else {
            arguments = ["-c", command]
        }
        // A step user's shell is started through setpriv(1), which drops to the user in the
        // new process before exec. swift-subprocess's own userID/groupID are not used: it
        // forks with a raw clone3, and glibc's setgid()/setuid() in such a child wait for
        // the parent's other threads and can hang forever (seen: a child stuck in setgid).
        var executable = "/bin/sh"
        if let stepUser {
            executable = stepUser.setpriv
            arguments = stepUser.setprivArguments + ["/bin/sh"] + arguments
        }
        let spawn = OrphanReaper.SpawnGuard()
        let result = try await Subprocess.run(
            .path(FilePath(executable)), arguments: Arguments(arguments), environment: .custom(custom),
            workingDirectory: FilePath(directory), platformOptions: options, input: .inputWriter, output: .sequence,
            error: .combinedWithOutput
        ) { execution in
            let pid = execution.processIdentifier.value
            control.started(processGroup: pid)
            spawn.end()
            if agentMovesStep, let cgroup {
                if cgroup.add(processID: pid) { _ = try? await execution.standardInputWriter.write("\n") }
            }
            // The step's standard input is empty (like /dev/null).
            try? await execution.standardInputWriter.finish()
            do {
                for try await buffer in execution.standardOutput {
                    do {
                        // Masked before the spool: nothing that reaches the disk, the
                        // streamer or the coordinator holds a secret.
                        try buffer.withUnsafeBytes { bytes in try masker.feed(bytes) { try spool.append($0) } }
                    } catch {
                        throw CommandFailure.logWrite(error)
                    }
                    await onOutput()
                }
            } catch {
                // swift-subprocess kills and reaps the command when this closure throws: forget
                // its group now (its pid may be reused); `reapStragglers` finds the rest.
                control.leaderExited(processGroup: pid)
                throw error is CommandFailure ? error : CommandFailure.outputRead(error)
            }
        }
        control.leaderExited(processGroup: result.processIdentifier.value)
        switch result.terminationStatus {
        case .exited(let code):
            return Result(
                outcome: code == 0 ? .succeeded : .failed, exitStatus: code, signal: 0,
                message: code == 0 ? "" : "command exited with status \(code)")
        case .signaled(let signal):
            return Result(outcome: .failed, exitStatus: -1, signal: signal, message: "command killed by signal \(signal)")
        }
    }

    static func stopped(_ reason: ProcessGroupControl.StopReason, after last: Result) -> Result {
        switch reason {
        case .timedOut:
            return Result(outcome: .timedOut, exitStatus: last.exitStatus, signal: last.signal, message: "step timed out")
        case .cancelled(let why):
            return Result(outcome: .cancelled, exitStatus: last.exitStatus, signal: last.signal, message: why)
        case .failed(let why):
            return Result(outcome: .failed, exitStatus: last.exitStatus, signal: last.signal, message: why)
        }
    }
}

/// A spec printed by mistake (a log line, a test failure, `dump`) names its secrets and
/// never shows their values.
extension JobRunner.Spec: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "Spec(job: \(jobID), attempt: \(attempt), step: \(stepKey), commands: \(commands.count), env: \(env.count), "
            + "secrets: \(secrets.keys.sorted()), environment: \(environmentName), job token: \(jobToken.isEmpty ? "no" : "yes"))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "jobID": jobID, "attempt": attempt, "pipelineID": pipelineID, "stepKey": stepKey, "commands": commands,
                "env": env, "timeout": timeout as Any, "repository": repository, "commit": commit, "branch": branch,
                "secretNames": secrets.keys.sorted(), "environmentName": environmentName,
                "hasJobToken": !jobToken.isEmpty, "apiURL": apiURL, "checkout": checkout as Any,
            ])
    }
}
