/// The bounds of an `if:` expression, checked by `ConditionExpression.init(parsing:)`.
/// docs/pipeline.md ("The expression language") lists them for users.
///
/// Conditions are written by anyone with an API token and evaluated by the coordinator at
/// every submission against commit messages written by anyone who can push, so parsing and
/// evaluation must be cheap whatever the text. Each bound is far above what a real
/// condition needs; like `PipelineLimits` they are constants, so a condition valid on one
/// coordinator is valid on all.
public enum ConditionLimits {
    /// Longest expression, in UTF-8 bytes: a condition is one line of intent, not a program.
    public static let maximumExpressionBytes = 1_024

    /// Deepest nesting of parentheses and `!`. The parser and the evaluator recurse once
    /// per level; real conditions need 2 or 3.
    public static let maximumNestingDepth = 32

    /// Most regex literals in one expression. Each is matched once per evaluation.
    public static let maximumRegexLiterals = 16

    /// Longest regex pattern (the text between the slashes), in UTF-8 bytes.
    public static let maximumRegexBytes = 256

    /// Most instructions one compiled regex may have, counting every copy a counted repeat
    /// makes. Matching costs at most this many steps per scalar of the text.
    public static let maximumRegexInstructions = 5_000

    /// Most instructions of all the expression's regexes together: the bound on an
    /// evaluation's cost per scalar of text (at most 10,000 × 64 KiB ≈ 650 million cheap
    /// steps in the very worst case; real conditions take microseconds).
    public static let maximumTotalRegexInstructions = 10_000

    /// Largest number in a counted repeat (`{m}`, `{m,}`, `{m,n}`).
    public static let maximumRegexRepeatCount = 100

    /// Deepest nesting of groups inside one regex.
    public static let maximumRegexNestingDepth = 32

    /// Most regex steps (instructions × scanned scalars, `ConditionExpression.cost`) the
    /// conditions of one submission may take together: 16 million, at most about 0.14 s of the
    /// submitting request's task (measured in a release build: 1.1-1.5 ns per step for
    /// `/skip deploy/`-like patterns, 8.5 ns for `(.*a){20}q`, the worst seen). A real
    /// pattern against a whole 64 KiB commit message costs about a million steps (1.5 ms);
    /// only regexes near the size limits against messages near the 64 KiB limit reach
    /// this, and that submission is refused with an explanation rather than left to
    /// occupy a core.
    public static let maximumEvaluationCost = 16_000_000
}
