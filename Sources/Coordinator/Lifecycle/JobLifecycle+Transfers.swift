import GantryPipeline
import GantryProtocol

extension JobLifecycle {
    /// Lease fields 18-21 from the job row's `transfers` column: what the agent uploads,
    /// downloads and caches around the commands (protocol version 4). Unset when the step
    /// declares none, so a lease of such a job is the one an older coordinator sent.
    static func fillTransfers(_ transfers: StepTransfers, into lease: inout Gantry_V1_Lease) {
        guard !transfers.isEmpty else { return }
        lease.artifactPaths = transfers.artifacts
        lease.artifactsAlways = transfers.artifactsAlways
        lease.downloads = transfers.downloads.map { rule in
            .with {
                $0.step = rule.step
                $0.path = rule.path
            }
        }
        if let cache = transfers.cache {
            lease.cache = .with {
                $0.key = cache.key
                $0.paths = cache.paths
                $0.restoreKeys = cache.restoreKeys
            }
        }
    }
}
