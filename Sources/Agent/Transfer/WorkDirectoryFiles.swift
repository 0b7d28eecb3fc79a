import GantryTransferRules
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Files inside one job's work dir, opened so that nothing a step (or an earlier download)
/// planted can redirect the agent outside it.
///
/// Every path is a `TransferPath` (relative, no `..`), resolved one component at a time
/// from a descriptor of the work dir with `openat(…, O_NOFOLLOW)`: a symbolic link in any
/// component, the last included, makes the open fail (`ELOOP`/`ENOTDIR`) and the transfer
/// is refused, rather than followed to wherever it points. A downloaded file replaces what
/// was at its name (the entry is unlinked, then created with `O_EXCL`), so a planted hard
/// link is never written through either. The agent may run as root; these checks are what
/// keeps it from writing a file a step could not.
public struct WorkDirectoryFiles: Sendable {
    public let root: String
    /// Who owns what the agent creates here (the step user), nil for the agent's user.
    public let owner: (uid: uid_t, gid: gid_t)?

    public init(root: String, owner: (uid: uid_t, gid: gid_t)? = nil) {
        self.root = root
        self.owner = owner
    }

    /// The directory holding `path`'s last component, opened without following links
    /// (created as needed when `create`), and that component's name. The caller closes it.
    func parent(of path: String, create: Bool) throws(TransferError) -> (SystemPackage.FileDescriptor, String) {
        if let problem = TransferPath.problem(with: path, what: "path") { throw .unsafePath(problem) }
        let segments = TransferPath.segments(of: path).map(String.init)
        var directory = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { throw .file("cannot open the work dir: \(Self.lastError())") }
        for name in segments.dropLast() {
            let created = create && mkdirat(directory, name, 0o755) == 0
            let next = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let failure = errno
            // The new directory is handed over through its descriptor, not its name: a
            // step racing to swap the name for a link cannot redirect the chown.
            if created, next >= 0, let owner { _ = fchown(next, owner.uid, owner.gid) }
            close(directory)
            guard next >= 0 else {
                if failure == ELOOP || failure == ENOTDIR {
                    throw .unsafePath("`\(path)`: `\(name)` is a symbolic link or not a directory; the agent does not follow links")
                }
                throw .file("cannot open `\(path)`: \(Self.describe(failure))")
            }
            directory = next
        }
        return (SystemPackage.FileDescriptor(rawValue: directory), segments[segments.count - 1])
    }

    /// A new, empty regular file at `path` for writing (what was there is replaced).
    public func create(_ path: String) throws(TransferError) -> SystemPackage.FileDescriptor {
        let (directory, name) = try parent(of: path, create: true)
        defer { try? directory.close() }
        // An existing directory at the name is not replaced: that would be a conflict the
        // step should see, not a silent `rm -r`.
        if unlinkat(directory.rawValue, name, 0) != 0, errno != ENOENT {
            throw .file("cannot replace `\(path)`: \(Self.lastError())")
        }
        let fd = openat(directory.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .file("cannot create `\(path)`: \(Self.lastError())") }
        if let owner { _ = fchown(fd, owner.uid, owner.gid) }
        return SystemPackage.FileDescriptor(rawValue: fd)
    }

    /// An existing regular file at `path` for reading, and its size. Refused: a link, a
    /// file that is not regular, and one the step could not have read itself
    /// (`readProblem`), checked on the opened descriptor so nothing can swap it meanwhile.
    public func openRegularFile(_ path: String) throws(TransferError) -> (SystemPackage.FileDescriptor, UInt64) {
        let (directory, name) = try parent(of: path, create: false)
        defer { try? directory.close() }
        let fd = openat(directory.rawValue, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ELOOP { throw .unsafePath("`\(path)` is a symbolic link; the agent does not follow links") }
            throw .file("cannot open `\(path)`: \(Self.lastError())")
        }
        var status = stat()
        guard fstat(fd, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .unsafePath("`\(path)` is not a regular file")
        }
        if let problem = Self.readProblem(
            fileOwner: status.st_uid, links: UInt64(status.st_nlink), stepUser: owner?.uid, agent: geteuid())
        {
            close(fd)
            throw .unsafePath("`\(path)` \(problem)")
        }
        return (SystemPackage.FileDescriptor(rawValue: fd), UInt64(status.st_size))
    }

    /// Why the agent must not read a regular file of the work dir for a step, or nil.
    ///
    /// A hard link is a regular file that names someone else's inode: where
    /// `fs.protected_hardlinks` is 0, a step can `ln /etc/shadow out/x` and, with
    /// `artifacts: [out/*]`, have the agent (root) upload it. Opening without following
    /// links does not help, so the inode's owner decides:
    /// - with a step user, everything the step made, checked out, downloaded or restored
    ///   belongs to it; a file owned by anyone else is refused, whatever its link count;
    /// - without one, steps run as the agent's user and could read the agent's files
    ///   anyway, so only a file of another user with more than one link (a link to it,
    ///   not a copy) is refused. A link count above 1 alone is no reason: build tools
    ///   (cargo, ccache, `cp -l`) hard-link their own outputs.
    static func readProblem(fileOwner: uid_t, links: UInt64, stepUser: uid_t?, agent: uid_t) -> String? {
        if let stepUser {
            guard fileOwner == stepUser else {
                return "belongs to uid \(fileOwner), not the step user (uid \(stepUser)): a hard link to a file the step does not own is not read"
            }
            return nil
        }
        if fileOwner != agent && links > 1 {
            return "is a hard link (\(links) links) to a file of uid \(fileOwner), not the agent's: it is not read"
        }
        return nil
    }

    /// Whether `path` is a regular file (links not followed) under a safe parent.
    func isRegularFile(_ path: String) -> Bool {
        guard let found = try? parent(of: path, create: false) else { return false }
        let (directory, name) = found
        defer { try? directory.close() }
        var status = stat()
        return fstatat(directory.rawValue, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && (status.st_mode & S_IFMT) == S_IFREG
    }

    /// An artifact path that names a link or a special file: refused by name, never
    /// followed (a link can point outside the work dir).
    static func notAFile(_ path: String) -> TransferError {
        .unsafePath("`\(path)` is a symbolic link or not a regular file: artifacts are regular files inside the work dir, and links are never followed")
    }

    /// Whether `path` is a directory (links not followed) under a safe parent.
    func isDirectory(_ path: String) -> Bool {
        guard let found = try? parent(of: path, create: false) else { return false }
        let (directory, name) = found
        defer { try? directory.close() }
        var status = stat()
        return fstatat(directory.rawValue, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether `path` exists (as anything, links not followed) under a safe parent.
    public func exists(_ path: String) -> Bool {
        guard let found = try? parent(of: path, create: false) else { return false }
        let (directory, name) = found
        defer { try? directory.close() }
        var status = stat()
        return fstatat(directory.rawValue, name, &status, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// The regular files under the work dir that `globs` match, as relative paths, sorted.
    /// Links are never followed: one that a glob matches is an error naming it (an artifact
    /// path must not lead out of the work dir); a linked directory is not descended. At most
    /// `maximumFiles` (more is an error, not a silent cut) after looking at no more than
    /// `TransferLimits.maximumScannedEntries`.
    public func expand(_ globs: [ArtifactGlob], maximumFiles: Int) throws(TransferError) -> [String] {
        var found: Set<String> = []
        var scanned = 0
        for glob in globs {
            let prefix = glob.literalPrefix
            let start = prefix.joined(separator: "/")
            if glob.isLiteral {
                let path = glob.text
                // Listed when it is a regular file; one the agent must not read fails
                // the upload when it is opened, with why, rather than vanishing here.
                if isRegularFile(path) {
                    found.insert(path)
                } else if exists(path), !isDirectory(path) {
                    throw Self.notAFile(path)
                }
                continue
            }
            var stack: [String] = [start]
            while let directory = stack.popLast() {
                let entries = try list(directory, scanned: &scanned)
                for (name, isDirectory, isRegular) in entries {
                    let path = directory.isEmpty ? name : "\(directory)/\(name)"
                    if isDirectory {
                        stack.append(path)
                    } else if !isRegular, glob.matches(path) {
                        // A link (or a device, a socket) where an artifact was asked for:
                        // the step may have pointed it anywhere, even outside the work dir.
                        throw Self.notAFile(path)
                    } else if isRegular, glob.matches(path) {
                        found.insert(path)
                        guard found.count <= maximumFiles else {
                            throw .limit("the artifact globs match more than \(maximumFiles) files: archive them into one")
                        }
                    }
                }
            }
        }
        return found.sorted()
    }

    /// The entries of a directory (`""`: the work dir): name, is a directory, is a regular
    /// file, with links reported as neither.
    private func list(_ directory: String, scanned: inout Int) throws(TransferError) -> [(String, Bool, Bool)] {
        let fd: Int32
        if directory.isEmpty {
            fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        } else {
            // A missing or linked prefix directory simply matches nothing.
            guard let found = try? parent(of: directory, create: false) else { return [] }
            let (parentFD, name) = found
            fd = openat(parentFD.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            try? parentFD.close()
        }
        guard fd >= 0 else { return [] }
        guard let stream = fdopendir(fd) else {
            close(fd)
            return []
        }
        defer { closedir(stream) }
        var entries: [(String, Bool, Bool)] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(cString: $0)
                }
            }
            if name == "." || name == ".." { continue }
            scanned += 1
            guard scanned <= TransferLimits.maximumScannedEntries else {
                throw .limit("the work dir has more than \(TransferLimits.maximumScannedEntries) entries under the globs' directories")
            }
            var status = stat()
            guard fstatat(dirfd(stream), name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let type = status.st_mode & S_IFMT
            entries.append((name, type == S_IFDIR, type == S_IFREG))
        }
        return entries
    }

    static func lastError() -> String { describe(errno) }
    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}
