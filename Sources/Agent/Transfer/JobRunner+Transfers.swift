import GantryProtocol

/// The two places `JobRunner.run` calls transfers: before the commands (the cache, then
/// `download:`) and after them (`artifacts:`, then the cache). Their notes reach the log
/// through the job's masker, like the runner's other notes.
extension JobRunner {
    enum BeforeCommands {
        /// Go on with the commands; the cache to save after success, if any.
        case ready(CacheTransfer.Restored?)
        /// A download failed (`download_failed`) or the step was stopped meanwhile.
        case failed(Result)
    }

    func transfersBeforeCommands(
        _ transfers: JobTransfers, control: ProcessGroupControl, masker: inout SecretMasker, spool: LogSpool,
        onOutput: @escaping @Sendable () async -> Void
    ) async -> BeforeCommands {
        guard !transfers.plan.isEmpty else { return .ready(nil) }
        do {
            let restored = try await transfers.beforeCommands()
            await writeNotes(transfers.log.take(), masker: &masker, spool: spool, onOutput: onOutput)
            return .ready(restored)
        } catch {
            await writeNotes(transfers.log.take(), masker: &masker, spool: spool, onOutput: onOutput)
            let failure = Self.transferFailure(error, control: control, code: JobFailureCode.downloadFailed, what: "download")
            if !failure.failure.isEmpty {
                await writeNotes(["gantry: \(failure.message)\n"], masker: &masker, spool: spool, onOutput: onOutput)
            }
            return .failed(failure)
        }
    }

    /// `result` as the commands left it, or failed by the upload (`artifact_upload_failed`)
    /// when they succeeded and it did not. A failed run stays failed for its own reason.
    func transfersAfterCommands(
        _ transfers: JobTransfers, result: Result, cache: CacheTransfer.Restored?, control: ProcessGroupControl,
        masker: inout SecretMasker, spool: LogSpool, onOutput: @escaping @Sendable () async -> Void
    ) async -> Result {
        // Nothing is uploaded or saved after a cancel or a timeout.
        guard !transfers.plan.isEmpty, control.stopReason == nil else { return result }
        do {
            try await transfers.afterCommands(succeeded: result.outcome == .succeeded, cache: cache)
            await writeNotes(transfers.log.take(), masker: &masker, spool: spool, onOutput: onOutput)
            return result
        } catch {
            await writeNotes(transfers.log.take(), masker: &masker, spool: spool, onOutput: onOutput)
            let failure = Self.transferFailure(error, control: control, code: JobFailureCode.artifactUploadFailed, what: "artifact upload")
            if !failure.failure.isEmpty {
                await writeNotes(["gantry: \(failure.message)\n"], masker: &masker, spool: spool, onOutput: onOutput)
            }
            return result.outcome == .succeeded || failure.failure.isEmpty ? failure : result
        }
    }

    /// The agent's notes in the step's log, masked like the step's output.
    private func writeNotes(
        _ lines: [String], masker: inout SecretMasker, spool: LogSpool, onOutput: @escaping @Sendable () async -> Void
    ) async {
        guard !lines.isEmpty else { return }
        for line in lines {
            let bytes = Array(line.utf8)
            try? bytes.withUnsafeBytes { raw in try masker.feed(raw) { try spool.append($0) } }
        }
        await onOutput()
    }

    /// A transfer's failure as the job's result: stopped by a cancel or the timeout, or
    /// failed with `code` (`JobFinished.failure`).
    static func transferFailure(_ error: TransferError, control: ProcessGroupControl, code: String, what: String) -> Result {
        if let reason = control.stopReason {
            return stopped(reason, after: Result(outcome: .failed, exitStatus: -1, signal: 0, message: ""))
        }
        return Result(outcome: .failed, exitStatus: -1, signal: 0, message: "\(what) failed: \(error)", failure: code)
    }
}
