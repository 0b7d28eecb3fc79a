/// The scheduler's agents by id, plus an index of the ones that can take a job right now,
/// grouped by label set, kept in step on every write.
///
/// A lease used to scan every agent to find a ready match, which is what made a real
/// agent's dispatch latency grow from ~4 ms to ~16 ms with 10,000 agents connected
/// (docs/benchmarks.md, fleet scenario). Fleets have many agents but few distinct label
/// sets, so matching a selector against the groups and choosing within the matching ones
/// touches only agents that could take the job.
struct AgentTable: Sendable {
    private(set) var byID: [String: Scheduler.Agent] = [:]
    /// Ids of agents whose `canTakeMore` holds, by their labels.
    private(set) var available: [[String: String]: Set<String>] = [:]

    subscript(id: String) -> Scheduler.Agent? {
        get { byID[id] }
        set {
            let old = byID[id]
            byID[id] = newValue
            reindex(id, old: old, new: newValue)
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: String) -> Scheduler.Agent? {
        guard let old = byID.removeValue(forKey: id) else { return nil }
        reindex(id, old: old, new: nil)
        return old
    }

    /// The available agent matching `selector` and speaking at least `minimumProtocol`
    /// with the fewest running jobs (ties by id, so tests are deterministic).
    func firstAvailable(matching selector: [String: String], minimumProtocol: UInt32 = 1) -> String? {
        var best: Scheduler.Agent?
        for (labels, ids) in available where Scheduler.matches(selector: selector, labels: labels) {
            for id in ids {
                guard let agent = byID[id], agent.protocolVersion >= minimumProtocol else { continue }
                if let current = best, (current.running.count, current.id) <= (agent.running.count, agent.id) { continue }
                best = agent
            }
        }
        return best?.id
    }

    private mutating func reindex(_ id: String, old: Scheduler.Agent?, new: Scheduler.Agent?) {
        let wasAvailable = old?.canTakeMore == true
        let isAvailable = new?.canTakeMore == true
        if wasAvailable, let old, !(isAvailable && old.labels == new?.labels) {
            available[old.labels]?.remove(id)
            if available[old.labels]?.isEmpty == true { available[old.labels] = nil }
        }
        if isAvailable, let new { available[new.labels, default: []].insert(id) }
    }
}
