import Foundation
import GantryProtocol
import NIOCore
import SwiftProtobuf

/// One envelope of every message kind, as real agents, scalers and the coordinator send
/// them, plus the values at the edges of `WireLimits`. The seed corpora of the frame and
/// envelope targets are these, encoded by the real encoder.
public enum SampleMessages {
    static let jobID = "3f1c1f7e-5b7a-4c1e-9a52-1d0f3b8e2a41"

    /// A build log line repeated a little, deflated by `LogCompression` as an agent does.
    public static func logText() -> [UInt8] {
        Array(
            (0..<12).map { "[\($0)] Compiling GantryProtocol WireShape.swift (\($0 * 37) ms)\n" }.joined().utf8)
    }

    public static func all() throws -> [(name: String, envelope: Gantry_V1_Envelope)] {
        let raw = logText()
        let deflated = try LogCompression.compress(ByteBuffer(bytes: raw))
        let data = Data(deflated.readableBytesView)
        return [
            ("hello", .with {
                $0.hello = .with {
                    $0.minVersion = 1
                    $0.maxVersion = ProtocolVersion.current
                    $0.agentID = "build-07/0"
                    $0.labels = ["os": "linux", "arch": "x86_64", "queue": "default"]
                    $0.capacity = 1
                    $0.agentVersion = "0.9.0"
                    $0.hostname = "build-07"
                    $0.held = [.with { $0.jobID = jobID; $0.attempt = 2; $0.ackedLogOffset = 4096; $0.finished = false }]
                }
            }),
            ("hello-scaler", .with {
                $0.hello = .with {
                    $0.minVersion = 1
                    $0.maxVersion = ProtocolVersion.current
                    $0.agentID = "scaler-1"
                    $0.role = .scaler
                    $0.oneShot = true
                }
            }),
            ("welcome", .with {
                $0.welcome = .with {
                    $0.version = ProtocolVersion.current
                    $0.coordinatorID = "coordinator-1"
                    $0.heartbeatIntervalMs = 5000
                    $0.leaseTtlMs = 30000
                    $0.resume = [.with { $0.jobID = jobID; $0.attempt = 2; $0.logOffset = 4096 }]
                }
            }),
            ("ready", .with { $0.ready = .with { $0.slots = 1 } }),
            ("lease", .with {
                $0.lease = .with {
                    $0.jobID = jobID
                    $0.attempt = 1
                    $0.pipelineID = "9d2e"
                    $0.stepKey = "test"
                    $0.commands = ["swift build", "swift test --parallel"]
                    $0.env = ["CI": "1"]
                    $0.timeoutSeconds = 3600
                    $0.cancelGraceSeconds = 10
                    $0.repository = "https://example.com/gantry.git"
                    $0.commit = "3545358"
                    $0.branch = "main"
                }
            }),
            ("lease-ack", .with { $0.leaseAck = .with { $0.jobID = jobID; $0.attempt = 1; $0.accepted = true } }),
            ("lease-refused", .with {
                $0.leaseAck = .with { $0.jobID = jobID; $0.attempt = 1; $0.accepted = false; $0.reason = "draining" }
            }),
            ("job-started", .with { $0.jobStarted = .with { $0.jobID = jobID; $0.attempt = 1 } }),
            ("log-chunk", .with {
                $0.logChunk = .with {
                    $0.jobID = jobID
                    $0.attempt = 1
                    $0.seq = 3
                    $0.offset = 8192
                    $0.rawLength = UInt32(raw.count)
                    $0.data = data
                }
            }),
            ("log-chunk-edge", .with {
                $0.logChunk = .with {
                    $0.jobID = jobID
                    $0.attempt = 1
                    $0.seq = .max
                    $0.offset = WireLimits.logOffset
                    $0.rawLength = UInt32(raw.count)
                    $0.data = data
                }
            }),
            ("log-ack", .with { $0.logAck = .with { $0.jobID = jobID; $0.attempt = 1; $0.offset = 8192 } }),
            ("heartbeat", .with {
                $0.heartbeat = .with {
                    $0.running = [
                        .with { $0.jobID = jobID; $0.attempt = 1; $0.logOffset = 8192 },
                        .with { $0.jobID = "0b7d"; $0.attempt = 3; $0.logOffset = 0 },
                    ]
                    $0.sentAtUnixMs = 1_764_543_600_000
                }
            }),
            ("heartbeat-ack", .with { $0.heartbeatAck = .with { $0.sentAtUnixMs = 1_764_543_600_000 } }),
            ("job-finished", .with {
                $0.jobFinished = .with {
                    $0.jobID = jobID
                    $0.attempt = 1
                    $0.outcome = .failed
                    $0.exitStatus = 1
                    $0.logLength = 8192
                    $0.message = "step exited with status 1"
                }
            }),
            ("job-finished-signal", .with {
                $0.jobFinished = .with {
                    $0.jobID = jobID
                    $0.attempt = 1
                    $0.outcome = .timedOut
                    $0.signal = 9
                    $0.logLength = WireLimits.logOffset
                }
            }),
            ("finish-ack", .with { $0.finishAck = .with { $0.jobID = jobID; $0.attempt = 1 } }),
            ("cancel", .with { $0.cancel = .with { $0.jobID = jobID; $0.attempt = 1; $0.reason = "cancelled by API" } }),
            ("drain", .with { $0.drain = .with { $0.reason = "scale-in" } }),
            ("error", .with {
                $0.error = .with {
                    $0.code = .staleAttempt
                    $0.message = "attempt 1 of the job is no longer current"
                    $0.jobID = jobID
                    $0.attempt = 1
                    $0.fatal = false
                }
            }),
            ("enroll-request", .with {
                $0.enrollRequest = .with {
                    $0.token = "gantry-join-0123456789abcdef"
                    $0.agentID = "build-08/0"
                    $0.csrDer = Data([0x30, 0x82, 0x01, 0x0A, 0x30, 0x81, 0xB0, 0x02, 0x01, 0x00])
                }
            }),
            ("enroll-response", .with {
                $0.enrollResponse = .with {
                    $0.certificateDer = Data([0x30, 0x82, 0x01, 0x0A])
                    $0.caCertificateDer = Data([0x30, 0x82, 0x01, 0x0B])
                }
            }),
            ("demand", .with {
                $0.demand = .with {
                    $0.queued = 4
                    $0.running = 2
                    $0.oldestQueuedWaitMs = 1500
                    $0.agents = [.with { $0.agentID = "build-07/0"; $0.state = .busy }]
                }
            }),
            ("drain-idle", .with {
                $0.drainIdle = .with { $0.requestID = 7; $0.agentIds = ["build-07/0", "build-07/1"]; $0.count = 2 }
            }),
            ("drain-idle-result", .with { $0.drainIdleResult = .with { $0.requestID = 7; $0.drained = ["build-07/1"] } }),
        ]
    }

    /// Each sample as a frame, exactly as `EnvelopeEncoder.frame` puts it on the wire.
    public static func frames() throws -> [(name: String, frame: [UInt8])] {
        try all().map { sample in
            (sample.name, Array(try EnvelopeEncoder.frame(sample.envelope).readableBytesView))
        }
    }
}
