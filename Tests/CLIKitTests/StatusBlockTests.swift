import Foundation
import GantryCLIKit
import Testing

struct StatusBlockTests {
    let now = Date(timeIntervalSince1970: 1_000_000)

    @Test func plainLinesHaveNoEscapesAndUnfinishedStepsComeFirst() {
        let block = StatusBlock(
            pipelineID: "p-1",
            steps: [
                StepStatus(id: "j1", name: "build", state: "succeeded", startedAt: now - 30, finishedAt: now - 5),
                StepStatus(id: "j2", name: "test", state: "running", attempt: 2, startedAt: now - 65),
                StepStatus(id: "j3", name: "deploy", state: "waiting"),
            ])
        let lines = block.lines(width: 80, colour: false, now: now)
        #expect(lines == [
            "> test    running attempt 2 1 min 5 s",
            ". deploy  waiting",
            "+ build   succeeded 25 s",
            "pipeline p-1: 1 running, 1 waiting, 1 succeeded",
        ])
        #expect(!lines.joined().contains("\u{1B}"))
    }

    @Test func colourWrapsEachStepLineAndLinesFitTheWidth() {
        let block = StatusBlock(
            pipelineID: "p-1", steps: [StepStatus(id: "j", name: String(repeating: "n", count: 100), state: "failed")])
        let lines = block.lines(width: 30, colour: true, now: now)
        #expect(lines[0].hasPrefix("\u{1B}[31m") && lines[0].hasSuffix("\u{1B}[0m"))
        for line in block.lines(width: 30, colour: false, now: now) { #expect(line.count <= 30) }
    }

    @Test func controlCharactersInNamesAreStripped() {
        let block = StatusBlock(pipelineID: "p\u{1B}[2J", steps: [StepStatus(id: "j", name: "a\u{1B}]0;x\u{07}b\r", state: "queued")])
        let text = block.lines(width: 80, colour: false, now: now).joined(separator: "\n")
        #expect(!text.contains("\u{1B}") && !text.contains("\r") && !text.contains("\u{07}"))
    }

    @Test func manyStepsAreSummarized() {
        let steps = (1...30).map { StepStatus(id: "j\($0)", name: "s\($0)", state: $0 <= 3 ? "running" : "succeeded") }
        let lines = StatusBlock(pipelineID: "p", steps: steps, maximumStepLines: 5).lines(width: 80, colour: false, now: now)
        #expect(lines.count == 6)
        #expect(lines[0].contains("s1") && lines[2].contains("s3"))
        #expect(lines.last == "pipeline p: 3 running, 27 succeeded (25 more not shown)")
    }

    @Test func colourPolicy() {
        #expect(ColourPolicy.useANSI(isTerminal: true, environment: ["TERM": "xterm"]))
        #expect(!ColourPolicy.useANSI(isTerminal: false, environment: ["TERM": "xterm"]))
        #expect(!ColourPolicy.useANSI(isTerminal: true, environment: ["TERM": "xterm", "NO_COLOR": "1"]))
        #expect(!ColourPolicy.useANSI(isTerminal: true, environment: ["TERM": "dumb"]))
    }

    @Test func relativeTimes() {
        #expect(RelativeTime.ago(now - 3, now: now) == "3 s ago")
        #expect(RelativeTime.ago(now - 300, now: now) == "5 min ago")
        #expect(RelativeTime.ago(now - 7200, now: now) == "2 h ago")
        #expect(RelativeTime.ago(now - 4 * 86400, now: now) == "4 d ago")
        #expect(RelativeTime.duration(3725) == "1 h 2 min")
    }
}

struct LogCursorTests {
    @Test func resumesAtTheNextUnprintedByteOfTheSameAttempt() {
        var cursor = LogCursor(jobID: "j")
        #expect(cursor.path == "/v1/jobs/j/log?follow=1&offset=0")
        cursor.started(attempt: 1)
        cursor.received(100)
        cursor.received(23)
        #expect(cursor.next(jobAttempt: 1, jobTerminal: false, cleanEnd: false) == .reconnect)
        #expect(cursor.path == "/v1/jobs/j/log?follow=1&attempt=1&offset=123")
        #expect(cursor.next(jobAttempt: 1, jobTerminal: true, cleanEnd: true) == .done)
    }

    @Test func aNewAttemptIsReadFromItsStartOnlyAfterTheOldOneIsComplete() {
        var cursor = LogCursor(jobID: "j", attempt: 1)
        cursor.received(50)
        // Lost connection: the old attempt's tail first.
        #expect(cursor.next(jobAttempt: 2, jobTerminal: false, cleanEnd: false) == .reconnect)
        #expect(cursor.path.hasSuffix("attempt=1&offset=50"))
        cursor.received(10)
        #expect(cursor.next(jobAttempt: 2, jobTerminal: false, cleanEnd: true) == .newAttempt(previous: 1, current: 2))
        #expect(cursor.path.hasSuffix("attempt=2&offset=0"))
    }

    @Test func backoffDoublesToItsCeilingAndStopsAtItsBudget() {
        var backoff = Backoff(budget: 10)
        var delays: [Double] = []
        while let delay = backoff.delay(), delays.count < 100 { delays.append(delay) }
        #expect(delays == [0.25, 0.5, 1, 2, 4, 2.25])
        backoff.reset()
        #expect(backoff.delay() == 0.25)
    }
}

struct TableTests {
    @Test func columnsWidenInsteadOfCutting() {
        let table = Table(header: ["JOB", "NAME", "STATE"], rows: [["j-1", "a very long step name indeed", "running"], ["j-22", "b", "queued\u{1B}[31m"]])
        #expect(table.lines() == [
            "JOB   NAME                          STATE",
            "j-1   a very long step name indeed  running",
            "j-22  b                             queued[31m",
        ])
    }
}
