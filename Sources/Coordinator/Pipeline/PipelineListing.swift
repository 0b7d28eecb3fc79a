import Foundation
import GantryProtocol
import GRDB

/// What `GET /v1/pipelines` asks of the store: a page of pipelines newest first, and the
/// counts of their jobs by state. Both are reads; neither touches the single writer.
public protocol PipelineListingStore: Sendable {
    /// At most `limit` pipelines created before `before` (a position from an earlier
    /// page, nil for the newest), newest first, with `branch` and `repository` if given.
    func pipelinePage(before: PipelineListing.Position?, branch: String?, repository: String?, limit: Int) throws
        -> [PipelineListing.Row]
    /// Per pipeline: its jobs grouped by state and outcome.
    func jobGroups(pipelineIDs: [String]) throws -> [String: [PipelineListing.JobGroup]]
}

/// Lists pipelines for the API and the dashboard, filtered by state, which no column
/// holds (`PipelineState`): it reads pages of pipelines and keeps those in the state,
/// reading at most `maximumScanned` per call so a rare state cannot make one request read
/// the whole history. The cursor then says where the next call goes on.
public enum PipelineListing {
    public static let defaultLimit = 50
    public static let maximumLimit = 200
    /// Pipelines one call reads at most when filtering by state.
    public static let maximumScanned = 5_000

    /// Where a page ends, in insertion order: opaque to callers (`API.PipelineList`).
    public struct Position: Sendable, Equatable {
        public var sequence: Int64

        public init(sequence: Int64) { self.sequence = sequence }

        public var cursor: String { "p\(sequence)" }

        /// A cursor from `cursor`, or nil for text no page handed out.
        public init?(cursor: String) {
            guard cursor.hasPrefix("p"), cursor.utf8.count <= 20, let value = Int64(cursor.dropFirst()), value > 0 else {
                return nil
            }
            self.sequence = value
        }
    }

    public struct Row: Sendable {
        public var pipeline: StoredPipeline
        public var position: Position
    }

    public struct JobGroup: Sendable, Equatable {
        public var state: JobState
        public var outcome: JobOutcome?
        public var count: Int
        public var firstStartedAt: Date?
        public var lastFinishedAt: Date?
    }

    public struct Query: Sendable, Equatable {
        public var states: Set<PipelineState>?
        public var branch: String?
        public var repository: String?
        public var limit: Int = PipelineListing.defaultLimit
        public var after: Position?

        public init(
            states: Set<PipelineState>? = nil, branch: String? = nil, repository: String? = nil,
            limit: Int = PipelineListing.defaultLimit, after: Position? = nil
        ) {
            self.states = states
            self.branch = branch
            self.repository = repository
            self.limit = limit
            self.after = after
        }
    }

    public static func list(_ query: Query, store: any PipelineListingStore) throws -> API.PipelineList {
        let limit = min(max(query.limit, 1), maximumLimit)
        var found: [API.PipelineSummary] = []
        var position = query.after
        var scanned = 0
        while true {
            // One row past the limit tells whether a next page exists; with a state
            // filter, read more at once, since some rows will not match.
            let batch = query.states == nil ? limit - found.count + 1 : min(limit * 2, 400)
            let rows = try store.pipelinePage(
                before: position, branch: query.branch, repository: query.repository, limit: batch)
            let groups = try store.jobGroups(pipelineIDs: rows.map(\.pipeline.id))
            for row in rows {
                let summary = summary(row.pipeline, groups: groups[row.pipeline.id] ?? [])
                if query.states?.contains(where: { $0.rawValue == summary.state }) ?? true {
                    // Another match past a full page: the next page starts with it.
                    if found.count == limit { return API.PipelineList(pipelines: found, nextCursor: position?.cursor) }
                    found.append(summary)
                }
                position = row.position
                scanned += 1
                if query.states != nil, scanned >= maximumScanned {
                    return API.PipelineList(pipelines: found, nextCursor: position?.cursor)
                }
            }
            if rows.count < batch { return API.PipelineList(pipelines: found, nextCursor: nil) }
        }
    }

    static func summary(_ pipeline: StoredPipeline, groups: [JobGroup]) -> API.PipelineSummary {
        let state = PipelineState.derive(groups.lazy.map { (state: $0.state, outcome: $0.outcome) })
        var counts: [String: Int] = [:]
        for group in groups { counts[group.state.rawValue, default: 0] += group.count }
        let finished = state == .running ? nil : groups.compactMap(\.lastFinishedAt).max()
        return API.PipelineSummary(
            id: pipeline.id, state: state.rawValue, createdAt: pipeline.createdAt, repository: pipeline.repository,
            commit: pipeline.commit, branch: pipeline.branch, tag: pipeline.tag.isEmpty ? nil : pipeline.tag,
            message: pipeline.message.isEmpty ? nil : pipeline.message, source: pipeline.source,
            rebuildOf: pipeline.rebuildOf, submittedBy: pipeline.submittedBy, jobCounts: counts,
            startedAt: groups.compactMap(\.firstStartedAt).min(), finishedAt: finished)
    }
}

extension SQLiteStore: PipelineListingStore {
    /// Migration "v19: pipeline listing": pipelines by branch and by repository. Each
    /// index ends in the rowid, so a filtered page is a backwards range read that stops
    /// at its limit; the unfiltered page reads the table's own rowid order.
    static func createPipelineListingIndexes(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE INDEX pipelines_by_branch ON pipelines(branch);
                CREATE INDEX pipelines_by_repository ON pipelines(repository);
                """)
    }

    public func pipelinePage(
        before: PipelineListing.Position?, branch: String?, repository: String?, limit: Int
    ) throws -> [PipelineListing.Row] {
        guard limit > 0 else { return [] }
        let query = Self.pipelinePageQuery(before: before, branch: branch, repository: repository, limit: limit)
        return try database.read { db in
            try Row.fetchAll(db, sql: query.sql, arguments: StatementArguments(query.arguments)).map(Self.pipelineListingRow)
        }
    }

    public func jobGroups(pipelineIDs: [String]) throws -> [String: [PipelineListing.JobGroup]] {
        guard !pipelineIDs.isEmpty else { return [:] }
        return try database.read { db in
            var groups: [String: [PipelineListing.JobGroup]] = [:]
            let rows = try Row.fetchCursor(db, sql: Self.jobGroupsSQL(count: pipelineIDs.count), arguments: StatementArguments(pipelineIDs))
            while let row = try rows.next() { Self.addJobGroup(row, to: &groups) }
            return groups
        }
    }

    /// `pipelinePage`'s statement (for a positive `limit`): its rows become `pipelineListingRow`s.
    public static func pipelinePageQuery(
        before: PipelineListing.Position?, branch: String?, repository: String?, limit: Int
    ) -> (sql: String, arguments: [DatabaseValue]) {
        var conditions: [String] = []
        var arguments: [DatabaseValue] = []
        if let before {
            conditions.append("rowid < ?")
            arguments.append(before.sequence.databaseValue)
        }
        if let branch {
            conditions.append("branch = ?")
            arguments.append(branch.databaseValue)
        }
        if let repository {
            conditions.append("repository = ?")
            arguments.append(repository.databaseValue)
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(limit.databaseValue)
        return ("SELECT rowid AS sequence, * FROM pipelines \(filter) ORDER BY rowid DESC LIMIT ?", arguments)
    }

    public static func pipelineListingRow(_ row: Row) throws -> PipelineListing.Row {
        PipelineListing.Row(pipeline: try StoredPipeline(row: row), position: PipelineListing.Position(sequence: row["sequence"]))
    }

    /// The job groups of `count` pipelines, whose ids are the parameters.
    public static func jobGroupsSQL(count: Int) -> String {
        let marks = Array(repeating: "?", count: count).joined(separator: ",")
        return """
            SELECT pipeline_id, state, outcome, COUNT(*) AS count, MIN(started_at) AS first_started,
                MAX(finished_at) AS last_finished
            FROM jobs WHERE pipeline_id IN (\(marks)) GROUP BY pipeline_id, state, outcome
            """
    }

    /// Adds a row of `jobGroupsSQL` to its pipeline's groups; a state this release does not
    /// know is left out.
    public static func addJobGroup(_ row: Row, to groups: inout [String: [PipelineListing.JobGroup]]) {
        guard let state = JobState(rawValue: row["state"]) else { return }
        let outcome: String? = row["outcome"]
        groups[row["pipeline_id"], default: []].append(
            PipelineListing.JobGroup(
                state: state, outcome: outcome.flatMap(JobOutcome.init(rawValue:)), count: row["count"],
                firstStartedAt: row["first_started"], lastFinishedAt: row["last_finished"]))
    }
}
