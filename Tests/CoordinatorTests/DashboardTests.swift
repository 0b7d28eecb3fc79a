import Foundation
@testable import GantryCoordinator
import GantryProtocol
@testable import GantryWeb
import Testing

/// The dashboard's pure parts: graph layout, the log stream's UTF-8 cuts and resume
/// points, sessions, sign-in redirects, and a 1,000-job page rendered from its template.
@Suite("Dashboard", .timeLimit(.minutes(1)))
struct DashboardTests {
    @Test func layoutPutsEachJobRightOfItsDeepestDependency() {
        // build → test a, test b → package (also on build directly).
        let layout = StepGraphLayout(dependencies: [[], [0], [0], [1, 2, 0]])
        #expect(layout.nodes.map(\.column) == [0, 1, 1, 2])
        #expect(layout.nodes.map(\.row) == [0, 0, 1, 0])
        #expect(layout.edges.count == 5 && layout.edgeCount == 5)
        #expect(layout.width == 3 * StepGraphLayout.nodeWidth + 2 * StepGraphLayout.columnGap)
        // A dependency on itself, out of range or on a later job never loops or crashes.
        let odd = StepGraphLayout(dependencies: [[0, 7, -1], [2], []])
        #expect(odd.nodes.map(\.column) == [0, 1, 0])
    }

    @Test func tooManyEdgesAreListedNotDrawn() {
        let fanIn = [[Int]](repeating: Array(0..<100), count: 100)
        let layout = StepGraphLayout(dependencies: Array(repeating: [], count: 100) + fanIn)
        #expect(layout.edgeCount == 10_000 && layout.edges.isEmpty)
    }

    @Test func theLogStreamCutsOnlyBetweenWholeCharacters() {
        let text = Array("añ€😀".utf8)  // 1 + 2 + 3 + 4 bytes
        #expect(LogEventStream.completeUTF8Prefix(text, maximum: 100) == 10)
        #expect(LogEventStream.completeUTF8Prefix(Array(text[0..<2]), maximum: 100) == 1)
        #expect(LogEventStream.completeUTF8Prefix(Array(text[0..<5]), maximum: 100) == 3)
        #expect(LogEventStream.completeUTF8Prefix(Array(text[0..<9]), maximum: 100) == 6)
        #expect(LogEventStream.completeUTF8Prefix(text, maximum: 8) == 6)
        #expect(LogEventStream.completeUTF8Prefix([0xF0], maximum: 100) == 0, "a lone lead byte waits for the rest")
        #expect(LogEventStream.completeUTF8Prefix([0xF0], maximum: 1) == 1, "but never stalls a full event")
        #expect(LogEventStream.completeUTF8Prefix([0x80, 0x80], maximum: 100) == 2, "invalid bytes go out")
    }

    @Test func aResumeStartsAtTheLastEventID() {
        #expect(LogEventStream.Start(lastEventID: "3:1024", from: "tail") == .resume(attempt: 3, offset: 1024))
        #expect(LogEventStream.Start(lastEventID: nil, from: nil) == .tail)
        #expect(LogEventStream.Start(lastEventID: "", from: "start") == .beginning)
        for bad in ["3", "a:1", "1:-5", "1:2:3", "99999999999:0"] {
            #expect(LogEventStream.Start(lastEventID: bad, from: nil) == nil, "\(bad)")
        }
        #expect(LogEventStream.Start(lastEventID: nil, from: "elsewhere") == nil)
        let event = LogEventStream.event("log", ["t": "a\nb"], id: "1:3")
        #expect(event == "id: 1:3\nevent: log\ndata: {\"t\":\"a\\nb\"}\n\n")
    }

    @Test func sessionsExpireAreBoundedAndCheckTheirCSRFToken() {
        let sessions = WebSessions(maximumSessions: 3, idleTimeout: 60, lifetime: 600)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let (first, session) = sessions.create(token: "gat_a", now: t0)
        #expect(first.utf8.count == 43 && session.csrf.utf8.count == 43 && first != session.csrf)
        #expect(sessions.session(id: first, now: t0.addingTimeInterval(59))?.token == "gat_a")
        #expect(sessions.session(id: first, now: t0.addingTimeInterval(118)) != nil, "use keeps it alive")
        #expect(sessions.session(id: first, now: t0.addingTimeInterval(179)) == nil, "idle too long")
        var ids: [String] = []
        for n in 0..<5 { ids.append(sessions.create(token: "gat_\(n)", now: t0.addingTimeInterval(Double(n))).id) }
        #expect(sessions.count == 3 && sessions.session(id: ids[0], now: t0.addingTimeInterval(5)) == nil)
        let (old, _) = sessions.create(token: "gat_old", now: t0)
        #expect(sessions.session(id: old, now: t0.addingTimeInterval(601)) == nil, "lifetime ends even with use")
        #expect(WebSessions.matches("abc", "abc") && !WebSessions.matches("abd", "abc") && !WebSessions.matches(nil, "abc"))
        #expect(WebSessions.cookie("gantry_session", in: "a=1; gantry_session=xyz; b=2") == "xyz")
        #expect(WebSessions.cookie("gantry_session", in: "gantry_sessionx=1") == nil)
        #expect(WebSessions.cookie("gantry_session", in: "gantry_session=a; gantry_session=b") == nil, "a tossed twin")
        #expect(WebSessions(secureCookies: true).cookieName == "__Host-gantry_session")
    }

    @Test func oneTokenCannotPushOtherSessionsOut() {
        let sessions = WebSessions(maximumSessions: 100)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let (other, _) = sessions.create(token: "gat_other", now: t0)
        var mine: [String] = []
        for n in 0..<200 { mine.append(sessions.create(token: "gat_mine", now: t0.addingTimeInterval(Double(n + 1))).id) }
        #expect(sessions.count == WebSessions.maximumPerToken + 1)
        #expect(sessions.session(id: other, now: t0.addingTimeInterval(300)) != nil)
        #expect(sessions.session(id: mine[0], now: t0.addingTimeInterval(300)) == nil)
        #expect(sessions.session(id: mine[199], now: t0.addingTimeInterval(300)) != nil)
    }

    @Test func changesMustComeFromThisOrigin() {
        #expect(WebSessions.isSameOrigin(secFetchSite: "same-origin", origin: "https://evil.example", host: "ci:7080"))
        #expect(!WebSessions.isSameOrigin(secFetchSite: "same-site", origin: nil, host: "ci:7080"), "a sibling subdomain")
        #expect(!WebSessions.isSameOrigin(secFetchSite: "cross-site", origin: nil, host: "ci:7080"))
        #expect(WebSessions.isSameOrigin(secFetchSite: nil, origin: "http://ci:7080", host: "ci:7080"))
        #expect(!WebSessions.isSameOrigin(secFetchSite: nil, origin: "http://evil:7080", host: "ci:7080"))
        #expect(!WebSessions.isSameOrigin(secFetchSite: nil, origin: "null", host: "ci:7080"))
        #expect(WebSessions.isSameOrigin(secFetchSite: nil, origin: nil, host: "ci:7080"), "not a browser")
        let limit = SignInLimit()
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        for _ in 0..<SignInLimit.perMinute { #expect(limit.admit("10.0.0.1", now: t0)) }
        #expect(!limit.admit("10.0.0.1", now: t0.addingTimeInterval(30)) && limit.admit("10.0.0.2", now: t0))
        #expect(limit.admit("10.0.0.1", now: t0.addingTimeInterval(61)))
    }

    /// Swift's `Character` is a grapheme cluster: `"` + U+0301 is one, and Mustache's own
    /// escaping lets it through, while a browser ends the attribute at the quote.
    @Test func quotesHiddenInGraphemeClustersAreEscapedInEveryPage() throws {
        let templates = try DashboardTemplates()
        let hostile = "x\"\u{301} id=\"agents-live\" data-live=\"/v1/x\" <\u{301}img src=x onerror=alert(1)>'\u{301}&\u{301}"
        #expect(ScalarHTMLContentType.escape(hostile).unicodeScalars.allSatisfy { !"\"<>'".unicodeScalars.contains($0) })
        let created = Date(timeIntervalSince1970: 1_800_000_000)
        let job = API.Job(
            id: hostile, pipelineId: hostile, key: hostile, name: hostile, state: "running", attempt: 1, agentId: hostile,
            exitStatus: nil, reason: hostile, dependsOn: [], createdAt: created, startedAt: created, finishedAt: nil, logBytes: 0)
        let pipeline = API.Pipeline(
            id: hostile, state: "running", createdAt: created, repository: hostile, commit: hostile, branch: hostile,
            jobs: [job], tag: hostile, message: hostile)
        var pipelinePage = Dashboard.pipelineView(pipeline, now: created)
        pipelinePage["csrf"] = hostile
        pipelinePage["user"] = hostile
        let summary = API.PipelineSummary(
            id: hostile, state: "running", createdAt: created, repository: hostile, commit: hostile, branch: hostile,
            tag: hostile, message: hostile, source: nil, rebuildOf: nil, submittedBy: hostile, jobCounts: [hostile: 1],
            startedAt: nil, finishedAt: nil)
        let pages: [(String, [String: Any])] = [
            ("pipeline", pipelinePage),
            ("pipelines", ["pipelines": [Dashboard.row(summary)], "branch": hostile, "repository": hostile, "user": hostile,
                "csrf": hostile, "live": true, "liveURL": hostile]),
            ("pipeline-rows", ["pipelines": [Dashboard.row(summary)]]),
            ("login", ["csrf": hostile, "next": hostile, "error": hostile]),
            ("error", ["heading": hostile, "message": hostile, "user": hostile]),
            ("agents-body", ["agents": [["id": hostile, "state": hostile, "labels": hostile, "jobs": [hostile], "notReady": hostile]],
                "demand": [["selector": hostile, "queued": 1, "running": 0, "wait": hostile, "agents": 0, "nobody": true]]]),
            ("job", ["id": hostile, "name": hostile, "key": hostile, "state": hostile, "agent": hostile, "pipelineID": hostile,
                "attempts": [["attempt": 1, "agentId": hostile, "state": hostile, "exitStatus": hostile, "reason": hostile, "jobID": hostile]]]),
        ]
        for (name, context) in pages {
            let html = templates.render(context, name)
            #expect(!html.isEmpty, "\(name)")
            // Compared by scalar: `String.contains` compares whole grapheme clusters.
            let scalars = Array(html.unicodeScalars)
            let leaks = zip(scalars, scalars.dropFirst()).filter { "\"<'&".unicodeScalars.contains($0.0) && $0.1 == "\u{301}" }
            #expect(leaks.isEmpty, "\(name) lets a quote or bracket with a combining mark through")
            #expect(!html.contains("onerror=alert(1)>"), "\(name)")
            #expect(!html.contains("style=\""), "\(name): no inline style (the CSP allows none)")
        }
    }

    @Test func signInGoesBackOnlyToDashboardPaths() {
        #expect(SignInRoutes.safeNext("/ui/jobs/1?from=start") == "/ui/jobs/1?from=start")
        for bad in [nil, "https://evil.example", "//evil.example/ui/", "/ui/../v1", "/v1/pipelines", "/ui/\\evil", "/ui/a b", "/ui/\u{7F}"] {
            let next = SignInRoutes.safeNext(bad)
            #expect(next == "/ui/pipelines" || next == bad, "\(String(describing: bad))")
            #expect(next.hasPrefix("/ui/") && !next.contains("//"))
        }
        #expect(SignInRoutes.safeNext("//evil.example") == "/ui/pipelines")
        #expect(SignInRoutes.safeNext("https://evil.example") == "/ui/pipelines")
    }

    @Test func aThousandJobPipelineRendersEscapedWithEveryJobAndEdge() throws {
        let templates = try DashboardTemplates()
        var jobs: [API.Job] = []
        let created = Date(timeIntervalSince1970: 1_800_000_000)
        jobs.append(
            API.Job(
                id: "j0", pipelineId: "p", key: "build", name: "<script>alert(1)</script>", state: "succeeded", attempt: 1,
                agentId: "h/1", exitStatus: 0, reason: nil, dependsOn: [], createdAt: created, startedAt: created,
                finishedAt: created.addingTimeInterval(3), logBytes: 10))
        for n in 1..<1000 {
            jobs.append(
                API.Job(
                    id: "j\(n)", pipelineId: "p", key: "test", name: "Test \(n)", state: n % 2 == 0 ? "queued" : "running",
                    attempt: 1, agentId: nil, exitStatus: nil, reason: nil, dependsOn: ["build"], createdAt: created,
                    startedAt: nil, finishedAt: nil, logBytes: 0))
        }
        let pipeline = API.Pipeline(
            id: "p", state: "running", createdAt: created, repository: "https://git.example.com/a.git", commit: "abc",
            branch: "main", jobs: jobs)
        var view = Dashboard.pipelineView(pipeline, now: created)
        view["csrf"] = "token-value"
        view["user"] = "alice"
        let html = templates.render(view, "pipeline")
        #expect(html.components(separatedBy: "class=\"job ").count - 1 == 1000)
        #expect(html.components(separatedBy: "<path d=").count - 1 == 999)
        #expect(!html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;"))
        #expect(html.contains("<meta name=\"gantry-csrf\" content=\"token-value\">"))
    }
}
