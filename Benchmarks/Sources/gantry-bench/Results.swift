import BenchKit

/// Everything one run of the harness measured, as the report needs it. A scenario that
/// was not selected, or failed, leaves its fields nil (failures are kept with the reason).
struct Results {
    var machine: Machine
    var commandLine: String
    var commit: String
    var quick: Bool
    var runs: Int
    var openFileLimit: Int
    var buildNotes: [String]
    var loadAtStart = ""
    /// `sh -c true` spawned and reaped per second on all cores (`MachineCeilings`), measured
    /// just before the dispatch and throughput scenarios.
    var spawnCeiling: Double?
    var loadAtEnd = ""
    var durations: [String: Double] = [:]
    var failures: [String: String] = [:]

    var footprint: FootprintScenario.Result?
    var dispatchNoCgroups: [DispatchScenario.Run]?
    var dispatchCgroups: [DispatchScenario.Run]?
    var throughput8: [ThroughputScenario.Run]?
    var throughput32: [ThroughputScenario.Run]?
    var logOffline: LogScenario.Offline?
    var logSingle: [LogScenario.Run]?
    var logParallel: [LogScenario.Run]?
    var fleet: [Int: [FleetScenario.Run]] = [:]
    var history: [HistoryScenario.Size]?
    var transfers: [TransfersScenario.Run]?
    var dashboard: [DashboardScenario.Run]?
    var cluster: ClusterScenario.Result?
    var micro: String?
    var microNote: String?

    /// All response → start samples of a dispatch mode's runs together.
    static func pooled(_ runs: [DispatchScenario.Run]?) -> Summary? {
        guard let runs else { return nil }
        return Summary(runs.flatMap(\.samples))
    }
}
