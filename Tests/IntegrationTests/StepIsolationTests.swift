import Foundation
import GantryProtocol
import Subprocess
import Testing

/// Finding 3 of issue 10, against the real binaries: with `--step-user`, a step cannot read
/// its agent's key, state, spool or environment, nor another slot's work dir, and it runs
/// as the step user. Needs root (to switch users and create them); skipped otherwise.
@Suite("Step isolation", .serialized, .timeLimit(.minutes(3)))
struct StepIsolationTests {
    static let stepUsers = ["gantry-it-step1", "gantry-it-step2"]

    /// Creates the step users if missing (system users, no home, no login shell).
    static func ensureStepUsers(_ names: [String] = stepUsers) async throws -> [String: uid_t] {
        var uids: [String: uid_t] = [:]
        for name in names {
            if getpwnam(name) == nil {
                let result = try await Subprocess.run(
                    .path("/usr/sbin/useradd"),
                    arguments: ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                    output: .discarded, error: .string(limit: 4096))
                // Exit 9: created meanwhile by a concurrent run; anything else is a failure.
                if !result.terminationStatus.isSuccess, getpwnam(name) == nil {
                    throw TimedOut(description: "useradd \(name) failed: \(result.standardError)")
                }
            }
            uids[name] = try #require(getpwnam(name)).pointee.pw_uid
        }
        return uids
    }

    @Test(.enabled(if: geteuid() == 0, "runs steps as other users: needs root (useradd, setuid)"))
    func aStepCannotReadItsAgentOrAnotherSlotsWork() async throws {
        let uids = try await Self.ensureStepUsers()
        try await TestCluster.with("step-isolation") { cluster in
            chmod(cluster.root, 0o755)
            let first = try await cluster.startAgent(slot: "1", extraArguments: ["--step-user", "gantry-it-step{slot}"])
            let second = try await cluster.startAgent(slot: "2", extraArguments: ["--step-user", "gantry-it-step{slot}"])
            let pids = [first.pid, second.pid].compactMap { $0 }
            #expect(pids.count == 2)
            for agent in [first, second] {
                #expect(agent.output.contains("steps run as their own user"))
                #expect(!agent.output.contains("STEPS RUN AS THE AGENT'S OWN USER"))
            }

            let state = cluster.agentState
            let marker = "/tmp/gantry-it-isolation-\(UUID().uuidString)"
            defer {
                unlink(marker + "-holder")
                unlink(marker + "-probed")
            }
            // The holder leaves a secret in its work dir and says where; the prober (on the
            // other agent, as the other slot's user) tries everything a thief would.
            let holder = """
                id -u; echo secret-of-the-holder > "$GANTRY_WORK_DIR/secret"; echo "$GANTRY_WORK_DIR" > \(marker)-holder
                i=0; while [ ! -e \(marker)-probed ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
                """
            var probes = [
                ("key", "cat \(state)/agent.key"),
                ("state", "ls \(state)"),
                ("spool", "ls \(state)/spool"),
                ("parent-environ", "cat /proc/$PPID/environ"),
                ("parent-mem", "head -c 1 /proc/$PPID/mem"),
                ("work-root", "ls \(cluster.root)/work"),
                ("other-work", #"ls "$other""#),
                ("other-secret", #"cat "$other/secret""#),
            ]
            for (index, pid) in pids.enumerated() { probes.append(("agent\(index + 1)-environ", "cat /proc/\(pid)/environ")) }
            let prober =
                """
                id -u; i=0; while [ ! -s \(marker)-holder ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
                other=$(cat \(marker)-holder); echo "other=$other"

                """
                + probes.map { name, command in
                    "if \(command) >/dev/null 2>&1; then echo \"LEAKED \(name)\"; else echo \"denied \(name)\"; fi"
                }.joined(separator: "\n") + "\ntouch \(marker)-probed\n"

            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: holder
                    command: |
                \(holder.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
                  - key: prober
                    command: |
                \(prober.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }.joined(separator: "\n"))
                """)
            let done = try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(90))
            let holderJob = try #require(done.jobs.first { $0.key == "holder" })
            let proberJob = try #require(done.jobs.first { $0.key == "prober" })
            let holderLog = String(decoding: try await cluster.log(holderJob.id), as: UTF8.self)
            let proberLog = String(decoding: try await cluster.log(proberJob.id), as: UTF8.self)
            #expect(done.state == "succeeded", "holder: \(holderLog)\nprober: \(proberLog)")

            // Both ran as one of the step users, not root, and not as the same user.
            let holderUID = holderLog.split(separator: "\n").first.flatMap { uid_t($0) }
            let proberUID = proberLog.split(separator: "\n").first.flatMap { uid_t($0) }
            #expect(holderUID != nil && holderUID != 0 && Set(uids.values).contains(holderUID!), "\(holderLog)")
            #expect(proberUID != nil && proberUID != 0 && Set(uids.values).contains(proberUID!), "\(proberLog)")
            #expect(holderUID != proberUID, "two slots ran their steps as the same user")

            #expect(proberLog.contains("other=\(cluster.root)/work/\(holderJob.id)-1"), "\(proberLog)")
            for (name, _) in probes {
                #expect(proberLog.contains("denied \(name)\n"), "probe \(name): \(proberLog)")
            }
            #expect(!proberLog.contains("LEAKED"), "\(proberLog)")
            #expect(!proberLog.contains("BEGIN EC PRIVATE KEY") && !proberLog.contains("PRIVATE KEY"))

            // The agent removed both work dirs (owned by the step users) afterwards.
            try await waitUntil("work dirs removed", timeout: .seconds(30)) {
                ((try? FileManager.default.contentsOfDirectory(atPath: cluster.root + "/work")) ?? []).isEmpty
            }
            // Its own directories are private to it.
            for path in [state, state + "/spool"] {
                var info = stat()
                #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o700, "\(path)")
            }
            var info = stat()
            #expect(stat(state + "/agent.key", &info) == 0 && info.st_mode & 0o777 == 0o600)
            #expect(stat(cluster.root + "/work", &info) == 0 && info.st_mode & 0o777 == 0o711)
        }
    }

    static let capsh = "/usr/sbin/capsh"
    static let unitCapabilities = "cap_setuid,cap_setgid,cap_chown,cap_dac_override,cap_kill"

    /// What gantry-agent@.service sets up: the agent runs as its own unprivileged user with
    /// exactly the unit's capabilities, ambient (started here through capsh).
    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: capsh), "needs root and capsh"))
    func anUnprivilegedAgentWithTheUnitsCapabilitiesIsolatesSteps() async throws {
        let uids = try await Self.ensureStepUsers(Self.stepUsers + ["gantry-it-agent"])
        let agentUID = try #require(uids["gantry-it-agent"])
        let agentGID = try #require(getpwnam("gantry-it-agent")).pointee.pw_gid
        try await TestCluster.with("step-isolation-unprivileged") { cluster in
            chmod(cluster.root, 0o755)
            let (enrolled, output) = try await cluster.enroll()
            guard enrolled else { throw TimedOut(description: "enroll failed: \(output)") }
            let state = cluster.agentState
            for path in [state] + ((try? FileManager.default.subpathsOfDirectory(atPath: state)) ?? []).map({ state + "/" + $0 }) {
                chown(path, agentUID, agentGID)
            }
            let work = cluster.root + "/work-unprivileged"
            mkdir(work, 0o711)
            chown(work, agentUID, agentGID)
            let agent = try await ChildProcess(
                name: "agent-unprivileged", executable: Self.capsh,
                arguments: [
                    "--keep=1", "--user=gantry-it-agent", "--inh=\(Self.unitCapabilities)", "--addamb=\(Self.unitCapabilities)",
                    "--", "-c", #"exec "$0" "$@""#, cluster.binaries + "/gantry-agent", "run", "--state", state,
                    "--work-root", work, "--slot", "u1", "--step-user", "gantry-it-step1", "--heartbeat-interval", "0.5",
                ],
                logFile: cluster.root + "/agent-unprivileged.log")
            do {
                _ = try await agent.waitForLine(containing: "connected to the coordinator")
                #expect(agent.output.contains("steps run as their own user"), "\(agent.output)")
                let status = try String(contentsOfFile: "/proc/\(agent.pid ?? 0)/status", encoding: .utf8)
                #expect(status.contains("Uid:\t\(agentUID)\t"), "the agent is not running as gantry-it-agent")

                let pipeline = try await cluster.submit(
                    """
                    steps:
                      - key: probe
                        command: |
                          id -u
                          if cat \(state)/agent.key >/dev/null 2>&1; then echo "LEAKED key"; else echo "denied key"; fi
                          if ls \(state) >/dev/null 2>&1; then echo "LEAKED state"; else echo "denied state"; fi
                          if cat /proc/$PPID/environ >/dev/null 2>&1; then echo "LEAKED parent-environ"; else echo "denied parent-environ"; fi
                          grep -E '^Cap(Prm|Eff|Amb)' /proc/self/status
                          mkdir -p sealed/inner && touch sealed/inner/file && chmod 0500 sealed/inner sealed && echo sealed
                    """)
                let done = try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(60))
                let job = try #require(done.jobs.first)
                let log = String(decoding: try await cluster.log(job.id), as: UTF8.self)
                #expect(done.state == "succeeded", "\(log)")
                #expect(log.hasPrefix("\(uids["gantry-it-step1"]!)\n"), "\(log)")
                for name in ["key", "state", "parent-environ"] { #expect(log.contains("denied \(name)\n"), "\(log)") }
                #expect(!log.contains("LEAKED"), "\(log)")
                // The step has no capabilities at all, though its agent holds five.
                for set in ["CapPrm", "CapEff", "CapAmb"] { #expect(log.contains("\(set):\t0000000000000000"), "\(log)") }
                #expect(log.contains("sealed\n"))
                // The agent (CAP_DAC_OVERRIDE) removed the step user's work dir, read-only subdirs and all.
                try await waitUntil("the work dir removed", timeout: .seconds(30)) {
                    ((try? FileManager.default.contentsOfDirectory(atPath: work)) ?? ["?"]).isEmpty
                }
            } catch {
                await agent.stop()
                throw TimedOut(description: "\(error)\n--- unprivileged agent ---\n\(agent.output.suffix(3000))")
            }
            await agent.stop()
        }
    }
}
