import GantryPipeline
import GantryProtocol

extension JobLifecycle {
    /// The lease of `job`'s next attempt, from its row and its pipeline's source: pure, so
    /// the scheduler can tell from the same message which agents may take it
    /// (`Gantry_V1_Lease.minimumProtocolVersion`). Whatever fills a version-4 field (17-21)
    /// must fill it here, or an older agent could be matched to it. Secrets, the job token
    /// and the API address are added by `CoordinatorCore.perform` as the frame leaves, so
    /// they never enter the lifecycle's output.
    static func lease(for job: StoredJob, pipeline: PipelineProgress) -> Gantry_V1_Lease {
        .with {
            $0.jobID = job.id
            $0.attempt = UInt32(clamping: job.attempt)
            $0.pipelineID = job.pipelineId
            $0.stepKey = job.key
            $0.commands = job.commands
            $0.env = job.env
            // Clamped, not converted: a row written before the parser's limits existed
            // must not trap the coordinator on every restart.
            $0.timeoutSeconds = UInt32(clamping: job.timeoutSeconds ?? 0)
            $0.cancelGraceSeconds = UInt32(clamping: job.cancelGraceSeconds)
            $0.repository = pipeline.repository
            $0.commit = pipeline.commit
            $0.branch = pipeline.branch
            $0.environment = job.environment ?? ""
            if let checkout = checkoutSpec(for: job, pipeline: pipeline) { $0.checkout = checkout }
            // Fields 18-21: `artifacts:`, `download:` and `cache:`.
            fillTransfers(job.transfers, into: &$0)
        }
    }

    /// Field 17: set only when the agent must check out, that is when the pipeline names a
    /// repository and a commit and the step did not say `checkout: false`.
    static func checkoutSpec(for job: StoredJob, pipeline: PipelineProgress) -> Gantry_V1_CheckoutSpec? {
        let options = job.checkout ?? .default
        guard options.enabled, !pipeline.repository.isEmpty, !pipeline.commit.isEmpty else { return nil }
        return .with {
            $0.enabled = true
            // Bounded by the parser (`CheckoutOptions.maximumDepth`); clamped for old rows.
            $0.depth = UInt32(clamping: max(options.depth, 0))
            $0.submodules = options.submodules
            $0.path = options.path
        }
    }

    /// The scheduler's view of a queued job: its selector, its place, and the protocol
    /// version its lease needs.
    func queued(_ job: StoredJob) -> Scheduler.QueuedJob {
        let minimumProtocol = pipelines[job.pipelineId].map { Self.lease(for: job, pipeline: $0).minimumProtocolVersion }
        return .init(
            id: job.id, selector: job.agents, priority: job.priority, sequence: job.sequence,
            minimumProtocol: minimumProtocol ?? ProtocolVersion.minimum)
    }
}
