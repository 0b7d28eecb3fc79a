import GantryPipeline
import GantryProtocol

/// The agent labels each step of a submitted file needs, so `gantry run` can say why a
/// step stays queued: the API's jobs do not carry their labels, the file does. Nil for a
/// file the CLI cannot parse the way the coordinator did (the coordinator accepted it, so
/// this is only a hint, never a check).
struct StepRequirements: Sendable {
    /// Labels by step key; values with a `{{` template are left out (they vary by job).
    let labels: [String: [String: String]]

    init?(yaml: String) {
        guard let definition = try? PipelineParser().parse(yaml) else { return nil }
        var labels: [String: [String: String]] = [:]
        for step in definition.steps {
            labels[step.key] = step.agents.filter { !$0.value.contains("{{") }
        }
        self.labels = labels
    }

    /// Why no connected agent can run a job needing `needed`, or nil if one can. Names the
    /// labels nobody offers, or says that no single agent offers them all.
    static func unrunnable(needed: [String: String], agents: [API.Agent]) -> String? {
        let connected = agents.filter(\.connected)
        if connected.contains(where: { agent in needed.allSatisfy { agent.labels[$0.key] == $0.value } }) { return nil }
        if connected.isEmpty { return "no agent is connected" }
        let missing = needed.filter { pair in !connected.contains { $0.labels[pair.key] == pair.value } }
        if missing.isEmpty {
            return "no single connected agent offers all of \(LabelSet.format(needed))"
        }
        return "no connected agent offers \(LabelSet.format(missing))"
    }
}
