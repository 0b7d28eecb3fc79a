import BenchKit
import Foundation

/// Scenario 5: footprint. Idle RSS of the coordinator and of an agent (VmRSS 2 s after
/// the agent connected) and where the agent's is (anonymous or pages of its binary, and
/// its PSS once a host runs four slots), agent startup-to-ready, and binary sizes.
///
/// Startup-to-ready is the time from just before `posix_spawn` of `gantry-agent run` to
/// the moment its "connected to the coordinator" log line is read from its stderr pipe:
/// process start, reading the identity, TLS 1.3 with the client certificate, and the
/// Hello/Welcome exchange. The agent's own figure for the TLS + handshake part (the
/// `handshake=` field of that line) is reported next to it.
struct FootprintScenario {
    struct Result {
        var coordinatorRSS: [Int] = []
        var agentRSS: [Int] = []
        /// The first agent's memory alone, then its PSS averaged over four slots.
        var agentMemory: [ProcessStats.Memory] = []
        var agentPSSWithFourSlots: [Int] = []
        var cgroupMode = ""
        var startup: Summary?
        var handshake: Summary?
        var binaries: [(name: String, bytes: Int, stripped: Int)] = []
    }

    let context: BenchContext
    var startups: Int { context.quick ? 5 : 20 }

    func run() async throws -> Result {
        var result = Result()
        for index in 1...context.runs {
            let cluster = try Cluster(name: "footprint-\(index)", binaries: context.binaries, workDir: context.workDir)
            defer { cluster.tearDown() }
            do {
                try cluster.startCoordinator()
                let agent = try cluster.startAgents(count: 1, labels: "pool=idle", cgroups: true)[0]
                try await Task.sleep(for: .seconds(2))
                let coordinatorRSS = ProcessStats.residentBytes(pid: try cluster.coordinatorPID) ?? 0
                let agentRSS = ProcessStats.residentBytes(pid: agent.pid) ?? 0
                result.coordinatorRSS.append(coordinatorRSS)
                result.agentRSS.append(agentRSS)
                result.cgroupMode = Cluster.cgroupMode(of: agent)
                context.log("  run \(index): idle RSS coordinator \(mib(Double(coordinatorRSS))), agent \(mib(Double(agentRSS)))")
                if let memory = ProcessStats.memory(pid: agent.pid) {
                    result.agentMemory.append(memory)
                    // A build VM runs several slots of the same binary, which share its pages.
                    let others = try cluster.startAgents(count: 3, labels: "pool=idle", cgroups: true, slotPrefix: "extra-")
                    try await Task.sleep(for: .seconds(2))
                    let slots = [agent] + others
                    let pss = slots.compactMap { ProcessStats.memory(pid: $0.pid)?.proportional }
                    if pss.count == slots.count { result.agentPSSWithFourSlots.append(pss.reduce(0, +) / pss.count) }
                    context.log(
                        "    agent anonymous \(mib(Double(memory.anonymous))), file-backed \(mib(Double(memory.fileBacked))); "
                            + "PSS per agent with 4 slots \(pss.isEmpty ? "?" : mib(Double(pss.reduce(0, +) / pss.count)))")
                }
                if index == 1 {
                    let (startup, handshake) = try measureStartups(cluster)
                    result.startup = startup
                    result.handshake = handshake
                    context.log(
                        "  agent startup → connected (\(startups) runs): median \(ms(startup.median)), p95 \(ms(startup.p95)), "
                            + "max \(ms(startup.maximum)); the agent's own handshake= field: median \(handshake.map { ms($0.median) } ?? "?")")
                }
            } catch {
                throw HarnessError("footprint run \(index) failed: \(error)\n\(cluster.diagnostics())")
            }
        }
        for name in ["gantry-coordinator", "gantry-agent", "gantry"] {
            let path = context.binaries + "/" + name
            let stripped = context.workDir + "/\(name).stripped"
            defer { unlink(stripped) }
            let strip = try runCommand("/usr/bin/strip", ["-o", stripped, path], workDir: context.workDir)
            guard strip.status == 0 else { throw HarnessError("strip \(path) failed: \(strip.output)") }
            result.binaries.append((name, fileSize(path), fileSize(stripped)))
        }
        return result
    }

    private func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    private func measureStartups(_ cluster: Cluster) throws -> (Summary, Summary?) {
        var samples: [Double] = []
        var handshakes: [Double] = []
        for n in 1...startups {
            let arguments = try cluster.agentArguments(identity: "bench", slot: "startup-\(n)", labels: "pool=idle", cgroups: true)
            let start = ContinuousClock.now
            let (agent, fd) = try ChildProcess.spawnWithStderrPipe(
                name: "agent startup-\(n)", executable: cluster.binaries + "/gantry-agent", arguments: arguments,
                stdout: cluster.root + "/startup-\(n).out")
            defer {
                close(fd)
                agent.stop(grace: .seconds(10))
            }
            let line = try readLine(containing: "connected to the coordinator", from: fd, timeout: .seconds(20))
            samples.append((ContinuousClock.now - start).milliseconds)
            if let range = line.range(of: "handshake="),
                let value = Double(line[range.upperBound...].prefix(while: { $0.isNumber || $0 == "." }))
            {
                handshakes.append(value * 1000)
            }
            agent.signal(SIGTERM)
            // Keep reading until the agent closes stderr, so it never blocks on a full pipe.
            _ = try? readLine(containing: "\u{0}never\u{0}", from: fd, timeout: .seconds(10))
        }
        return (try summary(samples), Summary(handshakes))
    }

    /// Reads `fd` until a line containing `text` arrives (returned), EOF, or the deadline.
    private func readLine(containing text: String, from fd: Int32, timeout: Duration) throws -> String {
        let deadline = ContinuousClock.now + timeout
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = max(1, Int32((deadline - ContinuousClock.now).milliseconds))
            guard poll(&descriptor, 1, remaining) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { throw HarnessError("stderr closed before '\(text)'") }
            pending += buffer[0..<count]
            while let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                if line.contains(text) { return line }
            }
        }
        throw HarnessError("no line containing '\(text)' within \(timeout)")
    }
}
