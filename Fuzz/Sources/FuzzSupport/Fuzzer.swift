import CLibFuzzer
import Foundation

/// One input of a target's seed corpus.
public struct Seed: Sendable {
    public var name: String
    public var bytes: [UInt8]

    public init(_ name: String, _ bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// libFuzzer's per-input callback.
public typealias TestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

public enum Fuzzer {
    /// The `@main` of every target.
    ///
    /// `TARGET --write-seeds=DIR` writes the target's seed corpus (made by the real
    /// encoders) into DIR and exits; `scripts/fuzz --write-seeds` uses it to regenerate
    /// `Fuzz/Corpus/`. Anything else goes to libFuzzer unchanged (`-help=1` lists its flags).
    public static func main(seeds: () throws -> [Seed], testOneInput: TestOneInput) -> Never {
        for argument in CommandLine.arguments.dropFirst() where argument.hasPrefix("--write-seeds=") {
            let directory = URL(fileURLWithPath: String(argument.dropFirst("--write-seeds=".count)))
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                let all = try seeds()
                for seed in all {
                    try Data(seed.bytes).write(to: directory.appendingPathComponent(seed.name))
                }
                print("wrote \(all.count) seeds to \(directory.path)")
                exit(0)
            } catch {
                FileHandle.standardError.write(Data("cannot write seeds: \(error)\n".utf8))
                exit(1)
            }
        }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
    }

    /// The input as a buffer pointer (libFuzzer passes a null pointer for the empty input).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ count: Int) -> UnsafeRawBufferPointer {
        guard let data, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: data, count: count)
    }

    /// Stops the process with a message libFuzzer records next to the reproducer: a
    /// property the harness checks does not hold.
    public static func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
        fatalError("fuzz property violated: \(message)", file: file, line: line)
    }
}
