/// Who may hold a slot of a concurrency group (`concurrency: {group, limit}`), across every
/// pipeline. A pure value type like `Scheduler`: the lifecycle tells it when a job of a
/// group becomes runnable and when one ends, and it answers which jobs may go to the
/// scheduler's queue now.
///
/// A job is *active* from its admission until it is terminal: queued for an agent,
/// leased, running, and while automatic retries re-queue it, so at most `limit` of the
/// group are ever between admission and their end. The others are *held*, in the order
/// they became runnable (`StoredJob.sequence`), and are admitted strictly in that order:
/// a job never overtakes an older one of its group, even one that needs a busier label.
public struct ConcurrencyGroups: Sendable, Equatable {
    /// A job waiting for a slot.
    public struct Member: Sendable, Equatable {
        public var job: String
        /// When it became runnable; admissions follow it.
        public var sequence: Int
        /// Its step's `limit`. Steps sharing a group should agree; if not, each job is
        /// admitted while the group holds fewer than its own limit.
        public var limit: Int

        public init(job: String, sequence: Int, limit: Int) {
            self.job = job
            self.sequence = sequence
            self.limit = limit
        }
    }

    /// Group → admitted job → its sequence.
    public private(set) var active: [String: [String: Int]] = [:]
    /// Group → held jobs, by sequence.
    public private(set) var held: [String: [Member]] = [:]
    /// Job → its group, for every active or held job.
    private var groupOf: [String: String] = [:]

    public init() {}

    /// The group `job` is active or held in, if any.
    public func group(of job: String) -> String? { groupOf[job] }

    /// Whether `job` waits for a slot.
    public func isHeld(_ job: String) -> Bool {
        guard let group = groupOf[job] else { return false }
        return active[group]?[job] == nil
    }

    /// A job that already had its slot before a coordinator restart (an agent holds it):
    /// active without asking, so restarts never admit more than `limit`.
    public mutating func adopt(_ member: Member, group: String) {
        groupOf[member.job] = group
        active[group, default: [:]][member.job] = member.sequence
    }

    /// `member` became runnable. Returns the jobs admitted now, oldest first: `member`
    /// itself if the group has room and nobody older waits.
    public mutating func arrive(_ member: Member, group: String) -> [String] {
        guard groupOf[member.job] == nil else { return [] }
        groupOf[member.job] = group
        var queue = held[group, default: []]
        let index = queue.firstIndex { $0.sequence > member.sequence } ?? queue.endIndex
        queue.insert(member, at: index)
        held[group] = queue
        return admit(group)
    }

    /// `job` ended (or was cancelled before it ran). Returns the jobs its slot admits.
    public mutating func leave(_ job: String) -> [String] {
        guard let group = groupOf.removeValue(forKey: job) else { return [] }
        if active[group]?.removeValue(forKey: job) == nil {
            held[group]?.removeAll { $0.job == job }
        }
        let admitted = admit(group)
        if active[group]?.isEmpty == true { active[group] = nil }
        if held[group]?.isEmpty == true { held[group] = nil }
        return admitted
    }

    /// Jobs of `group`, held or active, that became runnable before `sequence`: what
    /// `cancel_in_progress` cancels. The held ones come first: cancelling an active job
    /// that no agent holds yet frees its slot at once, and a held job still in the list
    /// would be admitted into it (and leased) only to be cancelled a moment later.
    public func members(of group: String, olderThan sequence: Int) -> [String] {
        let waiting = (held[group] ?? []).filter { $0.sequence < sequence }.map(\.job)
        let running = (active[group] ?? [:]).filter { $0.value < sequence }.sorted { $0.value < $1.value }.map(\.key)
        return waiting + running
    }

    private mutating func admit(_ group: String) -> [String] {
        var admitted: [String] = []
        while let head = held[group]?.first, active[group, default: [:]].count < max(1, head.limit) {
            held[group]?.removeFirst()
            active[group, default: [:]][head.job] = head.sequence
            admitted.append(head.job)
        }
        return admitted
    }
}
