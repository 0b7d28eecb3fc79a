import Foundation
import GantryPipeline
import GantryProtocol
import GantryTransferRules

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A project's settings, checked where they are decoded (`POST /v1/projects`): a name
/// that can be a path segment, a repository URL the agents accept, a pipeline file that
/// is a plain relative path (it becomes part of the bootstrap step's command), and
/// bounded lists of branch and tag patterns.
public struct ProjectSettings: Sendable, Equatable {
    public var name: String
    public var repository: String
    public var pipelineFile: String
    public var branches: [String]
    public var tags: [String]
    public var cancelSuperseded: Bool
    public var runAs: String?

    public static let maximumPatterns = 50
    public static let maximumPatternBytes = 255

    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public init(_ request: API.CreateProject) throws(Invalid) {
        guard Self.isValidName(request.name) else {
            throw Invalid(description: "a project name is 1-64 lower-case ASCII letters, digits, `-`, `_` or `.`, starting with a letter or digit")
        }
        do {
            _ = try RepositoryAddress(parsing: request.repository)
        } catch {
            throw Invalid(description: "repository: \(error.description)")
        }
        let file = request.pipelineFile ?? PipelineBootstrap.repositoryFile
        guard Self.isPlainPath(file) else {
            throw Invalid(
                description: "the pipeline file must be a relative path of ASCII letters, digits, `.`, `_`, `-` and `/` "
                    + "(no `..`, no empty segment), at most 255 bytes, found `\(file.logSafe(maximum: 100))`")
        }
        for (what, patterns) in [("branch", request.branches ?? []), ("tag", request.tags ?? [])] {
            guard patterns.count <= Self.maximumPatterns else { throw Invalid(description: "at most \(Self.maximumPatterns) \(what) patterns") }
            for pattern in patterns
            where pattern.isEmpty || pattern.utf8.count > Self.maximumPatternBytes
                || pattern.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            {
                throw Invalid(description: "a \(what) pattern is 1-\(Self.maximumPatternBytes) bytes without control characters")
            }
        }
        name = request.name
        repository = request.repository
        pipelineFile = file
        branches = request.branches ?? []
        tags = request.tags ?? []
        cancelSuperseded = request.cancelSuperseded ?? false
        runAs = request.runAs
    }

    /// The repository URL with its `user[:password]@` as `***@`: a project's URL is shown
    /// to every viewer and written to the audit log, and a token in it must not be.
    public static func redacted(_ url: String) -> String {
        guard let address = try? RepositoryAddress(parsing: url), !address.userinfo.isEmpty,
            let range = url.firstRange(of: address.userinfo + "@")
        else { return url }
        var text = url
        text.replaceSubrange(range, with: "***@")
        return text
    }

    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), let first = bytes.first, isLowerAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte)
    }

    /// Relative, segments of `[A-Za-z0-9._-]` that are not `.` or `..`: safe to put in a
    /// shell command unquoted.
    static func isPlainPath(_ path: String) -> Bool {
        guard (1...255).contains(path.utf8.count) else { return false }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return segments.allSatisfy { segment in
            // Not `-…`: the path is an argument of `gantry pipeline upload`, not an option.
            !segment.isEmpty && segment != "." && segment != ".." && !segment.hasPrefix("-")
                && segment.utf8.allSatisfy { byte in
                    (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                        || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
                }
        }
    }

    /// Whether a push to `target` starts a build: a branch when no branch pattern is set
    /// or one matches, a tag only when a tag pattern matches. Patterns are shell globs
    /// (`fnmatch(3)`), where `*` also matches `/`: `release/*` matches `release/1.2`.
    public static func accepts(_ target: PushEvent.Target, branches: [String], tags: [String]) -> Bool {
        switch target {
        case .branch(let branch): return branches.isEmpty || branches.contains { fnmatch($0, branch, 0) == 0 }
        case .tag(let tag): return tags.contains { fnmatch($0, tag, 0) == 0 }
        }
    }
}
