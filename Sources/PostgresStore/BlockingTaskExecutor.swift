import Foundation
import NIOConcurrencyHelpers

/// A task executor on one thread of its own, so a synchronous caller can block on async
/// PostgreSQL work without needing a thread of Swift's cooperative pool.
///
/// The coordinator's stores are synchronous on purpose: a `CoordinatorCore` turn (decide,
/// commit, acknowledge) must not suspend, or the actor would interleave another turn in
/// the middle of it. postgres-nio is async. Blocking a cooperative thread on a task that
/// itself needs a cooperative thread deadlocks once every pool thread is blocking (two on
/// these machines), so the tasks `PostgresPool` starts prefer this executor instead: they
/// run here, the caller waits on a semaphore, and the cooperative pool is never needed.
final class BlockingTaskExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var thread: Thread?

    init(name: String) {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = name
        self.thread = thread
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    /// Runs jobs until `shutdown()`; jobs enqueued after that still run, so no task hangs.
    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty && stopping {
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// Lets the thread end once its queue is empty.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }
}

/// Blocks the calling thread until `body` finishes on `executor`, or `timeout` passes.
///
/// Never call it from a task that already runs on `executor`: that thread would wait for
/// itself.
func runBlocking<Result: Sendable>(
    on executor: BlockingTaskExecutor, timeout: Duration, _ body: @escaping @Sendable () async throws -> Result
) throws -> Result {
    let box = NIOLockedValueBox<Swift.Result<Result, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    let task = Task(executorPreference: executor) {
        let result: Swift.Result<Result, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        box.withLockedValue { $0 = result }
        done.signal()
    }
    let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
    if done.wait(timeout: .now() + seconds) == .timedOut {
        task.cancel()
        throw PostgresStoreError.timedOut(seconds: seconds)
    }
    return try box.withLockedValue { $0! }.get()
}
