import Foundation
@testable import GantryAgent
import Logging
import Testing

/// The systemd and command providers run real commands; here those commands are scripts
/// that record how they were called, so the exact systemctl / script invocations are checked.
@Suite("Slot providers", .timeLimit(.minutes(1)))
final class SlotProviderTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-providers-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A script that appends its arguments (and GANTRY_* variables) to `calls` and prints `output`.
    func recorder(_ name: String, output: String, exitStatus: Int = 0) throws -> String {
        let path = directory + "/" + name
        let script = """
            #!/bin/sh
            echo "$* slot=${GANTRY_SLOT:-} agent=${GANTRY_AGENT_ID:-} labels=${GANTRY_LABELS:-}" >> \(directory)/calls
            printf '%s' '\(output)'
            echo "trouble on stderr" >&2
            exit \(exitStatus)
            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    var calls: [String] {
        ((try? String(contentsOfFile: directory + "/calls", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// A slot spawned while the scaler shuts down is signalled too, and none starts after:
    /// no one-shot agent outlives its scaler.
    @Test func processProviderLeavesNoChildBehindAShutdown() async throws {
        let agent = directory + "/agent"
        let script = """
            #!/bin/sh
            trap 'echo stopped >> \(directory)/stopped; exit 0' TERM
            echo started >> \(directory)/started
            while :; do sleep 0.05; done
            """
        try script.write(toFile: agent, atomically: true, encoding: .utf8)
        chmod(agent, 0o755)
        let provider = ProcessSlotProvider(
            options: .init(agentBinary: agent, agentArguments: [], slotPrefix: "t"), logger: Logger(label: "test"))
        // Starting and shutting down at once: whichever wins, the child ends.
        async let started: Void = provider.start(slot: 1)
        async let stopped: Void = provider.shutdown(cancel: false)
        _ = try? await started
        // `shutdown` waits for every slot it signalled; a slot it missed would still run.
        await stopped
        let starts = ((try? String(contentsOfFile: directory + "/started", encoding: .utf8)) ?? "").split(separator: "\n").count
        let stops = ((try? String(contentsOfFile: directory + "/stopped", encoding: .utf8)) ?? "").split(separator: "\n").count
        #expect(starts == stops, "\(starts) started, \(stops) stopped")
        await #expect(throws: ProcessSlotProvider.ShuttingDown.self) { try await provider.start(slot: 2) }
    }

    @Test func systemdProviderStartsAndStopsTemplateInstancesWithoutBlocking() async throws {
        let systemctl = try recorder(
            "systemctl", output: "gantry-agent@2.service loaded active running Gantry CI agent, slot 2\n")
        let provider = SystemdSlotProvider(systemctl: systemctl, logger: Logger(label: "test"))
        #expect(try await provider.existingSlots() == [2])
        try await provider.start(slot: 3)
        try await provider.stop(slot: 3)
        #expect(calls.map { $0.components(separatedBy: " slot=")[0] } == [
            "list-units --plain --no-legend --state=active,activating,reloading gantry-agent@*.service",
            "start --no-block gantry-agent@3.service",
            "stop --no-block gantry-agent@3.service",
        ])
    }

    @Test func commandProviderPassesTheSlotAndAgentID() async throws {
        let script = try recorder("scale.sh", output: "1\n4\n")
        let provider = CommandSlotProvider(
            script: script, agentIDPrefix: "vm/", labels: "os=linux", logger: Logger(label: "test"))
        #expect(try await provider.existingSlots() == [1, 4])
        try await provider.start(slot: 2)
        try await provider.stop(slot: 2)
        #expect(calls == [
            "list slot= agent= labels=os=linux",
            "start 2 slot=2 agent=vm/2 labels=os=linux",
            "stop 2 slot=2 agent=vm/2 labels=os=linux",
        ])
    }

    @Test func aFailingCommandSaysWhatFailedAndWhy() async throws {
        let script = try recorder("broken.sh", output: "", exitStatus: 3)
        let provider = CommandSlotProvider(script: script, agentIDPrefix: "vm/", labels: "", logger: Logger(label: "test"))
        do {
            try await provider.start(slot: 1)
            Issue.record("a failing script was reported as success")
        } catch let error as SlotProviderError {
            #expect("\(error)".contains("exited 3"))
            #expect("\(error)".contains("trouble on stderr"))
            #expect("\(error)".contains("start 1"))
        }
    }
}
