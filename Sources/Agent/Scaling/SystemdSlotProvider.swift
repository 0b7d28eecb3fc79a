import Logging

/// Runs each slot as an instance of the `gantry-agent@.service` template: slot `n` is
/// `gantry-agent@n.service`. The unit runs `--one-shot` with `Restart=always`, so systemd
/// gives every job a fresh process; this provider only decides which instances run.
///
/// `stop` is `systemctl stop --no-block`: systemd sends SIGTERM (the agent drains) and
/// waits up to the unit's `TimeoutStopSec`; `--no-block` keeps a slow drain from stalling
/// the scaler. Units are left running when the scaler itself stops.
public struct SystemdSlotProvider: SlotProvider {
    /// `systemctl` (or a path to it).
    public var systemctl: String
    /// The template's name up to and including `@`.
    public var unitPrefix: String
    let logger: Logger
    public let exits: AsyncStream<SlotExit> = AsyncStream { $0.finish() }

    public init(systemctl: String = "systemctl", unitPrefix: String = "gantry-agent@", logger: Logger) {
        self.systemctl = systemctl
        self.unitPrefix = unitPrefix
        self.logger = logger
    }

    func unit(_ slot: Int) -> String { "\(unitPrefix)\(slot).service" }

    public func existingSlots() async throws -> [Int] {
        let listing = try await CommandRunner.run(
            systemctl, ["list-units", "--plain", "--no-legend", "--state=active,activating,reloading", "\(unitPrefix)*.service"])
        return Self.slots(inListing: listing, unitPrefix: unitPrefix)
    }

    /// Slot numbers of the template's instances in `systemctl list-units --plain` output.
    static func slots(inListing listing: String, unitPrefix: String) -> [Int] {
        listing.split(separator: "\n").compactMap { line in
            guard let unit = line.split(separator: " ", omittingEmptySubsequences: true).first,
                unit.hasPrefix(unitPrefix), unit.hasSuffix(".service")
            else { return nil }
            return Int(unit.dropFirst(unitPrefix.count).dropLast(".service".count))
        }.sorted()
    }

    public func start(slot: Int) async throws {
        _ = try await CommandRunner.run(systemctl, ["start", "--no-block", unit(slot)])
        logger.info("slot started", metadata: ["slot": "\(slot)", "unit": "\(unit(slot))"])
    }

    public func stop(slot: Int) async throws {
        _ = try await CommandRunner.run(systemctl, ["stop", "--no-block", unit(slot)])
        logger.info("stopping drained slot", metadata: ["slot": "\(slot)", "unit": "\(unit(slot))"])
    }

    public func shutdown(cancel: Bool) async {}
}
