import Foundation

/// A finished, unkept pipeline that still holds logs or artifacts: what the collector
/// weighs. The store lists the oldest first (`SQLiteStore.retentionCandidates`).
public struct RetentionCandidate: Sendable, Equatable {
    public var pipelineID: String
    /// Its last job's finish (its creation if none finished).
    public var finishedAt: Date
    /// Bytes of its artifact rows.
    public var artifactBytes: Int64
    public var logsPending: Bool
    public var artifactsPending: Bool

    public init(pipelineID: String, finishedAt: Date, artifactBytes: Int64, logsPending: Bool, artifactsPending: Bool) {
        self.pipelineID = pipelineID
        self.finishedAt = finishedAt
        self.artifactBytes = artifactBytes
        self.logsPending = logsPending
        self.artifactsPending = artifactsPending
    }
}

/// What one pass deletes: pure, so what goes and what is protected is tested without a
/// store or a disk.
public struct RetentionPlan: Sendable, Equatable {
    public var removeLogs: [String] = []
    public var removeArtifacts: [String] = []

    public var isEmpty: Bool { removeLogs.isEmpty && removeArtifacts.isEmpty }

    /// Promotion chains are followed this far (`artifacts_from` of `artifacts_from` …).
    static let maximumPromotionDepth = 32

    /// The pipelines nothing may be deleted of: the running and kept ones (`roots`) and
    /// every pipeline they promote, directly or through a chain of promotions
    /// (`promotes(id)` is a pipeline's `artifacts_from`).
    public static func protected(roots: Set<String>, promotes: (String) throws -> String?) rethrows -> Set<String> {
        var protected = roots
        for root in roots {
            var current = root
            for _ in 0..<maximumPromotionDepth {
                guard let source = try promotes(current), protected.insert(source).inserted else { break }
                current = source
            }
        }
        return protected
    }

    /// Decides a pass: logs and artifacts past their age, then, while the artifact bytes
    /// exceed the budget, the oldest remaining pipelines' artifacts. Never a protected one.
    public static func decide(
        candidates: [RetentionCandidate], protected: Set<String>, totalArtifactBytes: Int64, settings: RetentionSettings, now: Date
    ) -> RetentionPlan {
        var plan = RetentionPlan()
        let eligible = candidates.filter { !protected.contains($0.pipelineID) }
        if settings.logAge > 0 {
            let cutoff = now.addingTimeInterval(-settings.logAge)
            plan.removeLogs = eligible.filter { $0.logsPending && $0.finishedAt < cutoff }.map(\.pipelineID)
        }
        var going: Set<String> = []
        var remaining = totalArtifactBytes
        if settings.artifactAge > 0 {
            let cutoff = now.addingTimeInterval(-settings.artifactAge)
            for candidate in eligible where candidate.artifactsPending && candidate.finishedAt < cutoff {
                going.insert(candidate.pipelineID)
                remaining -= candidate.artifactBytes
            }
        }
        if settings.artifactBytes > 0 {
            let budget = Int64(clamping: settings.artifactBytes)
            let oldestFirst = eligible.filter { $0.artifactsPending && $0.artifactBytes > 0 && !going.contains($0.pipelineID) }
                .sorted { ($0.finishedAt, $0.pipelineID) < ($1.finishedAt, $1.pipelineID) }
            for candidate in oldestFirst {
                guard remaining > budget else { break }
                going.insert(candidate.pipelineID)
                remaining -= candidate.artifactBytes
            }
        }
        plan.removeArtifacts = eligible.map(\.pipelineID).filter(going.contains)
        return plan
    }
}
