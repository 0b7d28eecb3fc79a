import Foundation

/// How long logs, artifacts and caches are kept, and how many artifact bytes in total
/// (`serve` options in parentheses; docs/operations.md, "Retention"). Zero keeps forever.
///
/// Ages count from a pipeline's end (its last job's finish), caches' from their last use:
/// a cache restored every day is never old.
public struct RetentionSettings: Sendable, Equatable {
    /// Log chunks of finished pipelines older than this are deleted
    /// (`--retain-logs-days`): 90 days covers a quarter's post-mortems.
    public var logAge: TimeInterval = 90 * 86_400
    /// Artifacts of finished pipelines older than this are deleted
    /// (`--retain-artifacts-days`); kept pipelines and what they promote stay.
    public var artifactAge: TimeInterval = 30 * 86_400
    /// Bytes of artifact rows the store may hold before the oldest finished pipelines'
    /// artifacts go (`--retain-artifacts-bytes`): 0, no budget, by default.
    public var artifactBytes: UInt64 = 0
    /// Caches not restored or saved for this long are deleted (`--retain-caches-days`).
    public var cacheAge: TimeInterval = 14 * 86_400
    /// How often the collector runs (and once at start).
    public var interval: Duration = .seconds(600)
    /// Pipelines (or caches) one pass considers; a run makes passes until one finds
    /// nothing due, at most `maximumPasses`, so a backlog drains over a few runs without
    /// one run holding the store for long.
    public var batch = 200
    public var maximumPasses = 50

    public init() {}

    var collectsLogs: Bool { logAge > 0 }
    var collectsArtifacts: Bool { artifactAge > 0 || artifactBytes > 0 }
    var collectsCaches: Bool { cacheAge > 0 }

    /// Days as a `serve` option gives them: 0 (forever) to 100 years.
    public static func age(days: Double, option: String) throws -> TimeInterval {
        guard days.isFinite, days >= 0, days <= 36_500 else { throw RetentionSettingError(message: "--\(option) must be 0 (keep forever) to 36500 days") }
        return days * 86_400
    }
}

public struct RetentionSettingError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
