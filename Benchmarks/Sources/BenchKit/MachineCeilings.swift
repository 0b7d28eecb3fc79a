import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What this machine can do at most, measured in the same run as the figures it bounds, so
/// a reader sees how close to the limit Gantry runs: a trivial job cannot finish faster
/// than the machine spawns `sh -c true`, and a step's log cannot stream faster than one
/// core deflates it.
public enum MachineCeilings {
    /// `sh -c true` spawned and reaped per second, with one spawner per core, for `duration`.
    /// Uses `posix_spawn` like the agent's runner does (through swift-subprocess), with
    /// stdio on /dev/null.
    public static func shellSpawnsPerSecond(cores: Int, duration: Duration = .seconds(2)) -> Double {
        let total = Atomic<Int>(0)
        let started = ContinuousClock.now
        let deadline = started + duration
        // One spawner per core; concurrentPerform returns when all of them have.
        DispatchQueue.concurrentPerform(iterations: max(cores, 1)) { _ in
            var count = 0
            // Bounded: at most 100,000 spawns per spawner even on a very fast machine.
            while ContinuousClock.now < deadline && count < 100_000 {
                guard spawnTrue() else { break }
                count += 1
            }
            total.add(count, ordering: .relaxed)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(total.load(ordering: .relaxed)) / seconds
    }

    private static func spawnTrue() -> Bool {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", "true"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        guard posix_spawn(&pid, "/bin/sh", &actions, nil, &argv, environ) == 0 else { return false }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return true
    }
}
