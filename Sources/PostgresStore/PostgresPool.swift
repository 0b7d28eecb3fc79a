import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// postgres-nio's connection pool behind the synchronous calls the stores make.
///
/// Every call blocks its caller (as SQLite does) while the work runs on the pool's own
/// thread (`BlockingTaskExecutor`), bounded by `timeout`. A write that failed because the
/// server went away (restart, failover, a dropped connection) before its `COMMIT` was sent
/// is retried with backoff until `retryFor` runs out: nothing of it was stored, so running
/// it again is the same as running it once. A `COMMIT` whose answer was lost is never
/// retried: it may have been applied, and the caller (the core) must reload instead.
public final class PostgresPool: Sendable {
    public struct Settings: Sendable {
        /// Connections the pool may open.
        public var maximumConnections = 8
        /// The longest one call may block, waiting for a connection included.
        public var timeout: Duration = .seconds(30)
        /// How long a write keeps retrying while the server is unreachable.
        public var retryFor: Duration = .seconds(60)

        public init() {}
    }

    let client: PostgresClient
    let logger: Logger
    let settings: Settings
    private let executor: BlockingTaskExecutor
    private let runner: Task<Void, Never>
    private let group: MultiThreadedEventLoopGroup

    public init(location: PostgresLocation, settings: Settings = Settings(), logger: Logger) throws {
        var configuration = try location.clientConfiguration()
        configuration.options.maximumConnections = settings.maximumConnections
        configuration.options.minimumConnections = 1
        // Dates travel as UTC text (`PostgresValues`); the session reads them as UTC.
        configuration.options.additionalStartupParameters = [("TimeZone", "UTC"), ("application_name", "gantry-coordinator")]
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.client = PostgresClient(configuration: configuration, eventLoopGroup: group, backgroundLogger: logger)
        self.logger = logger
        self.settings = settings
        let executor = BlockingTaskExecutor(name: "gantry-postgres")
        self.executor = executor
        let client = self.client
        self.runner = Task(executorPreference: executor) { await client.run() }
    }

    /// Closes every connection and stops the pool's thread.
    public func shutdown() {
        runner.cancel()
        executor.shutdown()
        try? group.syncShutdownGracefully()
    }

    /// Runs `body` on one connection, outside a transaction: for single statements, whose
    /// snapshot is their own.
    @discardableResult
    public func read<Result: Sendable>(_ body: @escaping @Sendable (PostgresSession) async throws -> Result) throws -> Result {
        let client = self.client
        let logger = self.logger
        return try runBlocking(on: executor, timeout: settings.timeout) {
            try await client.withConnection { connection in
                try await body(PostgresSession(connection: connection, logger: logger))
            }
        }
    }

    /// Runs `body` in one transaction: all of it is stored, or none of it.
    @discardableResult
    public func write<Result: Sendable>(_ body: @escaping @Sendable (PostgresSession) async throws -> Result) throws -> Result {
        let client = self.client
        let logger = self.logger
        let deadline = ContinuousClock.now + settings.retryFor
        var delay = Duration.milliseconds(50)
        while true {
            do {
                return try runBlocking(on: executor, timeout: settings.timeout) {
                    try await client.withConnection { connection in
                        try await connection.withTransaction(logger: logger) { connection in
                            try await body(PostgresSession(connection: connection, logger: logger))
                        }
                    }
                }
            } catch {
                guard PostgresFailure.isRetryable(error), ContinuousClock.now + delay < deadline else {
                    throw PostgresFailure.unwrapped(error)
                }
                logger.warning(
                    "PostgreSQL write failed before commit; retrying",
                    metadata: ["error": "\(PostgresFailure.describe(error))", "retry_in_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)"])
                Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}

/// What a failed call means for the caller.
enum PostgresFailure {
    /// True when nothing of the transaction was applied and the server is expected back:
    /// the connection failed before `COMMIT` was sent, or the server refused to serialize
    /// it (a deadlock or serialization failure aborts the whole transaction).
    static func isRetryable(_ error: any Error) -> Bool {
        if let transaction = error as? PostgresTransactionError {
            if transaction.commitError != nil {
                // Refused outright (`40001` at commit) is safe; a lost answer is not.
                return transaction.commitError.map(isSerializationFailure) ?? false
            }
            return (transaction.beginError ?? transaction.closureError).map(isRetryable) ?? false
        }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .serverClosedConnection, .connectionError, .uncleanShutdown, .clientClosedConnection:
            return true
        case .server:
            guard let state = error.serverInfo?[.sqlState] else { return false }
            // 08: connection exception; 57P01-57P03: shutting down or starting up;
            // 40001, 40P01: serialization failure, deadlock.
            return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "40001", "40P01"].contains(state)
        default:
            return false
        }
    }

    /// The closure's own error when the transaction was rolled back cleanly: callers see
    /// what went wrong, not the wrapper. Failures of `BEGIN`, `COMMIT` or the rollback
    /// stay wrapped, since they say something about the transaction's fate.
    static func unwrapped(_ error: any Error) -> any Error {
        guard let transaction = error as? PostgresTransactionError, transaction.beginError == nil,
            transaction.commitError == nil, transaction.rollbackError == nil, let inner = transaction.closureError
        else { return error }
        return inner
    }

    static func isSerializationFailure(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }

    /// The server's own message and SQLSTATE: postgres-nio's `description` leaves them out.
    static func describe(_ error: any Error) -> String {
        if let transaction = error as? PostgresTransactionError {
            let inner = transaction.commitError ?? transaction.closureError ?? transaction.beginError
            return inner.map(describe) ?? "transaction failed"
        }
        if let error = error as? PSQLError {
            if let info = error.serverInfo, let message = info[.message] {
                return "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
            }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
