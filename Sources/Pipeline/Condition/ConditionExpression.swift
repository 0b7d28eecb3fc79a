/// A step's `if:` condition, parsed and type-checked, ready to evaluate against a
/// submission (docs/pipeline.md, "The expression language").
///
/// Everything that can be wrong with a condition is found by `init(parsing:)`, with the
/// offset of the problem, so a pipeline with a bad condition is refused before it is
/// stored. `evaluate` is then total: it never traps and never fails, and its cost is
/// bounded by `ConditionLimits` and the context's text (each regex costs at most its
/// instruction count per scalar of the variable it is matched against).
///
/// Standard library only, no Foundation: the lean agent may link this module.
public struct ConditionExpression: Sendable {
    private let root: ConditionNode

    public init(parsing text: String) throws(ConditionSyntaxError) {
        try Self.checkLength(text)
        let source = ConditionSource(text)
        var lexer = ConditionLexer(source)
        let tokens: [ConditionToken]
        do {
            tokens = try lexer.tokens()
        } catch {
            throw ConditionSyntaxError(offset: source.characterOffset(error.offset), message: error.message)
        }
        var parser = ConditionParser(source: source, tokens: tokens)
        root = try parser.parse()
    }

    /// An upper bound on the regex work `evaluate(context)` may do, in steps (one
    /// instruction for one scalar). A caller holding a budget checks it first:
    /// `ConditionLimits.maximumEvaluationCost` bounds the work one condition may cost
    /// the coordinator, whatever the commit message.
    public func cost(_ context: ConditionContext) -> Int {
        root.cost(context)
    }

    /// Whether the step runs for this submission.
    public func evaluate(_ context: ConditionContext) -> Bool {
        root.evaluate(context)
    }

    /// Refuses text over `ConditionLimits.maximumExpressionBytes`, pointing at the first
    /// Character past the limit, without looking at the rest of an arbitrarily long text.
    private static func checkLength(_ text: String) throws(ConditionSyntaxError) {
        let limit = ConditionLimits.maximumExpressionBytes
        guard text.utf8.count > limit else { return }
        var bytes = 0
        var offset = 0
        for character in text {
            bytes += character.utf8.count
            if bytes > limit { break }
            offset += 1
        }
        throw ConditionSyntaxError(
            offset: offset,
            message: "the condition is \(text.utf8.count) bytes long; the limit is \(limit) bytes: "
                + "move the logic into a script, or split it over several steps")
    }
}
