import Foundation
import GantryCLIKit
import GantryProtocol

/// Follows one job's log to its end across lost connections: a stream that breaks (the
/// coordinator restarted, the network dropped) is opened again after a backoff at the
/// next byte not yet handed on (`LogCursor`), so no line is lost or printed twice.
///
/// A connection that cannot be made, and a 5xx (a proxy in front of a restarting
/// coordinator), are tried again for `Backoff`'s budget; then the coordinator counts as
/// unreachable (exit 3). Any other refusal (401, 403, a job that is gone) ends at once.
struct LogFollower: Sendable {
    let client: APIClient
    let jobID: String

    /// What the follower reports besides the bytes.
    struct Events: Sendable {
        /// Bytes of the log, in order.
        var bytes: @Sendable ([UInt8]) async -> Void
        /// The job moved on to another attempt (a retry after a lost agent): the previous
        /// attempt's log is complete and the current one's follows from its start.
        var attempt: @Sendable (_ previous: Int, _ current: Int, _ reason: String?) async -> Void
        /// The coordinator cannot be reached (once per outage), or can be again.
        var connection: @Sendable (_ lost: Bool, _ detail: String) async -> Void
    }

    /// At most this many connections per job: a bound on the loop, far beyond what the
    /// backoff budget lets a real outage use.
    static let maximumConnections = 10_000

    /// Returns the job as it ended.
    @discardableResult
    func follow(_ events: Events) async throws -> API.Job {
        var cursor = LogCursor(jobID: jobID)
        var backoff = Backoff()
        var lost = false
        for _ in 0..<Self.maximumConnections {
            var clean = false
            do {
                let (attempt, body) = try await client.openLog(cursor.path)
                if lost {
                    lost = false
                    await events.connection(false, "")
                }
                backoff.reset()
                cursor.started(attempt: attempt)
                for try await buffer in body {
                    let bytes = Array(buffer.readableBytesView)
                    cursor.received(bytes.count)
                    await events.bytes(bytes)
                }
                clean = true
            } catch let error as CLIError where !Self.isTransient(error) {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // The stream broke, or no connection: read the job, then resume.
                if !lost {
                    lost = true
                    await events.connection(true, TerminalText.printable(String(describing: error), limit: 300))
                }
            }
            let job: API.Job
            do {
                job = try await client.send("GET", APIRoute.getJob.path(["id": jobID]))
            } catch let error as CLIError where Self.isTransient(error) {
                try await Self.wait(&backoff, error)
                continue
            }
            switch cursor.next(jobAttempt: job.attempt, jobTerminal: job.isTerminal, cleanEnd: clean) {
            case .done:
                return job
            case .newAttempt(let previous, let current):
                await events.attempt(previous, current, job.reason)
            case .reconnect:
                if !clean || !job.isTerminal { try await Self.wait(&backoff, nil) }
            }
        }
        throw CLIError("gave up following the log of job \(jobID) after \(Self.maximumConnections) connections")
    }

    /// No connection, or a 5xx: the coordinator may be restarting.
    static func isTransient(_ error: CLIError) -> Bool {
        error.isUnreachable && error.status != 401 && error.status != 403
    }

    static func wait(_ backoff: inout Backoff, _ error: CLIError?) async throws {
        guard let delay = backoff.delay() else {
            throw error
                ?? CLIError(
                    "lost the coordinator for more than \(Int(backoff.budget)) s; the pipeline goes on without us",
                    exitCode: CLIExit.unreachable)
        }
        try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
    }
}
