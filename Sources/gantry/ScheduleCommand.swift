import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry schedule add|list|delete`: a project's cron schedules.
struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Add, list and delete a project's scheduled (cron) builds.",
        subcommands: [Add.self, List.self, Delete.self])

    static func describe(_ schedule: API.Schedule) -> String {
        var lines = ["\(schedule.id)  \(schedule.cron)  branch \(schedule.branch)  next \(schedule.nextRunAt)"]
        for run in schedule.runs {
            lines.append("    \(run.tick)  " + (run.pipelineId.map { "pipeline \($0)" } ?? run.error.map { "nothing started: \($0)" } ?? "starting"))
        }
        return lines.joined(separator: "\n")
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build a branch of a project on a cron schedule (UTC) (admin).",
            discussion: """
                Five fields (minute hour day month weekday) or @hourly, @daily, @weekly, @monthly, @yearly. At each tick
                the coordinator resolves the branch's head (git ls-remote, from the coordinator's host) and starts the
                project's pipeline at it, once per tick whatever restarts happen. Example:
                  gantry schedule add app --cron "0 2 * * 1-5" --branch main
                """)
        @Argument(help: "Project name.") var project: String
        @Option(help: "The cron expression, UTC.") var cron: String
        @Option(help: "The branch to build.") var branch: String = "main"
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            let schedule: API.Schedule = try await client.send(
                "POST", APIRoute.createSchedule.path(["name": project]), body: API.CreateSchedule(cron: cron, branch: branch))
            print(connection.json ? String(decoding: try API.encoder.encode(schedule), as: UTF8.self) : ScheduleCommand.describe(schedule))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a project's schedules and their last ticks.")
        @Argument(help: "Project name.") var project: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            let list: API.ScheduleList = try await client.send("GET", APIRoute.listSchedules.path(["name": project]))
            if connection.json {
                print(String(decoding: try API.encoder.encode(list), as: UTF8.self))
            } else {
                print(list.schedules.isEmpty ? "no schedules" : list.schedules.map(ScheduleCommand.describe).joined(separator: "\n"))
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule (admin).")
        @Argument(help: "Project name.") var project: String
        @Argument(help: "Schedule id.") var id: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            let schedule: API.Schedule = try await client.send(
                "DELETE", APIRoute.deleteSchedule.path(["name": project, "id": id]), body: Optional<API.CreateSchedule>.none)
            print(connection.json ? String(decoding: try API.encoder.encode(schedule), as: UTF8.self) : "schedule \(schedule.id) deleted")
        }
    }
}
