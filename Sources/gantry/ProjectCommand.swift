import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry project create|list|show|delete`: repositories whose pushes start pipelines
/// through a webhook (docs/pipeline.md, "Triggers").
struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Create, list, show and delete projects: repositories whose pushes start pipelines through a webhook.",
        subcommands: [CreateProject.self, ListProjects.self, ShowProject.self, DeleteProject.self])

    static func describe(_ project: API.Project, server: String) -> String {
        var lines = [
            "project \(project.name)",
            "  repository:    \(project.repository)",
            "  pipeline file: \(project.pipelineFile)",
            "  branches:      \(project.branches.isEmpty ? "all" : project.branches.joined(separator: ", "))",
            "  tags:          \(project.tags.isEmpty ? "none" : project.tags.joined(separator: ", "))",
            "  a push cancels the branch's earlier running builds: \(project.cancelSuperseded ? "yes" : "no")",
            "  pipelines run as: \(project.runAs ?? "project:\(project.name) (no role: they cannot deploy)")",
            "  webhook URL:   \(server)\(project.webhookPath)",
            "  created by \(project.createdBy) at \(project.createdAt)",
        ]
        if let secret = project.webhookSecret {
            lines.append("  webhook secret (shown once; give it to the git server as the hook's secret): \(secret)")
        }
        return lines.joined(separator: "\n")
    }
}

struct CreateProject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a project and print its webhook URL and secret (admin).",
        discussion: """
            Point the git server's push webhook at the URL, content type application/json, with the secret:
            GitHub and Gitea/Forgejo sign each delivery with it (HMAC-SHA256), GitLab sends it as its token.
            A push to a matching branch (or tag) starts the bootstrap pipeline at the pushed commit: it checks
            the commit out and uploads the pipeline file from the repository. Example:
              gantry project create app --repository https://git.example.com/team/app.git --branch main --branch 'release/*'
            """)

    @Argument(help: "Project name: 1-64 lower-case letters, digits, -, _ or .") var name: String
    @Option(help: "The repository URL, as agents clone it.") var repository: String
    @Option(help: "The pipeline file in the repository.") var pipeline: String = ".gantry/pipeline.yml"
    @Option(name: .customLong("branch"), help: "Build pushes to branches matching this glob (repeatable; default: every branch).")
    var branches: [String] = []
    @Option(name: .customLong("tag"), help: "Build pushed tags matching this glob (repeatable; default: no tag).")
    var tags: [String] = []
    @Flag(help: "A push to a branch cancels the builds of that branch its webhook started before and that still run.")
    var cancelSuperseded = false
    @Option(
        help: "Submit the project's pipelines as this identity, whose roles at each push decide what they may do (deploy, save the default branch's cache). Default: project:NAME, which holds no role.")
    var runAs: String?
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let project: API.Project = try await client.send(
            "POST", APIRoute.createProject.path([:]),
            body: API.CreateProject(
                name: name, repository: repository, pipelineFile: pipeline, branches: branches, tags: tags,
                cancelSuperseded: cancelSuperseded, runAs: runAs))
        print(connection.json ? String(decoding: try API.encoder.encode(project), as: UTF8.self) : ProjectCommand.describe(project, server: client.base))
    }
}

struct ListProjects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List projects.")
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        var list: API.ProjectList = try await client.send("GET", APIRoute.listProjects.path([:]))
        // Every page: `next_cursor` until there is none (bounded).
        for _ in 0..<100 {
            guard let cursor = list.nextCursor else { break }
            let more: API.ProjectList = try await client.send(
                "GET", APIRoute.listProjects.path([:]) + "?cursor=" + (cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
            list = API.ProjectList(projects: list.projects + more.projects, nextCursor: more.nextCursor)
        }
        if connection.json {
            print(String(decoding: try API.encoder.encode(list), as: UTF8.self))
            return
        }
        print("NAME                 REPOSITORY")
        for project in list.projects {
            print("\(project.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(project.repository)")
        }
    }
}

struct ShowProject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a project and its webhook URL.")
    @Argument(help: "Project name.") var name: String
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let project: API.Project = try await client.send("GET", APIRoute.getProject.path(["name": name]))
        print(connection.json ? String(decoding: try API.encoder.encode(project), as: UTF8.self) : ProjectCommand.describe(project, server: client.base))
    }
}

struct DeleteProject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a project: its webhook stops starting pipelines (admin).")
    @Argument(help: "Project name.") var name: String
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let project: API.Project = try await client.send(
            "DELETE", APIRoute.deleteProject.path(["name": name]), body: Optional<API.CreateProject>.none)
        print(connection.json ? String(decoding: try API.encoder.encode(project), as: UTF8.self) : "project \(project.name) deleted")
    }
}
