import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry agents [list]`, `gantry agents forget ID`, `gantry agents drain ID`.
struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List agents; forget (revoke) or drain one (admin).",
        subcommands: [AgentList.self, Forget.self, Drain.self], defaultSubcommand: AgentList.self)

    /// `host/slot`, or a bare host (the whole host is forgotten either way).
    static func parameters(_ id: String) -> [String: String] {
        let parts = id.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        return ["host": parts[0], "slot": parts.count > 1 ? parts[1] : "0"]
    }

    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke the certificate of an agent's host: all its agents are disconnected and refused from now on.")
        @Argument(help: "Agent id (host/slot) or host.") var id: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let forgotten: API.ForgottenAgent = try await connection.call("POST", APIRoute.forgetAgent.path(Agents.parameters(id)))
            try connection.show(forgotten) {
                "forgot host \($0.host): \($0.certificatesRevoked) certificate(s) revoked, "
                    + "disconnected \($0.disconnected.isEmpty ? "none" : $0.disconnected.joined(separator: ", ")); "
                    + "enroll it again with a join token to bring it back"
            }
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tell an agent to finish its job, take no more, and exit.")
        @Argument(help: "Agent id (host/slot).") var id: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let drained: API.DrainedAgent = try await connection.call("POST", APIRoute.drainAgent.path(Agents.parameters(id)))
            try connection.show(drained) { "draining \($0.agentId)" }
        }
    }
}
