import GantryProtocol
import Testing

@Suite("HOST:PORT", .timeLimit(.minutes(1)))
struct HostPortTests {
    func parsed(_ text: String, allowingPortZero: Bool = false) -> HostPort? {
        try? HostPort(parsing: text, allowingPortZero: allowingPortZero)
    }

    func problem(_ text: String, allowingPortZero: Bool = false) -> String? {
        do {
            _ = try HostPort(parsing: text, allowingPortZero: allowingPortZero)
            return nil
        } catch {
            return error.problem
        }
    }

    @Test func namesIPv4AndBracketedIPv6() {
        #expect(parsed("ci.example.com:7070") == HostPort(host: "ci.example.com", port: 7070))
        #expect(parsed("10.0.0.5:1") == HostPort(host: "10.0.0.5", port: 1))
        #expect(parsed("[::1]:7070") == HostPort(host: "::1", port: 7070))
        #expect(parsed("[fe80::1%eth0]:65535") == HostPort(host: "fe80::1%eth0", port: 65535))
    }

    @Test func printsWhatItParses() {
        for text in ["ci.example.com:7070", "127.0.0.1:0", "[::1]:7070", "[2001:db8::5]:443"] {
            #expect(parsed(text, allowingPortZero: true)?.description == text)
        }
        #expect(HostPort(host: "::1", port: 1).description == "[::1]:1")
    }

    @Test func anUnbracketedIPv6AddressIsAmbiguous() {
        #expect(problem("::1:7070")?.contains("brackets") == true)
        #expect(problem("fe80::1")?.contains("brackets") == true)
    }

    @Test func aMissingPortOrHostIsRefused() {
        #expect(problem("ci.example.com")?.contains("no ':PORT'") == true)
        #expect(problem("ci.example.com:")?.contains("port is missing") == true)
        #expect(problem("[::1]")?.contains("no ':PORT'") == true)
        #expect(problem(":7070")?.contains("host is missing") == true)
        #expect(problem("[]:7070")?.contains("host is missing") == true)
        #expect(problem("")?.isEmpty == false)
    }

    @Test func thePortMustBeInRange() {
        #expect(problem("h:0")?.contains("1 to 65535") == true)
        #expect(parsed("h:0", allowingPortZero: true) == HostPort(host: "h", port: 0))
        #expect(problem("h:65536") != nil)
        #expect(problem("h:65536", allowingPortZero: true) != nil)
        #expect(problem("h:99999999999999999999") != nil, "no overflow")
        #expect(problem("h:-1") != nil)
        #expect(problem("h:+80") != nil, "digits only")
        #expect(problem("h:http") != nil)
        #expect(parsed("h:00080") == HostPort(host: "h", port: 80))
    }

    @Test func whitespaceAndStrayBracketsAreRefused() {
        #expect(problem(" h:80")?.contains("whitespace") == true)
        #expect(problem("h:80 ")?.contains("whitespace") == true)
        #expect(problem("h :80") != nil)
        #expect(problem("h\n:80")?.contains("control") == true)
        #expect(problem("[::1:80")?.contains("brackets") == true)
        #expect(problem("::1]:80")?.contains("brackets") == true)
        #expect(problem("[[::1]]:80")?.contains("brackets") == true)
        #expect(problem("a[b]:80")?.contains("brackets") == true)
    }

    @Test func theErrorNamesTheTextAndTheProblem() {
        do {
            _ = try HostPort(parsing: "ci.example.com")
            Issue.record("parsed")
        } catch {
            #expect("\(error)" == "'ci.example.com' is not HOST:PORT: there is no ':PORT'")
        }
    }
}
