import FuzzSupport
import GantryPipeline

/// Bytes (as UTF-8, invalid sequences replaced) → `DurationParser.seconds`, the parser of
/// every `timeout` and `cancel_grace`, and `PipelineParser.parseDuration`, its public
/// wrapper.
///
/// Properties checked (a violation traps):
/// - the two entry points agree;
/// - an accepted duration is not negative and was written only with ASCII digits and the
///   units h, m, s;
/// - it survives a round trip through text: `String(seconds)` and the canonical
///   `XhYmZs` spelling both parse back to the same number of seconds.
@main
enum DurationFuzz {
    static func main() {
        Fuzzer.main(seeds: seeds, testOneInput: { data, count in
            DurationFuzz.run(Fuzzer.bytes(data, count))
            return 0
        })
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        let seconds: Int?
        do {
            seconds = try DurationParser.seconds(text)
        } catch {
            seconds = nil
        }
        let wrapped = PipelineParser.parseDuration(text)
        if wrapped != seconds { Fuzzer.fail("parseDuration(\(text.debugDescription)) is \(String(describing: wrapped)), DurationParser says \(String(describing: seconds))") }
        guard let seconds else { return }

        if seconds < 0 { Fuzzer.fail("\(text.debugDescription) parsed to \(seconds) s") }
        if !text.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == UInt8(ascii: "h") || $0 == UInt8(ascii: "m") || $0 == UInt8(ascii: "s") }) {
            Fuzzer.fail("\(text.debugDescription) was accepted as \(seconds) s")
        }

        let plain = String(seconds)
        if plain.utf8.count <= DurationParser.maximumDigits {
            if let again = PipelineParser.parseDuration(plain), again == seconds {
            } else {
                Fuzzer.fail("\(text.debugDescription) is \(seconds) s, but \(plain.debugDescription) does not parse back to it")
            }
        }
        let canonical = canonicalSpelling(seconds)
        if canonical.utf8.count <= DurationParser.maximumLength, seconds / 3600 < 1_000_000_000 {
            if let again = PipelineParser.parseDuration(canonical), again == seconds {
            } else {
                Fuzzer.fail("\(text.debugDescription) is \(seconds) s, but \(canonical.debugDescription) does not parse back to it")
            }
        }
    }

    /// `1h30m`, `45s`, `2h5s`, `0s`: the spelling the parser's documentation uses.
    static func canonicalSpelling(_ seconds: Int) -> String {
        let (hours, rest) = seconds.quotientAndRemainder(dividingBy: 3600)
        let (minutes, secs) = rest.quotientAndRemainder(dividingBy: 60)
        var text = ""
        if hours > 0 { text += "\(hours)h" }
        if minutes > 0 { text += "\(minutes)m" }
        if secs > 0 || text.isEmpty { text += "\(secs)s" }
        return text
    }

    static func seeds() throws -> [Seed] {
        let texts = [
            "90", "90s", "15m", "2h", "1h30m", "1h0m5s", "0", "0s", "604800", "168h",
            "999999999h999999999m999999999s", "9999999999999999h", "5000000000", "1m1h", "1h1h", "30m5",
            "٣s", "½h", " 5m", "5 m", "+5", "-5", "1.5h", "1d", "h",
        ]
        return texts.enumerated().map { Seed("duration-\($0.offset)", Array($0.element.utf8)) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    DurationFuzz.run(Fuzzer.bytes(data, count))
    return 0
}
