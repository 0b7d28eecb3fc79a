import Dispatch
import Foundation
import GantryCLIKit
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ctrl-C while `gantry run` follows a pipeline.
///
/// On a terminal (stdin and stderr both are) the first Ctrl-C asks "cancel the pipeline
/// (c) or stop following (f)?": `c` cancels it and goes on following until it has ended
/// (so the exit says `cancelled`), `f` exits 130 and leaves the pipeline running, anything
/// else goes on following. Without a terminal to ask on, the first Ctrl-C stops following
/// and exits 130 without cancelling: a script's interrupt should not decide for the
/// pipeline. A second Ctrl-C exits 130 at once, whatever is pending.
final class InterruptHandler {
    private let source: any DispatchSourceSignal

    /// How many Ctrl-Cs so far, shared with the signal queue.
    private final class Presses: Sendable {
        let count = Mutex(0)
    }

    /// `cancel` is called on `c`, off the signal queue; `pause(true)` before the question
    /// (the status block makes room for it), `pause(false)` once it is answered.
    init(
        pipelineID: String, pause: @escaping @Sendable (Bool) async -> Void, cancel: @escaping @Sendable () async -> Void
    ) {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        self.source = source
        let presses = Presses()
        let interactive = isatty(0) == 1 && isatty(2) == 1
        let pipeline = TerminalText.printable(pipelineID, limit: 80)
        source.setEventHandler {
            let seen = presses.count.withLock { value -> Int in
                value += 1
                return value
            }
            guard seen == 1, interactive else {
                Self.say("\ngantry: stopped following; pipeline \(pipeline) goes on (`gantry cancel \(pipeline)` cancels it)\n")
                exit(CLIExit.interrupted)
            }
            // The answer is read on a thread of its own: a blocking read of the terminal.
            Task {
                await pause(true)
                Self.say("gantry: cancel the pipeline (c) or stop following (f)? ")
                Thread.detachNewThread { Self.ask(pipeline: pipeline, pause: pause, cancel: cancel) }
            }
        }
        source.resume()
    }

    /// Reads the answer (a blocking read of the terminal, on its own thread) and acts on it.
    private static func ask(
        pipeline: String, pause: @escaping @Sendable (Bool) async -> Void, cancel: @escaping @Sendable () async -> Void
    ) {
        let answer = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased() ?? "f"
        switch answer {
        case "c", "cancel":
            say("gantry: cancelling pipeline \(pipeline)\n")
            Task {
                await cancel()
                await pause(false)
            }
        case "f", "follow", "stop":
            say("gantry: stopped following; pipeline \(pipeline) goes on\n")
            exit(CLIExit.interrupted)
        default:
            say("gantry: following on (Ctrl-C again exits at once)\n")
            Task { await pause(false) }
        }
    }

    static func say(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Back to the default: Ctrl-C ends the process.
    func remove() {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
}
