import Foundation
@testable import GantryPostgresStore
import Logging
import Testing

@Suite("PostgreSQL pool", .timeLimit(.minutes(1)))
struct PostgresPoolTests {
    @Test func aQueryRunsAndReturns() throws {
        let server = try PostgresServer.shared.get()
        let pool = try PostgresPool(location: PostgresLocation(url: server.url(database: "postgres")), logger: Logger(label: "test"))
        defer { pool.shutdown() }
        let value = try pool.read { db in try await db.scalar(Int.self, "SELECT 41 + 1 AS answer") }
        #expect(value == 42)
    }
}
