@testable import GantryPipeline
import GantryTransferRules
import Testing

/// `artifacts:`, `artifacts_when:`, `download:` and `cache:` on a step.
@Suite("Pipeline language: artifacts, downloads and caches", .timeLimit(.minutes(1)))
struct PipelineTransfersTests {
    static let example = """
        steps:
          - key: build
            command: swift build -c release
            artifacts: [dist/*.tar.gz, "build/**/*.xml"]
            artifacts_when: always
            cache:
              key: swiftpm-{{ checksum "Package.resolved" }}
              paths: [.build]
              restore_keys: ["swiftpm-"]
          - key: deploy
            depends_on: build
            command: ./deploy dist/app.tar.gz
            download: [{step: build, path: "dist/*"}]
        """

    @Test func theDocumentedExample() throws {
        let definition = try #require(expectPipeline(Self.example))
        let build = definition.steps[0].transfers
        #expect(build.artifacts == ["dist/*.tar.gz", "build/**/*.xml"])
        #expect(build.artifactsAlways)
        #expect(build.cache == CacheRule(key: "swiftpm-{{ checksum \"Package.resolved\" }}", paths: [".build"], restoreKeys: ["swiftpm-"]))
        #expect(build.downloads.isEmpty)
        let deploy = definition.steps[1].transfers
        #expect(deploy.downloads == [ArtifactDownloadRule(step: "build", path: "dist/*")])
        #expect(deploy.artifacts.isEmpty && !deploy.artifactsAlways && deploy.cache == nil)
    }

    @Test func buildkitesArtifactPathsAndOneString() throws {
        let definition = try #require(
            expectPipeline("steps:\n  - command: make\n    artifact_paths: \"out/**\"\n"))
        #expect(definition.steps[0].transfers.artifacts == ["out/**"])
        #expect(definition.steps[0].transfers.artifactsAlways == false)
        expectPipelineError(
            "steps:\n  - command: make\n    artifacts: a\n    artifact_paths: b\n", line: 4, column: 5,
            containing: "same key")
    }

    @Test func badGlobsAndPathsAreRefusedWhereTheyAreWritten() {
        expectPipelineError("steps:\n  - command: make\n    artifacts: [ok, /etc/passwd]\n", line: 3, column: 21, containing: "absolute")
        expectPipelineError("steps:\n  - command: make\n    artifacts: [../up]\n", line: 3, column: 17, containing: "`..`")
        expectPipelineError("steps:\n  - command: make\n    artifacts: [\"a/[bc\"]\n", line: 3, containing: "without its `]`")
        expectPipelineError("steps:\n  - command: make\n    artifacts: [\"a**/b\"]\n", line: 3, containing: "whole segment")
        expectPipelineError("steps:\n  - command: make\n    artifacts: []\n", line: 3, containing: "empty list")
        let many = repeated("x", TransferLimits.maximumArtifactGlobs + 1)
        expectPipelineError("steps:\n  - command: make\n    artifacts: [\(many)]\n", line: 3, containing: "the limit is 32")
        let long = String(repeating: "a", count: TransferLimits.maximumPathBytes + 1)
        expectPipelineError("steps:\n  - command: make\n    artifacts: [\(long)]\n", line: 3, containing: "bytes long")
        expectPipelineError("steps:\n  - command: make\n    artifacts_when: sometimes\n", line: 3, containing: "on_success")
        expectPipelineError(
            "steps:\n  - command: make\n    cache: {key: k, paths: [a/../b]}\n", line: 3, containing: "`..`")
    }

    @Test func downloadsNameAStepOfThePipeline() {
        expectPipelineError(
            "steps:\n  - key: a\n    command: make\n  - key: b\n    command: make\n    download: [{step: nope, path: \"*\"}]\n",
            line: 6, column: 23, containing: "`nope`, which is not a step key")
        expectPipelineError(
            "steps:\n  - key: a\n    command: make\n    download: [{step: a, path: \"*\"}]\n",
            line: 4, containing: "its own artifacts")
        expectPipelineError(
            "steps:\n  - key: a\n    command: make\n  - command: make\n    download: [{step: a}]\n",
            line: 5, containing: "needs `path")
        expectPipelineError(
            "steps:\n  - key: a\n    command: make\n  - command: make\n    download: [{step: a, path: x, from: y}]\n",
            line: 5, containing: "unknown `download` key")
    }

    @Test func cacheKeysAreTemplatesCheckedAtParse() {
        expectPipelineError(
            "steps:\n  - command: make\n    cache: {key: \"a-{{ checksum Package.resolved }}\", paths: [.build]}\n",
            line: 3, containing: "{{ checksum \"FILE\" }}")
        expectPipelineError(
            "steps:\n  - command: make\n    cache: {key: \"a-{{ checksum \\\"/etc/shadow\\\" }}\", paths: [.build]}\n",
            line: 3, containing: "absolute")
        expectPipelineError(
            "steps:\n  - command: make\n    cache: {key: \"a b\", paths: [.build]}\n", line: 3, containing: "a space")
        expectPipelineError("steps:\n  - command: make\n    cache: {paths: [.build]}\n", line: 3, containing: "needs a `key`")
        expectPipelineError("steps:\n  - command: make\n    cache: {key: k}\n", line: 3, containing: "needs `paths`")
        expectPipelineError(
            "steps:\n  - command: make\n    cache: {key: k, paths: [a], restore_keys: [\"{{ oops }}\"]}\n", line: 3,
            containing: "restore_keys")
    }

    @Test func blockStepsTakeNone() {
        for key in ["artifacts: [a]", "download: [{step: a, path: b}]", "cache: {key: k, paths: [a]}", "artifacts_when: always"] {
            expectPipelineError(
                "steps:\n  - key: a\n    command: make\n  - block: ok?\n    \(key)\n", line: 5, column: 5,
                containing: "not allowed on a block step")
        }
    }

    @Test func transfersRoundTripThroughJSON() throws {
        let transfers = StepTransfers(
            artifacts: ["a/*"], artifactsAlways: true, downloads: [.init(step: "b", path: "**")],
            cache: CacheRule(key: "k-{{ checksum \"x\" }}", paths: [".build"], restoreKeys: ["k-"]))
        #expect(!transfers.isEmpty)
        #expect(StepTransfers().isEmpty)
    }
}

@Suite("Transfer rules: globs, paths and key templates", .timeLimit(.minutes(1)))
struct TransferRulesTests {
    @Test func globsMatchLikeTheDocsSay() throws {
        let cases: [(String, String, Bool)] = [
            ("dist/*.tar.gz", "dist/app.tar.gz", true),
            ("dist/*.tar.gz", "dist/sub/app.tar.gz", false),
            ("dist/*", "dist/.hidden", true),
            ("build/**/*.xml", "build/a.xml", true),
            ("build/**/*.xml", "build/x/y/z.xml", true),
            ("build/**/*.xml", "other/a.xml", false),
            ("**", "a/b/c", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("[]]", "]", true),
            ("*a*a*a*a*a*b", String(repeating: "a", count: 400), false),
            ("report.txt", "report.txt", true),
        ]
        for (pattern, path, expected) in cases {
            #expect(try ArtifactGlob(pattern).matches(path) == expected, "\(pattern) ~ \(path)")
        }
        #expect(try ArtifactGlob("dist/x/*.gz").literalPrefix == ["dist", "x"])
        #expect(try ArtifactGlob("**/*.gz").literalPrefix == [])
        #expect(try ArtifactGlob("a/b").isLiteral)
    }

    @Test func pathsThatLeaveTheWorkDirAreRefused() {
        for bad in ["", "/abs", "a/../b", "..", "./a", "a//b", "a/", "a\\b", "a\u{0}b", "a\nb"] {
            #expect(TransferPath.problem(with: bad, what: "path") != nil, "\(bad.debugDescription)")
        }
        for good in ["a", ".build", "a/b.c/d", "..a", "a..b"] {
            #expect(TransferPath.problem(with: good, what: "path") == nil, "\(good)")
        }
    }

    @Test func keyTemplatesRender() throws {
        let template = try CacheKeyTemplate("swiftpm-{{ checksum \"Package.resolved\" }}-{{checksum \"b/c\"}}")
        #expect(template.checksumFiles == ["Package.resolved", "b/c"])
        let key = template.render { file in file == "b/c" ? "2222" : "1111" }
        #expect(key == "swiftpm-1111-2222")
        #expect(try CacheKeyTemplate("plain-key").render { _ in "x" } == "plain-key")
        #expect(throws: CacheKeyTemplate.SyntaxError.self) { try CacheKeyTemplate("a-{{ checksum \"x\"") }
        #expect(throws: CacheKeyTemplate.SyntaxError.self) { try CacheKeyTemplate("a-{{ env \"x\" }}") }
        #expect(throws: CacheKeyTemplate.SyntaxError.self) { try CacheKeyTemplate("") }
        let tooMany = String(repeating: "{{ checksum \"f\" }}", count: TransferLimits.maximumChecksumsPerKey + 1)
        #expect(throws: CacheKeyTemplate.SyntaxError.self) { try CacheKeyTemplate(tooMany) }
    }
}
