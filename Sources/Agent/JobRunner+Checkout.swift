import GantryProtocol

extension JobRunner {
    /// The lease's checkout (field 17), before the first command: `prepared` nil when
    /// there is none or it worked, else the result the job ends with: `failure = checkout_failed` and a
    /// clear message, or timed out / cancelled when the step's timeout or a cancel stopped
    /// it. Its `gantry: checkout …` lines go to the step's log through `note` (masked).
    ///
    /// This is the checkout's edge: every line it writes and every message it returns
    /// passes through `URLUserinfo.redacted` here, so no credential of a URL (the
    /// repository's, or one a `.gitmodules` names) reaches the log or the job's reason.
    func checkOut(
        _ spec: Spec, directory: String, control: ProcessGroupControl, note unredacted: (String) async -> Void
    ) async -> (prepared: Result?, mounted: MountedTree?) {
        let allowFile = gitMirrors?.allowFileURLs ?? false
        guard
            let request = CheckoutRequest.from(
                repository: spec.repository, commit: spec.commit, checkout: spec.checkout, allowFileURLs: allowFile)
        else { return (nil, nil) }
        var known: [String] = []
        if case .success(let valid) = request { known.append(valid.repository.userinfo) }
        func redact(_ text: String) -> String { URLUserinfo.redacted(in: text, known: known) }
        func note(_ text: String) async { await unredacted(redact(text)) }
        func failed(_ failure: CheckoutFailure) async -> Result {
            for line in failure.output { await note("gantry: git: \(line)\n") }
            let message = redact(failure.message)
            await note("gantry: checkout failed: \(message)\n")
            return Result(
                outcome: .failed, exitStatus: -1, signal: 0, message: "checkout failed: \(message)",
                failure: JobFailureCode.checkoutFailed)
        }
        let checkout: CheckoutRequest
        switch request {
        case .failure(let failure): return (await failed(failure), nil)
        case .success(let valid): checkout = valid
        }
        guard let gitMirrors else {
            return (await failed(CheckoutFailure("this agent has no git mirror directory (gantry-agent run --git-mirrors DIR)")), nil)
        }
        guard let git = GitCommand.find() else {
            return (await failed(CheckoutFailure("git is not installed on this agent (not found on its PATH)")), nil)
        }
        await note(
            "gantry: checkout \(checkout.repository.redacted) at \(checkout.commit)"
                + "\(checkout.depth > 0 ? ", depth \(checkout.depth)" : "")\(checkout.submodules ? ", with submodules" : "")\n")
        // Stopped with this reason when its git work outlasts `checkoutTimeout`.
        let limitReason = SourceCheckout.limitReason(gitMirrors.checkoutTimeout)
        var source = SourceCheckout(
            mirrors: gitMirrors, git: git, jobID: spec.jobID, attempt: spec.attempt, control: control)
        if let stepUser { source.treeOwner = (stepUser.uid, stepUser.gid) }
        source.mayMountTree = !keepWorkDirs
        let notStarted = Result(outcome: .failed, exitStatus: -1, signal: 0, message: "")
        do {
            let outcome = try await source.perform(checkout, workDirectory: directory, note: note)
            if let reason = control.stopReason { return (Self.stopped(reason, after: notStarted), outcome.mounted) }
            return (nil, outcome.mounted)
        } catch {
            switch control.stopReason {
            case .failed(let why) where why == limitReason:
                return (await failed(CheckoutFailure(limitReason, output: error.output)), nil)
            case .some(let reason): return (Self.stopped(reason, after: notStarted), nil)
            case .none: return (await failed(error), nil)
            }
        }
    }
}
