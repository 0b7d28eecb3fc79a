import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry metrics dora [ENV] [--days N]`: the delivery metrics of each environment.
struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Delivery metrics.", subcommands: [DORA.self])

    struct DORA: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dora",
            abstract: "Deployment frequency, lead time, change failure rate and time to restore, per environment.")
        @Argument(help: "Only this environment.") var environment: String?
        @Option(help: "The window, in days back from now (1-366).") var days: Int = 30
        @Option(help: "Only the pipelines of this project (its pushes and schedules, and their rollbacks).") var project: String?
        @OptionGroup var connection: Connection

        func run() async throws {
            guard (1...366).contains(days) else { throw ValidationError("--days is 1 to 366") }
            let client = try connection.client()
            defer { client.shutdown() }
            var path = APIRoute.deliveryMetrics.path([:]) + "?days=\(days)"
            if let environment { path += "&environment=" + SecretCommand.percentEncode(environment) }
            if let project { path += "&project=" + SecretCommand.percentEncode(project) }
            let metrics: API.DeliveryMetrics = try await client.send("GET", path)
            if connection.json {
                print(String(decoding: try API.encoder.encode(metrics), as: UTF8.self))
                return
            }
            if metrics.environments.isEmpty { print("no deployments in the last \(days) days") }
            for environment in metrics.environments {
                print(
                    """
                    \(environment.environment) (last \(days) days): \(environment.deployments) deployments, \(environment.failures) failed
                      deployment frequency:   \(String(format: "%.2f", environment.deploymentsPerDay)) per day
                      lead time for changes:  median \(Self.duration(environment.leadTimeMedianSeconds)), p90 \(Self.duration(environment.leadTimeP90Seconds))
                      change failure rate:    \(environment.changeFailureRate.map { String(format: "%.0f %%", $0 * 100) } ?? "-")
                      time to restore:        median \(Self.duration(environment.timeToRestoreMedianSeconds))\(environment.unrestoredFailures > 0 ? " (\(environment.unrestoredFailures) not restored yet)" : "")
                    """)
            }
        }

        static func duration(_ seconds: Double?) -> String {
            guard let seconds else { return "-" }
            if seconds < 120 { return String(format: "%.0f s", seconds) }
            if seconds < 7_200 { return String(format: "%.0f min", seconds / 60) }
            if seconds < 172_800 { return String(format: "%.1f h", seconds / 3_600) }
            return String(format: "%.1f d", seconds / 86_400)
        }
    }
}
