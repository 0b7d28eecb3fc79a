import Foundation
import PostgresNIO

extension PostgresPool {
    /// Thrown by a `write` closure to undo the transaction and return `value` instead.
    struct Rollback<Value: Sendable>: Error {
        var value: Value
    }

    /// `write`, where `body` may give up by throwing `Rollback(value)`: nothing it did is
    /// kept, and the call returns `value` rather than failing. How a transaction that finds
    /// another coordinator got there first leaves no half of its work behind.
    func writeOrRollBack<Result: Sendable>(_ body: @escaping @Sendable (PostgresSession) async throws -> Result) throws -> Result {
        do {
            return try write(body)
        } catch let error as PostgresTransactionError {
            if let rollback = error.closureError as? Rollback<Result>, error.rollbackError == nil { return rollback.value }
            throw error
        }
    }
}
