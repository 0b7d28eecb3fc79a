import Foundation
import GRDB

/// A store that pages through jobs newest first (`GET /v1/jobs`).
public protocol JobListingStore: Sendable {
    /// At most `limit` jobs, optionally in `states`, newest first, starting after the job
    /// `before` names (nil: the newest).
    func jobPage(states: [JobState]?, before: JobListing.Cursor?, limit: Int) throws -> [JobListing.Row]
}

/// `GET /v1/jobs` pages: bounded, and continued by a cursor in a `Link` header (its body
/// is a JSON array, which existing clients decode as is).
public enum JobListing {
    public static let defaultLimit = 200
    public static let maximumLimit = 5_000

    /// Where a page ended: the last job's rowid. Opaque to callers. A cursor whose job
    /// retention has since removed continues nowhere (an empty page): list again. Cursors
    /// are for paging through a listing now, not for keeping: `jobs` has no integer key,
    /// so a `VACUUM` (which the coordinator never runs) may renumber its rows.
    public struct Cursor: Sendable, Equatable {
        public var rowid: Int64

        public init(rowid: Int64) { self.rowid = rowid }

        public var text: String { "j\(rowid)" }

        /// A cursor from `text`, or nil for text no page handed out.
        public init?(text: String) {
            guard text.hasPrefix("j"), text.utf8.count <= 20, let value = Int64(text.dropFirst()), value > 0 else { return nil }
            self.rowid = value
        }
    }

    public struct Row: Sendable {
        public var job: StoredJob
        public var cursor: Cursor
    }
}

extension SQLiteStore: JobListingStore {
    public func jobPage(states: [JobState]?, before: JobListing.Cursor?, limit: Int) throws -> [JobListing.Row] {
        guard limit > 0, let query = Self.newestJobsQuery(states: states, limit: limit, before: before?.rowid) else { return [] }
        return try database.read { db in
            try GRDB.Row.fetchAll(db, sql: query.sql, arguments: StatementArguments(query.arguments)).map(Self.jobListingRow)
        }
    }

    /// A row of `newestJobsQuery` as a listing's row.
    public static func jobListingRow(_ row: GRDB.Row) throws -> JobListing.Row {
        JobListing.Row(job: try StoredJob(row: row), cursor: JobListing.Cursor(rowid: row["list_rowid"]))
    }
}
