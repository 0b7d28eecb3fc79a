import Foundation
import GantryCoordinator
import GantryProtocol
import Hummingbird

extension Dashboard {
    /// `/ui/agents`: every agent with its state, labels, current job and last heartbeat,
    /// and the queue by the labels jobs ask for, with the agents that could take them. A
    /// selector no connected agent matches is flagged: its jobs wait for nobody.
    func agentsPage(_ request: Request, _ context: GantryRequestContext) async -> Response {
        let agents = await core.listAgents()
        let snapshot = await core.scalingSnapshot()
        let connected = agents.filter(\.connected)
        let demand: [[String: Any]] = snapshot.bySelector.sorted { $0.key < $1.key }.map { selector, demand in
            let wanted = (try? LabelSet.parse(selector).get()) ?? [:]
            let matching = connected.filter { agent in wanted.allSatisfy { agent.labels[$0.key] == $0.value } }.count
            return [
                "selector": selector.isEmpty ? "(any agent)" : selector, "queued": demand.queued, "running": demand.running,
                "wait": DashboardPage.duration(demand.oldestQueuedWait), "agents": matching,
                "nobody": matching == 0 && demand.queued > 0,
            ]
        }
        var body: [String: Any] = [
            "connected": connected.count, "demand": demand,
            "agents": agents.map { agent -> [String: Any] in
                var view: [String: Any] = [
                    "id": agent.id, "state": agent.state, "labels": LabelSet.format(agent.labels), "jobs": agent.runningJobs,
                ]
                if let seen = agent.lastSeenAt { view["lastSeenAt"] = DashboardPage.time(seen) }
                if let reason = agent.notReadyReason { view["notReady"] = reason }
                return view
            },
        ]
        if request.uri.queryParameters.get("fragment") == "1" {
            return DashboardPage.html(templates.render(body, "agents-body"))
        }
        body.merge(DashboardPage.layout(context, nav: "Agents")) { $1 }
        return DashboardPage.html(templates.render(body, "agents"))
    }
}
