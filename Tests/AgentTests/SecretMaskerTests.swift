import Foundation
@testable import GantryAgent
import Testing

/// Secret values never leave the agent in a step's log, in any form the masker knows,
/// however the output is split into writes and chunks (issue 12).
@Suite("Secret masker", .timeLimit(.minutes(1)))
struct SecretMaskerTests {
    /// Masks `text` fed in the given pieces, then finished.
    func stream(_ secrets: [String], _ pieces: [[UInt8]]) -> [UInt8] {
        var masker = SecretMasker(secrets: secrets)
        var out: [UInt8] = []
        for piece in pieces { out += masker.feed(piece) }
        return out + masker.finish()
    }

    func masked(_ secrets: [String], _ text: String) -> String {
        String(decoding: stream(secrets, [Array(text.utf8)]), as: UTF8.self)
    }

    /// The reference: every occurrence of every form, overlapping ones merged, each run
    /// replaced by `***`, computed by brute force on the whole text.
    func reference(_ secrets: [String], _ text: [UInt8]) -> [UInt8] {
        let forms = SecretForms.forms(of: secrets)
        var covered: [(Int, Int)] = []
        for form in forms where form.count <= text.count {
            for start in 0...(text.count - form.count) where text[start..<(start + form.count)].elementsEqual(form) {
                covered.append((start, start + form.count))
            }
        }
        covered.sort { $0.0 < $1.0 }
        var runs: [(Int, Int)] = []
        for (start, end) in covered {
            if let last = runs.last, start < last.1 {
                runs[runs.count - 1].1 = max(last.1, end)
            } else {
                runs.append((start, end))
            }
        }
        var out: [UInt8] = []
        var position = 0
        for (start, end) in runs {
            out += text[position..<start]
            out += SecretMasker.replacement
            position = end
        }
        return out + text[position...]
    }

    static let secret = "gantry-Secret/value+42"

    @Test func theRawValueIsMasked() {
        #expect(masked([Self.secret], "token=\(Self.secret) done") == "token=*** done")
        #expect(masked([Self.secret], "\(Self.secret)\(Self.secret)") == "******")
        #expect(masked([Self.secret], "no secret here") == "no secret here")
    }

    @Test func base64AndBase64URLOfTheValueAreMasked() {
        let data = Data(Self.secret.utf8)
        let standard = data.base64EncodedString()
        let url = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        #expect(masked([Self.secret], "b64: \(standard)\n") == "b64: ***\n")
        let unpadded = url.replacingOccurrences(of: "=", with: "")
        #expect(masked([Self.secret], "url: \(unpadded)\n") == "url: ***\n")
        #expect(!masked([Self.secret], "padded url: \(url)").contains(unpadded.dropLast()))
    }

    /// `echo "user:$SECRET" | base64`: inside a longer base64 text the value starts at byte
    /// offset 0, 1 or 2 of a 3-byte group; the characters that only depend on it are masked.
    @Test func base64OfTheValueInsideALongerBase64TextIsMaskedAtEachAlignment() {
        for prefix in ["", "u", "us", "use", "user:", "admin:"] {
            for suffix in ["", "\n", "x", "xy", ":trailing"] {
                let plain = Data((prefix + Self.secret + suffix).utf8)
                let standard = plain.base64EncodedString()
                let url = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                for encoded in [standard, url] {
                    let output = masked([Self.secret], "Authorization: Basic \(encoded)\n")
                    #expect(output.contains("***"), "\(prefix)|\(suffix)")
                    // At most the 3 characters before and the one after it (shared with the
                    // context) remain of the value's encoding.
                    let visible = output.replacingOccurrences(of: "Authorization: Basic ", with: "")
                        .replacingOccurrences(of: "***", with: "").replacingOccurrences(of: "\n", with: "")
                    #expect(visible.count <= 4 + (prefix.count + 2) / 3 * 4 + (suffix.count + 2) / 3 * 4, "\(output)")
                }
            }
        }
        // The offsets 0, 1 and 2 explicitly: each inner form is found where it occurs.
        for offset in 0..<3 {
            let plain = Data(Array(repeating: UInt8(ascii: "A"), count: offset) + Array(Self.secret.utf8) + Array("tail".utf8))
            let output = masked([Self.secret], plain.base64EncodedString())
            let inner = String(decoding: SecretForms.base64Forms(of: Array(Self.secret.utf8))[1 + offset], as: UTF8.self)
            #expect(plain.base64EncodedString().contains(inner))
            #expect(output.contains("***") && !output.contains(inner), "offset \(offset): \(output)")
        }
    }

    @Test func urlEncodedFormsAreMasked() {
        let secret = "p@ss word/Z9:x~y"
        for encoded in ["p%40ss%20word%2FZ9%3Ax~y", "p%40ss%20word%2fZ9%3ax~y", "p%40ss+word%2FZ9%3Ax~y", "p%40ss+word%2fZ9%3ax~y"] {
            #expect(masked([secret], "https://h/?q=\(encoded)&n=1") == "https://h/?q=***&n=1", "\(encoded)")
        }
        let foundation = secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~")))
        #expect(masked([secret], "q=\(foundation ?? "")") == "q=***")
    }

    @Test func jsonEscapedFormsAreMasked() throws {
        let secret = "quo\"te back\\slash /slash\nline\ttab\u{01}ctl é 🔑"
        let encoded = String(decoding: try JSONEncoder().encode([secret]), as: UTF8.self)
        #expect(masked([secret], encoded) == "[\"***\"]", "\(encoded)")
        let escapes = #"quo\"te back\\slash /slash\nline\ttab\u0001ctl é 🔑"#
        #expect(masked([secret], "{\"k\":\"\(escapes)\"}") == "{\"k\":\"***\"}")
        let ascii = #"quo\"te back\\slash \/slash\nline\ttab\u0001ctl \u00e9 \ud83d\udd11"#
        #expect(masked([secret], ascii) == "***")
        let upperHex = #"quo\"te back\\slash \/slash\nline\ttab\u0001ctl \u00E9 \uD83D\uDD11"#
        #expect(masked([secret], upperHex) == "***")
        let goStyle = #"a\u003cb\u0026c"#
        #expect(masked(["a<b&c-secret"], goStyle + "-secret") == "***")
    }

    @Test func valueWithTrailingNewlineIsAlsoMaskedTrimmed() {
        #expect(masked(["api-token-123456\n"], "echo: api-token-123456 end") == "echo: *** end")
    }

    /// A value split across two writes, at every possible byte, in every form.
    @Test func aValueSplitAtEveryByteBoundaryIsMasked() {
        let forms = SecretForms.forms(of: [Self.secret])
        #expect(forms.count >= 8, "raw, base64 forms, URL- and JSON-escaped")
        for form in forms {
            let text = Array("before ".utf8) + form + Array(" after".utf8)
            let expected = Array("before *** after".utf8)
            for split in 0...text.count {
                #expect(stream([Self.secret], [Array(text[..<split]), Array(text[split...])]) == expected)
            }
            // And one byte per write.
            #expect(stream([Self.secret], text.map { [$0] }) == expected)
        }
    }

    @Test func overlappingAndAdjacentSecretsLeakNoByte() {
        let first = "abcdefgh12"
        let second = "gh12345678"
        #expect(masked([first, second], "xx abcdefgh12345678 yy") == "xx *** yy")
        #expect(masked([first, second], "xx abcdefgh12gh12345678 yy") == "xx ****** yy")
        // One inside the other.
        #expect(masked(["outer-secret-inner-secret-end", "inner-secret"], "[outer-secret-inner-secret-end]") == "[***]")
        #expect(masked(["outer-secret-inner-secret-end", "inner-secret"], "[outer-secret-inner-secret-nope]") == "[outer-secret-***-nope]")
        // A periodic value overlapping itself.
        #expect(masked(["abababab"], "xabababababay") == "x***ay")
    }

    @Test func aPrefixOfASecretAtTheEndOfTheStreamIsEmittedOnFinish() {
        var masker = SecretMasker(secrets: [Self.secret])
        let emitted = masker.feed(Array("log: gantry-Sec".utf8))
        #expect(String(decoding: emitted, as: UTF8.self) == "log: ")
        #expect(masker.heldBackCount == 10)
        #expect(String(decoding: masker.finish(), as: UTF8.self) == "gantry-Sec")
        #expect(masker.heldBackCount == 0)
        // The masker starts a fresh stream after `finish`.
        #expect(String(decoding: masker.feed(Array("\(Self.secret)\n".utf8)) + masker.finish(), as: UTF8.self) == "***\n")
    }

    @Test func outputWithoutAPossibleSecretIsNotHeldBack() {
        var masker = SecretMasker(secrets: [Self.secret])
        #expect(masker.feed(Array("plain line\n".utf8)) == Array("plain line\n".utf8))
        #expect(masker.heldBackCount == 0)
    }

    @Test func withoutSecretsTheInputIsHandedBackUnchanged() {
        for secrets in [[], [""], ["abc"], ["ab\n"]] {
            var masker = SecretMasker(secrets: secrets)
            #expect(!masker.isActive)
            let input = Array("anything at all \u{0}\u{ff}".utf8)
            input.withUnsafeBytes { bytes in
                var calls = 0
                masker.feed(bytes) { out in
                    calls += 1
                    #expect(out.baseAddress == bytes.baseAddress && out.count == bytes.count, "the same memory, no copy")
                }
                #expect(calls == 1)
            }
            #expect(masker.finish().isEmpty)
        }
    }

    @Test func longSecretsAreVerifiedPastTheAutomatonsHead() {
        // 4 KiB that does not repeat itself (a PEM key, a kubeconfig).
        var random = SeededGenerator(state: 5)
        let long = String((0..<4096).map { _ in "0123456789abcdefghijklmnopqrstuvwxyz".randomElement(using: &random) ?? "x" }) + "-end"
        #expect(masked([long], "a \(long) b") == "a *** b")
        let almost = String(long.dropLast())
        #expect(masked([long], "a \(almost)") == "a \(almost)")
        let base64 = Data(long.utf8).base64EncodedString()
        #expect(masked([long], base64) == "***")
    }

    /// A value that repeats itself, in output that repeats it too, would start a new
    /// comparison at every byte; past a bound the oldest is masked as if it matched, so
    /// this stays fast and leaks nothing, at the price of masking up to one value's length
    /// more than the value.
    @Test func aSelfRepeatingValueInRepeatingOutputStaysBoundedAndLeaksNothing() {
        let value = String(repeating: "ab", count: 2048)
        let text = Array(("start " + String(repeating: "ab", count: 50_000) + " end" + String(repeating: ".", count: 5000)).utf8)
        let started = ContinuousClock.now
        let pieces = stride(from: 0, to: text.count, by: 4096).map { Array(text[$0..<min(text.count, $0 + 4096)]) }
        let output = String(decoding: stream([value], pieces), as: UTF8.self)
        #expect(output.hasPrefix("start ***") && !output.contains("abab") && output.hasSuffix("...."))
        #expect(output.count < 6 + 3 + 4 + 5000)
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func messagesAreMaskedAsAWhole() {
        let masker = SecretMasker(secrets: [Self.secret])
        #expect(masker.masking("failed: \(Self.secret)") == "failed: ***")
    }

    /// Streaming equals masking the concatenation at once, which equals the brute-force
    /// reference, on texts dense with partial and overlapping matches.
    @Test func streamingMatchesMaskingTheWholeTextOnRandomInput() {
        var random = SeededGenerator(state: 12)
        let alphabet = Array("abc=+/\\\"%2 ".utf8)
        func randomBytes(_ count: Int) -> [UInt8] {
            (0..<count).map { _ in alphabet.randomElement(using: &random) ?? 0 }
        }
        for round in 0..<300 {
            let secrets = (0..<Int.random(in: 1...4, using: &random)).map { _ in
                String(decoding: randomBytes(Int.random(in: 4...24, using: &random)), as: UTF8.self)
            }
            let forms = SecretForms.forms(of: secrets)
            var text: [UInt8] = []
            for _ in 0..<Int.random(in: 1...12, using: &random) {
                text += randomBytes(Int.random(in: 0...12, using: &random))
                if let form = forms.randomElement(using: &random) {
                    // Sometimes only part of a form: a prefix that never completes.
                    text += Bool.random(using: &random) ? form : Array(form.prefix(Int.random(in: 0...form.count, using: &random)))
                }
            }
            var pieces: [[UInt8]] = []
            var position = 0
            while position < text.count {
                let size = min(text.count - position, Int.random(in: 0...9, using: &random))
                pieces.append(Array(text[position..<(position + size)]))
                position += size
            }
            let whole = stream(secrets, [text])
            #expect(stream(secrets, pieces) == whole, "round \(round)")
            #expect(whole == reference(secrets, text), "round \(round): \(secrets)")
        }
    }
}
