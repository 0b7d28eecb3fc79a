@testable import GantryPipeline
import Testing

@Suite("Duration parser", .timeLimit(.minutes(1)))
struct DurationParserTests {
    @Test func acceptsSecondsAndOrderedUnits() throws {
        #expect(try DurationParser.seconds("90") == 90)
        #expect(try DurationParser.seconds("90s") == 90)
        #expect(try DurationParser.seconds("15m") == 900)
        #expect(try DurationParser.seconds("2h") == 7200)
        #expect(try DurationParser.seconds("1h30m") == 5400)
        #expect(try DurationParser.seconds("1h0m5s") == 3605)
        #expect(try DurationParser.seconds("0") == 0)
        #expect(try DurationParser.seconds("999999999h") == 999_999_999 * 3600)
    }

    @Test func refusesWithAReason() {
        func failure(_ text: String) -> DurationParser.Failure? {
            do {
                _ = try DurationParser.seconds(text)
                return nil
            } catch {
                return error
            }
        }
        #expect(failure("") == .empty)
        #expect(failure(String(repeating: "1", count: 33)) == .tooLong(length: 33))
        #expect(failure("9999999999999999h") == .numberTooLong(position: 1))
        #expect(failure("5000000000") == .numberTooLong(position: 1))
        #expect(failure("-1") == .unexpectedCharacter("-", position: 1))
        #expect(failure("+5") == .unexpectedCharacter("+", position: 1))
        #expect(failure("1h-1m") == .unexpectedCharacter("-", position: 3))
        #expect(failure("1.5h") == .unexpectedCharacter(".", position: 2))
        #expect(failure("٣") == .unexpectedCharacter("٣", position: 1))
        #expect(failure("1٣s") == .unexpectedCharacter("٣", position: 2))
        #expect(failure("½h") == .unexpectedCharacter("½", position: 1))
        #expect(failure("1 h") == .unexpectedCharacter(" ", position: 2))
        #expect(failure("1d") == .unexpectedCharacter("d", position: 2))
        #expect(failure("m") == .missingNumber(unit: "m", position: 1))
        #expect(failure("1hm") == .missingNumber(unit: "m", position: 3))
        #expect(failure("1m30") == .missingUnit(position: 3))
        #expect(failure("30m1h") == .unitOutOfOrder(unit: "h", position: 5))
        #expect(failure("1h1h") == .unitOutOfOrder(unit: "h", position: 4))
        #expect(PipelineParser.parseDuration("1x") == nil)
    }

    /// Whatever the text, the parser answers without trapping (a tiny in-test fuzz; the
    /// libFuzzer target covers this properly).
    @Test func neverTraps() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789hms-+. ٣½\u{0}9")
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...40, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            if let seconds = PipelineParser.parseDuration(text) { #expect(seconds >= 0) }
        }
    }

    @Test func pipelineDurationsAreRangeChecked() {
        func step(_ field: String, _ value: String) -> String { "steps:\n  - command: x\n    \(field): \(value)\n" }
        #expect(expectPipeline(step("timeout", "604800"))?.steps[0].timeoutSeconds == 604_800)
        #expect(expectPipeline(step("timeout", "168h"))?.steps[0].timeoutSeconds == 604_800)
        expectPipelineError(step("timeout", "604801"), line: 3, column: 14, containing: "`timeout` is 604801 s; the longest allowed is 604800 s (7 days)")
        expectPipelineError(step("timeout", "168h1s"), line: 3, column: 14, containing: "the longest allowed is 604800 s")
        expectPipelineError(step("timeout", "999999999"), line: 3, column: 14, containing: "the longest allowed is 604800 s")
        #expect(expectPipeline(step("cancel_grace", "1h"))?.steps[0].cancelGraceSeconds == 3600)
        expectPipelineError(step("cancel_grace", "3601"), line: 3, column: 19, containing: "`cancel_grace` is 3601 s; the longest allowed is 3600 s (1 hour)")
        expectPipelineError(step("cancel_grace", "5000000000"), line: 3, column: 19, containing: "more than 9 digits")
        expectPipelineError(step("timeout", "5000000000"), line: 3, column: 14, containing: "more than 9 digits")
        expectPipelineError(step("timeout", "9999999999999999h"), line: 3, column: 14, containing: "more than 9 digits")
        expectPipelineError(step("timeout", "-1"), line: 3, column: 14, containing: "`-` at position 1 is not an ASCII digit")
        expectPipelineError(step("timeout", "1h-1m"), line: 3, column: 14, containing: "`-` at position 3")
        expectPipelineError(step("timeout", "٣"), line: 3, column: 14, containing: "`٣` at position 1 is not an ASCII digit")
        expectPipelineError(step("timeout", "0"), line: 3, column: 14, containing: "it is zero")
        // The message docs/pipeline.md shows.
        expectPipelineError(
            step("timeout", "soon"), line: 3, column: 14,
            containing: "`timeout` must be a positive duration such as `90`, `90s`, `15m` or `1h30m`: the unit `s` at position 1 has no number before it")
        expectPipelineError(step("timeout", "[1]"), line: 3, column: 14, containing: "found a list")
        expectPipelineError(step("timeout", "\"\""), line: 3, column: 14, containing: "it is empty")
    }
}
