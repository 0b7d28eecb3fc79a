import GantryTransferRules

/// What a cache archive may hold, judged from tar's own listing of it
/// (`tar --quoting-style=c --numeric-owner -tvzf -`, one line per member) before anything
/// is unpacked. The listing comes from the same tar, and the same digest-checked bytes,
/// that the restore then unpacks, so no second parser can disagree with it.
///
/// Refused, and the whole cache with it (nothing is unpacked):
/// - a member that is not under one of the step's `cache.paths`: a poisoned cache must not
///   overwrite the checked-out sources or anything else of the work dir;
/// - an absolute member, or one with a `..` (or `.`, or empty) segment;
/// - a member of any type but a file, a directory, a symbolic link or a hard link;
/// - a symbolic link whose target is absolute or climbs out of the work dir;
/// - a hard link whose target is not itself a valid member under the paths;
/// - a member (or hard link target) under a symbolic link of the archive, whichever comes
///   first (`a -> /etc`, then `a/x`);
/// - more than `maximumMembers` members, or members whose sizes add up to more than
///   `maximumBytes` (a gzip bomb).
///
/// Directories already in the work dir are checked by the caller (`parentsToCheck`).
struct CacheArchiveCheck {
    /// One line of the listing.
    struct Member: Equatable {
        /// The first character of the mode: `-` file, `d` directory, `l` symbolic link,
        /// `h` hard link, others refused.
        var type: UInt8
        var size: UInt64
        var name: [UInt8]
        /// A link's target.
        var target: [UInt8]?
    }

    let paths: [[UInt8]]
    let maximumMembers: Int
    let maximumBytes: UInt64
    private(set) var members = 0
    private(set) var bytes: UInt64 = 0
    /// Names of the archive's symbolic links.
    private var links: Set<[UInt8]> = []
    /// The directories members (and hard link targets) are unpacked into.
    private(set) var parents: Set<[UInt8]> = []

    init(paths: [String], maximumMembers: Int, maximumBytes: UInt64) {
        self.paths = paths.map { Array($0.utf8) }
        self.maximumMembers = maximumMembers
        self.maximumBytes = maximumBytes
    }

    /// Takes one line of the listing (without its newline).
    mutating func add(line: [UInt8]) throws(TransferError) {
        let member = try Self.parse(line)
        members += 1
        guard members <= maximumMembers else { throw .limit("the cache archive has more than \(maximumMembers) members") }
        let name = try checkedName(member.name)
        switch member.type {
        case UInt8(ascii: "-"):
            bytes += member.size
            guard bytes <= maximumBytes else {
                throw .limit("the cache archive unpacks to more than \(maximumBytes) bytes")
            }
        case UInt8(ascii: "d"):
            break
        case UInt8(ascii: "l"):
            guard let target = member.target, Self.staysInside(target, from: Self.parent(of: name) ?? []) else {
                throw .unsafePath("the cache archive's link `\(Self.text(name))` points outside the work dir")
            }
            links.insert(name)
        case UInt8(ascii: "h"):
            guard let target = member.target else { throw .unsafePath("the cache archive's hard link `\(Self.text(name))` has no target") }
            let checked = try checkedName(target)
            if let parent = Self.parent(of: checked) { parents.insert(parent) }
        default:
            throw .unsafePath("the cache archive's member `\(Self.text(name))` is not a file, directory or link")
        }
        if let parent = Self.parent(of: name) { parents.insert(parent) }
    }

    /// After the last line: refuses a member unpacked through one of the archive's links,
    /// and returns the directories to check in the work dir (sorted).
    func finish() throws(TransferError) -> [String] {
        for parent in parents {
            var prefix: [UInt8] = []
            for segment in parent.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
                if !prefix.isEmpty { prefix.append(UInt8(ascii: "/")) }
                prefix.append(contentsOf: segment)
                if links.contains(prefix) {
                    throw .unsafePath("the cache archive unpacks `\(Self.text(parent))/…` through its own link `\(Self.text(prefix))`")
                }
            }
        }
        return parents.map { Self.text($0) }.sorted()
    }

    /// `name` without a leading `./` or a trailing `/`, refused unless it is a relative
    /// path without `.`, `..` or empty segments under one of `paths`.
    private func checkedName(_ raw: [UInt8]) throws(TransferError) -> [UInt8] {
        var name = raw[...]
        while name.starts(with: [UInt8(ascii: "."), UInt8(ascii: "/")]) { name = name.dropFirst(2) }
        while name.last == UInt8(ascii: "/") { name = name.dropLast() }
        let shown = Self.text(Array(raw.prefix(200)))
        guard !name.isEmpty, name.first != UInt8(ascii: "/") else {
            throw .unsafePath("the cache archive has an absolute or empty member `\(shown)`")
        }
        for segment in name.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if segment.isEmpty || segment.elementsEqual([UInt8(ascii: ".")]) || segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                throw .unsafePath("the cache archive has a member with an empty, `.` or `..` segment: `\(shown)`")
            }
        }
        let underPaths = paths.contains { path in
            name.elementsEqual(path) || (name.starts(with: path) && name.count > path.count && name[name.startIndex + path.count] == UInt8(ascii: "/"))
        }
        guard underPaths else {
            throw .unsafePath("the cache archive has `\(shown)`, which is not under the cache's paths")
        }
        return Array(name)
    }

    /// Whether a link at a member whose directory is `directory` and whose target is
    /// `target` resolves (lexically) inside the work dir.
    static func staysInside(_ target: [UInt8], from directory: [UInt8]) -> Bool {
        guard !target.isEmpty, target.first != UInt8(ascii: "/") else { return false }
        var depth = directory.isEmpty ? 0 : directory.split(separator: UInt8(ascii: "/")).count
        for segment in target.split(separator: UInt8(ascii: "/")) {
            if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                depth -= 1
                if depth < 0 { return false }
            } else if !segment.elementsEqual([UInt8(ascii: ".")]) {
                depth += 1
            }
        }
        return true
    }

    static func parent(of name: [UInt8]) -> [UInt8]? {
        guard let slash = name.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        return Array(name[..<slash])
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes.prefix(200), as: UTF8.self) }

    // MARK: - Listing

    /// `MODE UID/GID SIZE DATE TIME "NAME"`, then ` -> "TARGET"` (a symbolic link) or
    /// ` link to "TARGET"` (a hard link). With `--numeric-owner` nothing before the name
    /// holds a quote, and `--quoting-style=c` escapes every quote, backslash, control and
    /// non-ASCII byte inside one, so names with spaces, arrows or newlines parse exactly.
    static func parse(_ line: [UInt8]) throws(TransferError) -> Member {
        guard let type = line.first, let quote = line.firstIndex(of: UInt8(ascii: "\"")) else {
            throw .file("cannot read tar's listing line `\(text(line))`")
        }
        let fields = line[..<quote].split(separator: UInt8(ascii: " "))
        // A device lists `MAJOR,MINOR` where the size goes: refused by type anyway.
        let size = fields.count >= 3 ? UInt64(String(decoding: fields[2], as: UTF8.self)) : nil
        var index = quote
        let name = try unquote(line, &index)
        let rest = Array(line[index...])
        var target: [UInt8]?
        if rest.starts(with: Array(" -> \"".utf8)) {
            index += 4
            target = try unquote(line, &index)
        } else if rest.starts(with: Array(" link to \"".utf8)) {
            index += 9
            target = try unquote(line, &index)
        }
        guard index == line.endIndex || type != UInt8(ascii: "-") && type != UInt8(ascii: "d") else {
            throw .file("cannot read tar's listing line `\(text(line))`")
        }
        if type == UInt8(ascii: "-"), size == nil { throw .file("cannot read tar's listing line `\(text(line))`") }
        return Member(type: type, size: size ?? 0, name: name, target: target)
    }

    /// The C-quoted string starting at `index` (a `"`), decoded to bytes; `index` ends
    /// after its closing quote.
    private static func unquote(_ line: [UInt8], _ index: inout Int) throws(TransferError) -> [UInt8] {
        guard index < line.count, line[index] == UInt8(ascii: "\"") else { throw .file("tar's listing has no quoted name") }
        index += 1
        var out: [UInt8] = []
        while index < line.count {
            let byte = line[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return out
            case UInt8(ascii: "\\"):
                guard index < line.count else { break }
                let escaped = line[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "0")...UInt8(ascii: "7"):
                    var value = Int(escaped - UInt8(ascii: "0"))
                    var digits = 1
                    while digits < 3, index < line.count, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(line[index]) {
                        value = value * 8 + Int(line[index] - UInt8(ascii: "0"))
                        index += 1
                        digits += 1
                    }
                    guard value <= 255 else { throw .file("tar's listing has a bad escape") }
                    out.append(UInt8(value))
                case UInt8(ascii: "a"): out.append(7)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "v"): out.append(11)
                default: out.append(escaped)
                }
            default:
                out.append(byte)
            }
        }
        throw .file("tar's listing has an unterminated name")
    }
}
