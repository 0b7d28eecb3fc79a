/// Takes the credentials out of text the checkout sends away: every line of git's output
/// and every message becomes a log line of the step or the job's `JobFinished.message`
/// (its reason, shown to anyone who may view the pipeline), and git prints URLs as it
/// got them, the user and password or token in them included (a submodule's
/// `clone of 'https://user:token@…' failed`, a `git://` host it could not look up).
///
/// Applied once, at the edge (`JobRunner.checkOut`), to everything the checkout writes
/// or returns; `RepositoryURL.redacted` is the same function for one URL.
enum URLUserinfo {
    /// `text` with the userinfo of every `scheme://userinfo@host` replaced by `***`, and
    /// every `known@` (the userinfo of the URLs the checkout was given, which git may
    /// print without their scheme) by `***@`.
    static func redacted(in text: String, known: [String] = []) -> String {
        var text = text
        for userinfo in known where !userinfo.isEmpty {
            text = text.replacing(userinfo + "@", with: "***@")
        }
        guard text.contains("://") else { return text }
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            guard index + 2 < scalars.count, scalars[index] == ":", scalars[index + 1] == "/", scalars[index + 2] == "/" else {
                result.append(scalars[index])
                index += 1
                continue
            }
            result.append(contentsOf: scalars[index..<index + 3])
            index += 3
            var end = index
            while end < scalars.count, !endsAuthority(scalars[end]) { end += 1 }
            if let at = scalars[index..<end].lastIndex(of: "@") {
                result.append(contentsOf: "***".unicodeScalars)
                result.append(contentsOf: scalars[at..<end])
            } else {
                result.append(contentsOf: scalars[index..<end])
            }
            index = end
        }
        return String(result)
    }

    /// Where a URL's authority (`userinfo@host:port`) ends in running text: at its path
    /// (as `RepositoryURL` reads it), or at what cannot be part of a URL. Not at `?`, `#`,
    /// quotes or punctuation, which a password may hold: taking too much (up to the
    /// next space) only hides more.
    private static func endsAuthority(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value <= 0x20 || scalar.value == 0x7F || "/\\\"`<>".unicodeScalars.contains(scalar)
    }
}
