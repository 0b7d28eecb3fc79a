import Foundation
import GRDB
import GantryCoordinator

/// `SQLiteStore.newestJobsQuery`, unchanged: `jobs.rowid` is an identity column here, so
/// a cursor names the same job on both back ends.
extension PostgresStore: JobListingStore {
    public func jobPage(states: [JobState]?, before: JobListing.Cursor?, limit: Int) throws -> [JobListing.Row] {
        guard limit > 0, let query = SQLiteStore.newestJobsQuery(states: states, limit: limit, before: before?.rowid) else { return [] }
        return try pool.read { db in try await db.rows(query.sql, query.arguments).map(SQLiteStore.jobListingRow) }
    }
}
