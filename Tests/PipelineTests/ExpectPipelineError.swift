@testable import GantryPipeline
import Testing

/// Parses `yaml` as `ci.yml` and checks that it is refused with a message containing
/// `text`, at `line` (and `column` when given).
func expectPipelineError(
    _ yaml: String, line: Int?, column: Int? = nil, containing text: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        _ = try PipelineParser(file: "ci.yml").parse(yaml)
        Issue.record("expected an error containing '\(text)'", sourceLocation: sourceLocation)
    } catch {
        #expect(error.file == "ci.yml", sourceLocation: sourceLocation)
        #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
        if let column { #expect(error.column == column, "\(error)", sourceLocation: sourceLocation) }
        #expect(error.message.contains(text), "\(error)", sourceLocation: sourceLocation)
    }
}

/// Parses `yaml` and fails the test with the parser's message if it is refused.
@discardableResult
func expectPipeline(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> PipelineDefinition? {
    do {
        return try PipelineParser(file: "ci.yml").parse(yaml)
    } catch {
        Issue.record("expected the pipeline to parse: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// `count` copies of `text` joined by `separator`.
func repeated(_ text: String, _ count: Int, separator: String = ", ") -> String {
    Array(repeating: text, count: count).joined(separator: separator)
}
