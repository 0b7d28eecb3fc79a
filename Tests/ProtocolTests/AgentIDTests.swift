import GantryProtocol
import Testing

@Suite("Agent ids", .timeLimit(.minutes(1)))
struct AgentIDTests {
    func problem(_ text: String) -> String? {
        do {
            _ = try AgentID(parsing: text)
            return nil
        } catch {
            return error.problem
        }
    }

    @Test func aNameAndASlot() throws {
        let id = try AgentID(parsing: "vm1/1")
        #expect(id.name == "vm1" && id.slot == "1")
        #expect(id.description == "vm1/1")
        #expect(try AgentID(name: "build-07.ci", slot: "scale-3").description == "build-07.ci/scale-3")
        #expect(try AgentID(name: "A_b.c-d", slot: "pid-4242").description == "A_b.c-d/pid-4242")
    }

    @Test func aBareNameIsAnId() throws {
        let id = try AgentID(parsing: "vm1")
        #expect(id.name == "vm1" && id.slot == nil)
        #expect(id.description == "vm1")
    }

    @Test func emptyDotAndDotDotPartsAreRefused() {
        #expect(problem("")?.contains("the name must be 1 to 64") == true)
        #expect(problem("/1")?.contains("the name") == true)
        #expect(problem("vm1/")?.contains("the slot must be 1 to 64") == true)
        #expect(problem("../x")?.contains("'.' or '..'") == true)
        #expect(problem("vm1/..")?.contains("'.' or '..'") == true)
        #expect(problem("vm1/.")?.contains("'.' or '..'") == true)
        #expect(problem(".hidden/1") == nil, "a leading dot alone is a plain name")
    }

    @Test func aSlotHoldsNoSlashSoSlotsCannotCollide() {
        // The slot's spool dir is <name>_<slot>: "a/b" and "a_b" would share one.
        #expect(problem("vm1/a/b")?.contains("the slot may contain only") == true)
        #expect(problem("vm1//1") != nil)
    }

    @Test func whitespaceControlCharactersAndOtherPunctuationAreRefused() {
        for text in ["vm 1/1", "vm1/1 ", "vm1/1\nforged", "vm1/ü", "vm1/a:b", "vm1/{slot}", "vm1\t/1"] {
            #expect(problem(text)?.contains("may contain only letters, digits") == true, "\(text)")
        }
    }

    @Test func eachPartIsAtMost64Characters() {
        let longest = String(repeating: "n", count: 64)
        #expect(problem("\(longest)/\(longest)") == nil)
        #expect(problem("\(longest)n/1")?.contains("the name must be 1 to 64") == true)
        #expect(problem("vm1/\(longest)s")?.contains("the slot must be 1 to 64") == true)
    }

    @Test func nameProblemChecksAnEnrolledName() {
        #expect(AgentID.nameProblem("vm1") == nil)
        #expect(AgentID.nameProblem("vm1/1") != nil)
        #expect(AgentID.nameProblem("") != nil)
    }

    @Test func theErrorQuotesTheIdSafely() {
        do {
            _ = try AgentID(parsing: "vm1/a\nb")
            Issue.record("parsed")
        } catch {
            #expect("\(error)".contains("'vm1/a\\nb' is not a valid agent id"), "\(error)")
        }
    }
}
