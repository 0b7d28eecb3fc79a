import GantryProtocol
import Testing

@Suite("Label sets", .timeLimit(.minutes(1)))
struct LabelSetTests {
    func parsed(_ text: String) -> [String: String]? {
        try? LabelSet.parse(text).get()
    }

    func problem(_ text: String) -> String? {
        switch LabelSet.parse(text) {
        case .success: return nil
        case .failure(let error): return error.problem
        }
    }

    @Test func pairsSeparatedByCommas() {
        #expect(parsed("") == [:])
        #expect(parsed("os=linux") == ["os": "linux"])
        #expect(parsed("os=linux,queue=default") == ["os": "linux", "queue": "default"])
        #expect(parsed("team/queue=deploy") == ["team/queue": "deploy"])
    }

    @Test func anEqualsSignInAValueIsPartOfTheValue() {
        #expect(parsed("k=a=b") == ["k": "a=b"])
        #expect(parsed("k==") == ["k": "="])
    }

    @Test func anEmptyValueIsAValue() {
        #expect(parsed("k=") == ["k": ""])
    }

    @Test func whitespaceAroundKeysAndValuesAndEmptyPairsAreDropped() {
        #expect(parsed(" os = linux , queue=default ,") == ["os": "linux", "queue": "default"])
        #expect(parsed("a=1,,b=2") == ["a": "1", "b": "2"])
        #expect(parsed(" , ") == [:])
        #expect(parsed("note=two words") == ["note": "two words"])
    }

    @Test func anEmptyKeyOrAPairWithoutEqualsIsRefused() {
        #expect(problem("=linux")?.contains("key is empty") == true)
        #expect(problem(" =linux")?.contains("key is empty") == true)
        #expect(problem("os")?.contains("not k=v") == true)
        #expect(problem("os=linux,queue")?.contains("not k=v") == true)
    }

    @Test func aKeyGivenTwiceIsRefused() {
        #expect(problem("os=linux,os=macos")?.contains("given twice") == true)
        #expect(problem("os=linux, os =linux")?.contains("given twice") == true)
    }

    @Test func keysAndValuesFollowTheWireLimits() {
        #expect(problem("a b=1")?.contains("whitespace") == true)
        #expect(problem("a\u{7}=1")?.contains("control") == true)
        #expect(problem("k=a\u{1}b")?.contains("control") == true)
        #expect(problem("\(String(repeating: "k", count: 64))=v")?.contains("more than 63") == true)
        #expect(parsed("\(String(repeating: "k", count: 63))=v") != nil)
        #expect(problem("k=\(String(repeating: "v", count: 256))")?.contains("more than 255") == true)
        #expect(problem("../x=1")?.contains("'..'") == true)
        #expect(problem("a//b=1") != nil)
        let many = (0...64).map { "k\($0)=v" }.joined(separator: ",")
        #expect(problem(many)?.contains("more than 64 labels") == true)
    }

    @Test func formatSortsByKeyAndParsesBack() {
        let labels = ["queue": "default", "os": "linux", "arch": "x86_64"]
        #expect(LabelSet.format(labels) == "arch=x86_64,os=linux,queue=default")
        #expect(parsed(LabelSet.format(labels)) == labels)
        #expect(LabelSet.format([:]) == "")
    }

    @Test func theErrorNamesTheOffendingPair() {
        switch LabelSet.parse("os=linux,=x") {
        case .success: Issue.record("parsed")
        case .failure(let error): #expect("\(error)".contains("'=x'"))
        }
    }
}
