@testable import GantryPipeline
import Testing

/// `checkout:`: its three forms, its bounds, and where a bad value is reported.
@Suite("Pipeline: checkout", .timeLimit(.minutes(1)))
struct PipelineCheckoutTests {
    func checkout(_ value: String) -> CheckoutOptions? {
        expectPipeline(
            """
            steps:
              - command: make
                checkout: \(value)
            """)?.steps.first?.checkout
    }

    @Test func defaultIsAFullCheckoutIntoTheWorkDir() throws {
        let definition = try #require(expectPipeline("steps:\n  - command: make\n"))
        #expect(definition.steps[0].checkout == .default)
        #expect(CheckoutOptions.default == CheckoutOptions(enabled: true, depth: 0, submodules: false, path: ""))
    }

    @Test func booleans() {
        #expect(checkout("false") == .disabled)
        #expect(checkout("true") == .default)
        #expect(checkout("FALSE")?.enabled == false)
    }

    @Test func mappingWithEveryOption() {
        #expect(
            checkout("{depth: 1, submodules: true, path: src/app}")
                == CheckoutOptions(enabled: true, depth: 1, submodules: true, path: "src/app"))
        #expect(checkout("{depth: 0}") == .default)
        #expect(checkout("{}") == .default)
        #expect(checkout("{path: ./src/}")?.path == "src")
        #expect(checkout("{path: .}")?.path == "")
        #expect(checkout("{depth: \(CheckoutOptions.maximumDepth)}")?.depth == CheckoutOptions.maximumDepth)
    }

    @Test func pathsThatLeaveTheWorkDirAreRefused() {
        let cases: [(String, String)] = [
            ("/etc", "relative"), ("../up", "`..`"), ("a/../../b", "`..`"), ("a//b", "empty segment"),
            (".git", "`.git`"), ("src/.GIT/hooks", "`.git`"), ("a\\\\b", "backslash"),
        ]
        for (path, message) in cases {
            expectPipelineError(
                """
                steps:
                  - command: make
                    checkout: {path: "\(path)"}
                """, line: 3, column: 22, containing: message)
        }
        let long = String(repeating: "a", count: CheckoutOptions.maximumPathBytes + 1)
        expectPipelineError("steps:\n  - command: make\n    checkout: {path: \(long)}\n", line: 3, containing: "bytes long")
        let deep = repeated("a", CheckoutOptions.maximumPathSegments + 1, separator: "/")
        expectPipelineError("steps:\n  - command: make\n    checkout: {path: \(deep)}\n", line: 3, containing: "segments")
    }

    @Test func badValuesNameTheirPlace() {
        expectPipelineError(
            "steps:\n  - command: make\n    checkout: yes\n", line: 3, column: 15, containing: "`checkout` must be `true`, `false`")
        expectPipelineError(
            "steps:\n  - command: make\n    checkout: [a]\n", line: 3, column: 15, containing: "`checkout` must be")
        expectPipelineError(
            "steps:\n  - command: make\n    checkout: {depth: -1}\n", line: 3, column: 23, containing: "`checkout.depth`")
        expectPipelineError(
            "steps:\n  - command: make\n    checkout: {depth: \(CheckoutOptions.maximumDepth + 1)}\n", line: 3,
            containing: "`checkout.depth`")
        expectPipelineError(
            "steps:\n  - command: make\n    checkout: {depth: one}\n", line: 3, containing: "whole number")
        expectPipelineError(
            "steps:\n  - command: make\n    checkout: {submodules: 1}\n", line: 3, containing: "`checkout.submodules`")
        expectPipelineError(
            "steps:\n  - command: make\n    checkout: {branch: main}\n", line: 3, column: 16,
            containing: "unknown `checkout` key `branch`")
    }

    @Test func blockStepsTakeNoCheckout() {
        expectPipelineError(
            """
            steps:
              - block: Deploy?
                checkout: false
            """, line: 3, containing: "`checkout` is not allowed on a block step")
    }

    @Test func normalizedPathDirectly() {
        #expect(CheckoutOptions.normalizedPath("src/./app/") == .success("src/app"))
        #expect(CheckoutOptions.normalizedPath("") == .success(""))
        #expect(CheckoutOptions.normalizedPath("/abs") == .failure(.absolute))
        #expect(CheckoutOptions.normalizedPath("a/..") == .failure(.parent))
        #expect(CheckoutOptions.normalizedPath("a\u{0}b") == .failure(.character))
    }
}
