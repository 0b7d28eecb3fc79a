@testable import GantryAgent
import GantryProtocol
import Testing

/// What the agent lets git fetch from: the repository URL and commit of a lease come from
/// whoever submitted the pipeline.
@Suite("Checkout: repository URLs and commits", .timeLimit(.minutes(1)))
struct RepositoryURLTests {
    func parse(_ text: String, allowFile: Bool = false) -> Result<RepositoryURL, CheckoutFailure> {
        do throws(CheckoutFailure) {
            return .success(try RepositoryURL(parsing: text, allowFile: allowFile))
        } catch {
            return .failure(error)
        }
    }

    func refusal(_ text: String, allowFile: Bool = false) -> String? {
        if case .failure(let failure) = parse(text, allowFile: allowFile) { return failure.message }
        return nil
    }

    @Test func networkTransportsAreAccepted() throws {
        let cases: [(String, RepositoryURL.Transport)] = [
            ("https://github.com/org/repo.git", .https), ("http://git.local/repo", .http),
            ("ssh://git@github.com/org/repo.git", .ssh), ("git@github.com:org/repo.git", .ssh),
            ("git://127.0.0.1:9418/repo.git", .git), ("git+ssh://host/repo", .ssh),
        ]
        for (text, transport) in cases {
            let url = try parse(text).get()
            #expect(url.transport == transport, "\(text)")
            #expect(url.text == text)
        }
    }

    @Test func dangerousTransportsAndOptionsAreRefused() {
        #expect(refusal("ext::sh -c touch% /tmp/pwned")?.contains("whitespace") == true)
        #expect(refusal("ext::sh%20-c%20id")?.contains("remote helper") == true)
        #expect(refusal("fd::17")?.contains("remote helper") == true)
        #expect(refusal("-uhttps://x")?.contains("starts with `-`") == true)
        #expect(refusal("--upload-pack=touch%20/tmp/x")?.contains("starts with `-`") == true)
        #expect(refusal("ssh://-oProxyCommand=id/repo")?.contains("host starting with `-`") == true)
        #expect(refusal("-oProxyCommand=id:repo")?.contains("`-`") == true)
        #expect(refusal("ftp://host/repo")?.contains("only https, http, ssh and git") == true)
        #expect(refusal("https:///repo")?.contains("no host") == true)
        #expect(refusal("https://host/a\nb")?.contains("control") == true)
        #expect(refusal("")?.contains("1 to") == true)
        #expect(refusal("https://h/" + String(repeating: "a", count: RepositoryURL.maximumBytes))?.contains("bytes") == true)
    }

    @Test func localRepositoriesOnlyWhenTheAgentAllowsThem() throws {
        for text in ["file:///srv/git/repo.git", "/srv/git/repo.git", "./repo", "../other/repo.git"] {
            #expect(refusal(text)?.contains("--git-allow-file-urls") == true, "\(text)")
            #expect(try parse(text, allowFile: true).get().transport == .file)
        }
        #expect(GitEnvironment.allowedProtocols(allowFile: false) == ["https", "http", "ssh", "git"])
        #expect(GitEnvironment.allowedProtocols(allowFile: true).contains("file"))
    }

    @Test func mirrorNamesAreOnePerRepositoryAndHideTheURL() throws {
        let a = try parse("https://GitHub.com/org/repo.git").get()
        let b = try parse("https://github.com/org/repo/").get()
        let c = try parse("https://github.com/org/other.git").get()
        let withToken = try parse("https://x-access-token:s3cret@github.com/org/repo.git").get()
        #expect(a.mirrorName == b.mirrorName)
        #expect(a.mirrorName != c.mirrorName)
        // Credentials select their own mirror: a pipeline without them never reads what
        // was fetched with them.
        #expect(withToken.mirrorName != a.mirrorName)
        #expect(a.mirrorName.count == 64 + 4 && a.mirrorName.hasSuffix(".git"))
        #expect(a.mirrorName.dropLast(4).allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(!withToken.mirrorName.contains("s3cret"))
        #expect(withToken.redacted == "https://***@github.com/org/repo.git")
        #expect(try parse("git@github.com:org/repo.git").get().mirrorName == (try parse("ssh://git@github.com/org/repo").get().mirrorName))
    }

    @Test func commitsAreIdsOrRefNamesNeverOptionsOrExpressions() {
        for good in ["9fceb02d0ae598e95dc970b74767f19372d61af8", "9fceb02", "main", "refs/tags/v1.2.3", "release/2026-12"] {
            #expect((try? CheckoutRequest.checkedCommit(good)) == good, "\(good)")
        }
        for bad in ["-b", "--upload-pack=x", "HEAD~1", "main^{tree}", "a..b", "main@{1}", "a:b", "a b", "/abs", "x*", "a\\b", ""] {
            #expect((try? CheckoutRequest.checkedCommit(bad)) == nil, "\(bad)")
        }
        #expect(CheckoutRequest.isFullCommitID("9fceb02d0ae598e95dc970b74767f19372d61af8"))
        #expect(!CheckoutRequest.isFullCommitID("9fceb02"))
        #expect(!CheckoutRequest.isFullCommitID("9FCEB02D0AE598E95DC970B74767F19372D61AF8"))
    }

    @Test func requestsAreBuiltOnlyWhenTheLeaseAsks() throws {
        let spec = Gantry_V1_CheckoutSpec.with {
            $0.enabled = true
            $0.depth = 3
            $0.path = "./src/"
        }
        let repository = "https://example.com/r.git"
        #expect(CheckoutRequest.from(repository: repository, commit: "abc1234", checkout: nil, allowFileURLs: false) == nil)
        #expect(
            CheckoutRequest.from(repository: repository, commit: "abc1234", checkout: .with { $0.enabled = false }, allowFileURLs: false)
                == nil)
        #expect(CheckoutRequest.from(repository: "", commit: "abc1234", checkout: spec, allowFileURLs: false) == nil)
        let request = try #require(CheckoutRequest.from(repository: repository, commit: "abc1234", checkout: spec, allowFileURLs: false))
        let valid = try request.get()
        #expect(valid.depth == 3 && valid.path == "src" && valid.commit == "abc1234")
        for path in ["../x", "/etc", "a//b", ".git", "a/.git/hooks"] {
            var hostile = spec
            hostile.path = path
            let refused = CheckoutRequest.from(repository: repository, commit: "abc1234", checkout: hostile, allowFileURLs: false)
            #expect(throws: CheckoutFailure.self, "\(path)") { try refused?.get() }
        }
    }

    @Test func credentialsAreTakenOutOfAnyText() throws {
        let text = """
            fatal: clone of 'https://user:secret@host/lib.git' into submodule path '/w/lib' failed
            see ssh://git@example.com/x and http://tok%40en@h:8080 and https://a:b;c,d(e)@h2?q or https://plain.example/x
            fatal: unable to look up user:secret@127.0.0.1:9418 (port 9418)
            """
        let redacted = URLUserinfo.redacted(in: text, known: ["user:secret"])
        #expect(!redacted.contains("secret") && !redacted.contains("tok%40en") && !redacted.contains("b;c,d(e)"), "\(redacted)")
        #expect(redacted.contains("clone of 'https://***@host/lib.git' into submodule path '/w/lib' failed"))
        #expect(redacted.contains("ssh://***@example.com/x and http://***@h:8080 and https://***@h2?q or https://plain.example/x"))
        #expect(redacted.contains("unable to look up ***@127.0.0.1:9418"))
        #expect(URLUserinfo.redacted(in: "no url: user@host:path, a://b") == "no url: user@host:path, a://b")
        let url = try parse("https://user:secret@github.com/org/repo.git").get()
        #expect(url.userinfo == "user:secret")
        #expect(try parse("git@github.com:org/repo.git").get().userinfo == "git")
        #expect(try parse("https://github.com/org/repo.git").get().userinfo.isEmpty)
    }
}
