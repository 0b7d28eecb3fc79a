import GantryPipeline

/// Evaluates steps' `if:` conditions when a pipeline is submitted, on the submitting
/// request's task (never on the single writer): the expression language is linear in
/// its input (`ConditionExpression`), and the inputs are bounded (`SubmissionCheck`).
enum StepConditions {
    /// What a condition can see about the build.
    static func context(for pipeline: StoredPipeline, env: [String: String]) -> ConditionContext {
        ConditionContext(
            branch: pipeline.branch, tag: pipeline.tag, commit: pipeline.commit, message: pipeline.message,
            source: pipeline.source, env: env)
    }

    /// Whether a step with `condition` runs in this build (true without one). `spent`
    /// carries the regex work of the submission's conditions so far: the budget
    /// (`ConditionLimits.maximumEvaluationCost`) is for the whole submission, so 500
    /// conditions just under it cannot add up to minutes of CPU.
    static func holds(
        _ condition: StepCondition?, in context: ConditionContext, file: String, spent: inout Int
    ) throws(PipelineError) -> Bool {
        guard let condition else { return true }
        let expression: ConditionExpression
        do {
            expression = try ConditionExpression(parsing: condition.text)
        } catch {
            // The parser checked it; a file stored by an older release may not parse now.
            throw PipelineError(
                file: file, line: condition.location?.line, column: condition.location?.column,
                message: "`if:` does not parse: \(error.message)")
        }
        let cost = expression.cost(context)
        spent = spent.addingReportingOverflow(cost).overflow ? Int.max : spent + cost
        guard spent <= ConditionLimits.maximumEvaluationCost else {
            throw PipelineError(
                file: file, line: condition.location?.line, column: condition.location?.column,
                message: "`if:` would take \(cost) regex steps on this build's text, \(spent) with the conditions before it "
                    + "(the limit for one submission is \(ConditionLimits.maximumEvaluationCost)): use shorter regexes, fewer "
                    + "of them, or match a shorter variable than a long commit message")
        }
        return expression.evaluate(context)
    }
}
