@testable import GantryPipeline
import Testing

/// `secrets:` and `environment:` on steps, and the one rule for secret names.
@Suite("Pipeline secrets and environments")
struct PipelineSecretsTests {
    @Test func parsesSecretsAndEnvironment() throws {
        let definition = try #require(
            expectPipeline(
                """
                steps:
                  - key: test
                    command: make test
                    secrets: [NPM_TOKEN]
                  - key: deploy
                    command: ./deploy
                    environment: production
                    secrets:
                      - DEPLOY_TOKEN
                      - NPM_TOKEN
                """))
        #expect(definition.steps[0].secrets == ["NPM_TOKEN"])
        #expect(definition.steps[0].environment == nil)
        #expect(definition.steps[0].secretsLocation == .init(line: 4, column: 14))
        #expect(definition.steps[1].secrets == ["DEPLOY_TOKEN", "NPM_TOKEN"])
        #expect(definition.steps[1].environment == "production")
        #expect(definition.environments == ["production"])
    }

    @Test func refusesBadSecretLists() {
        expectPipelineError("steps:\n  - command: x\n    secrets: TOKEN\n", line: 3, column: 14, containing: "must be a list")
        expectPipelineError(
            "steps:\n  - command: x\n    secrets: [OK_NAME, lower]\n", line: 3, column: 24, containing: "upper-case letters")
        expectPipelineError("steps:\n  - command: x\n    secrets: [1TOKEN]\n", line: 3, containing: "not starting with a digit")
        expectPipelineError("steps:\n  - command: x\n    secrets: [GANTRY_JOB_ID]\n", line: 3, containing: "reserved")
        expectPipelineError("steps:\n  - command: x\n    secrets: [PATH]\n", line: 3, containing: "reserved")
        expectPipelineError("steps:\n  - command: x\n    secrets: [A_TOKEN, A_TOKEN]\n", line: 3, column: 24, containing: "twice")
        expectPipelineError("steps:\n  - command: x\n    secrets: [[A]]\n", line: 3, containing: "must be a secret name")
        let many = (0...PipelineLimits.maximumSecretsPerStep).map { "S\($0)" }.joined(separator: ", ")
        expectPipelineError("steps:\n  - command: x\n    secrets: [\(many)]\n", line: 3, containing: "the limit is 100")
        let long = String(repeating: "A", count: PipelineLimits.maximumSecretNameBytes + 1)
        expectPipelineError("steps:\n  - command: x\n    secrets: [\(long)]\n", line: 3, containing: "the limit is 255")
    }

    @Test func aSecretCannotAlsoBePlainEnv() {
        expectPipelineError(
            "steps:\n  - command: x\n    env: {TOKEN_A: visible}\n    secrets: [TOKEN_A]\n", line: 4, column: 14, containing: "both in the step's `env`")
        expectPipelineError(
            "env: {TOKEN_A: visible}\nsteps:\n  - command: x\n    secrets: [TOKEN_A]\n", line: 4, column: 14,
            containing: "both in the pipeline's `env`")
    }

    @Test func refusesBadEnvironments() {
        expectPipelineError("steps:\n  - command: x\n    environment: [prod]\n", line: 3, column: 18, containing: "must be a string")
        expectPipelineError("steps:\n  - command: x\n    environment: \"prod uction\"\n", line: 3, containing: "ASCII letters")
        expectPipelineError("steps:\n  - command: x\n    environment: \"\"\n", line: 3, containing: "`environment` must be 1-63")
        let long = String(repeating: "e", count: 64)
        expectPipelineError("steps:\n  - command: x\n    environment: \(long)\n", line: 3, containing: "1-63")
        #expect(PipelineParser.isValidEnvironmentName("prod-eu.1_a"))
        #expect(!PipelineParser.isValidEnvironmentName("prod/eu"))
        #expect(!PipelineParser.isValidEnvironmentName("prodé"))
    }

    @Test func secretNameRule() {
        for good in ["A", "_X", "DEPLOY_TOKEN", "AWS_SECRET_ACCESS_KEY2", "GANTRYX"] {
            #expect(SecretName.problem(good) == nil, "\(good)")
        }
        for bad in ["", "a", "A-B", "A B", "1A", "É", "PATH", "HOME", "GANTRY_X", "LD_PRELOAD", "LC_ALL", "CI", "A=B"] {
            #expect(SecretName.problem(bad) != nil, "\(bad)")
        }
    }

    @Test func unknownKeyMessageListsTheNewKeys() {
        expectPipelineError("steps:\n  - command: x\n    secret: [A]\n", line: 3, containing: "secrets")
        expectPipelineError("steps:\n  - command: x\n    secret: [A]\n", line: 3, containing: "environment")
    }
}
