import Foundation
import GantryCoordinator
import GantryProtocol
import NIOCore
import NIOPosix
import Synchronization

/// Where a log's tail starts and the number of its first line, for `LogEventStream`.
///
/// Numbering the tail of a long log means counting the newlines before it: reading the
/// whole log once. That work is bounded three ways, so a viewer (or many tabs) cannot
/// make the coordinator decompress a 100 MB log over and over:
/// - at most `concurrentScans` run at once, on NIO's thread pool (never the cooperative
///   pool the core actor runs on), and at most `maximumWaiting` wait; beyond that the
///   stream is refused with 503;
/// - a finished attempt's count is remembered (`maximumRemembered` entries, oldest
///   forgotten), so opening its page again costs nothing.
final class TailLineCounter: Sendable {
    struct Start: Sendable, Equatable {
        var offset: Int
        var line: Int
    }

    static let concurrentScans = 2
    static let maximumWaiting = 32
    static let maximumRemembered = 256

    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Bool, Never>] = []
        var remembered: [String: (start: Start, used: UInt64)] = [:]
        var clock: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Where the last `tailBytes` of the attempt's `length`-byte log start, or nil when
    /// too many scans are running and waiting.
    func start(
        store: any CoordinatorStore, jobID: String, attempt: Int, length: Int, tailBytes: Int, finished: Bool
    ) async throws -> Start? {
        guard length > tailBytes else { return Start(offset: 0, line: 1) }
        let key = "\(jobID):\(attempt):\(length)"
        if finished, let known = remembered(key) { return known }
        guard await acquire() else { return nil }
        defer { release() }
        let start = try await NIOThreadPool.singleton.runIfActive {
            try Self.scan(store: store, jobID: jobID, attempt: attempt, target: length - tailBytes, length: length)
        }
        if finished { remember(key, start) }
        return start
    }

    /// Counts newlines up to `target`, then starts after the next newline (when one is near).
    static func scan(store: any CoordinatorStore, jobID: String, attempt: Int, target: Int, length: Int) throws -> Start {
        var newlines = 0
        var position = 0
        var found: Int?
        while found == nil {
            let chunks = try store.logChunks(jobID: jobID, attempt: attempt, from: position)
            if chunks.isEmpty { break }
            for chunk in chunks where found == nil {
                let raw = try LogCompression.decompress(ByteBuffer(data: chunk.data), expectedLength: chunk.rawLength)
                raw.readableBytesView.withContiguousStorageIfAvailable { bytes in
                    for index in max(position - chunk.offset, 0)..<bytes.count where bytes[index] == 0x0A {
                        if chunk.offset + index >= target {
                            found = chunk.offset + index + 1
                            break
                        }
                        newlines += 1
                    }
                }
                position = chunk.offset + chunk.rawLength
            }
        }
        guard let found, found < length else { return Start(offset: target, line: newlines + 1) }
        return Start(offset: found, line: newlines + 2)
    }

    private func remembered(_ key: String) -> Start? {
        state.withLock { state -> Start? in
            guard let entry = state.remembered[key] else { return nil }
            state.clock += 1
            state.remembered[key] = (entry.start, state.clock)
            return entry.start
        }
    }

    private func remember(_ key: String, _ start: Start) {
        state.withLock { state in
            state.clock += 1
            if state.remembered.count >= Self.maximumRemembered,
                let oldest = state.remembered.min(by: { $0.value.used < $1.value.used })?.key
            {
                state.remembered.removeValue(forKey: oldest)
            }
            state.remembered[key] = (start, state.clock)
        }
    }

    private func acquire() async -> Bool {
        enum Decision { case run, wait, refuse }
        let decision = state.withLock { state -> Decision in
            if state.running < Self.concurrentScans {
                state.running += 1
                return .run
            }
            return state.waiting.count < Self.maximumWaiting ? .wait : .refuse
        }
        switch decision {
        case .run: return true
        case .refuse: return false
        case .wait:
            return await withCheckedContinuation { continuation in
                let runNow = state.withLock { state -> Bool in
                    // A scan may have ended between the decision and here.
                    if state.running < Self.concurrentScans {
                        state.running += 1
                        return true
                    }
                    state.waiting.append(continuation)
                    return false
                }
                if runNow { continuation.resume(returning: true) }
            }
        }
    }

    /// Hands the slot to the first waiter, or frees it.
    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume(returning: true)
    }
}
