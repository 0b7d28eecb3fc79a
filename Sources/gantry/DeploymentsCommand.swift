import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry deployments [ENV]`: what was deployed where, newest first.
struct DeploymentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deployments",
        abstract: "Show deployments (finished steps with `environment:`): commit, artifacts, approvals, result, duration.")

    @Argument(help: "Only this environment.") var environment: String?
    @Option(help: "Only the pipelines of this project (its pushes and schedules, and their rollbacks).") var project: String?
    @Option(help: "At most this many (1-500).") var limit: Int = 20
    @OptionGroup var connection: Connection

    func run() async throws {
        guard (1...500).contains(limit) else { throw ValidationError("--limit is 1 to 500") }
        let client = try connection.client()
        defer { client.shutdown() }
        var path = APIRoute.listDeployments.path([:]) + "?limit=\(limit)"
        if let environment { path += "&environment=" + SecretCommand.percentEncode(environment) }
        if let project { path += "&project=" + SecretCommand.percentEncode(project) }
        let list: API.DeploymentList = try await client.send("GET", path)
        if connection.json {
            print(String(decoding: try API.encoder.encode(list), as: UTF8.self))
            return
        }
        if list.deployments.isEmpty { print("no deployments\(environment.map { " to \($0)" } ?? "")") }
        for deployment in list.deployments {
            let duration = deployment.durationSeconds.map { String(format: "%.1f s", $0) } ?? "-"
            let commit = deployment.commit.map { String($0.prefix(12)) } ?? "-"
            print(
                "\(deployment.finishedAt.map { "\($0)" } ?? "-")  \(deployment.environment)  \(deployment.state)  commit \(commit)"
                    + "\(deployment.branch.map { " (\($0))" } ?? "")  \(duration)  job \(deployment.id)")
            for digest in deployment.artifacts { print("    artifact sha256:\(digest)") }
            for approval in deployment.approvals { print("    approved by \(approval.by) (\(approval.step))") }
        }
    }
}

/// `gantry rollback ENV --to DEPLOYMENT`: deploy an earlier deployment's step and
/// artifacts again.
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Start a pipeline that deploys an earlier successful deployment's step and exact artifacts again.",
        discussion: """
            DEPLOYMENT is a deployment's id from `gantry deployments ENV` (its job). The new pipeline runs that step on
            the same commit, downloading the same artifacts; it needs your deploy permission for ENV, and starts with an
            approval when ENV requires one. Example:
              gantry rollback production --to 6f1c2d0e-…
            """)

    @Argument(help: "The environment.") var environment: String
    @Option(help: "The deployment to go back to.") var to: String
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let pipeline: API.Pipeline = try await client.send(
            "POST", APIRoute.rollbackEnvironment.path(["name": environment]), body: API.Rollback(to: to))
        print(
            connection.json
                ? String(decoding: try API.encoder.encode(pipeline), as: UTF8.self)
                : "rollback pipeline \(pipeline.id) started: \(environment) back to deployment \(to)")
    }
}
