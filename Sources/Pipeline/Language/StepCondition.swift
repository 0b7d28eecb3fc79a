/// A step's `if:` as written, with where it is written so a condition that does not
/// evaluate can be reported like a parse error. The parser checks that it parses
/// (`ConditionExpression`); the coordinator evaluates it when the pipeline is submitted.
public struct StepCondition: Sendable, Equatable {
    public var text: String
    public var location: PipelineDefinition.Location?

    public init(text: String, location: PipelineDefinition.Location?) {
        self.text = text
        self.location = location
    }
}
