import Crypto
import Foundation
import Synchronization

/// The dashboard's sign-in sessions: a browser signs in with an API token once and then
/// carries only a random session id in an `HttpOnly`, `SameSite=Strict` cookie, so the
/// token never reaches page scripts or the browser's storage.
///
/// A session holds the token, not a principal: every request authenticates the token
/// again (`Authenticator`), so revoking the token, disabling its identity or changing its
/// roles takes effect on the next click, as it does for the CLI.
///
/// Sessions live in this process's memory only: a restarted coordinator signs everyone
/// out, which costs a sign-in and keeps no session secret on disk. The table is bounded
/// (`maximumSessions`; the oldest is dropped to admit a new one) and each session ends
/// after `idleTimeout` without use or `lifetime` in all.
public final class WebSessions: Sendable {
    public struct Session: Sendable, Equatable {
        /// The API token the browser signed in with.
        public var token: String
        /// Sent back in the `X-Gantry-CSRF` header (or a form's `csrf` field) with every
        /// state-changing request: a page of another site cannot read it.
        public var csrf: String
        public var createdAt: Date
        public var lastUsedAt: Date
    }

    public static let csrfHeader = "X-Gantry-CSRF"
    /// Sessions one token may hold: more evict that token's oldest, so a token's holder
    /// cannot push everyone else's sessions out of the table.
    public static let maximumPerToken = 16

    /// `__Host-gantry_session` over TLS: the prefix makes browsers refuse the cookie from
    /// a sibling subdomain (`Domain=`) or a path other than `/`, so another host of the
    /// same site cannot plant its own session ("cookie tossing"). Plain HTTP cannot use
    /// the prefix (it requires `Secure`).
    public let cookieName: String
    public let maximumSessions: Int
    public let idleTimeout: TimeInterval
    public let lifetime: TimeInterval
    private let sessions = Mutex<[String: Session]>([:])

    public init(
        secureCookies: Bool = false, maximumSessions: Int = 10_000, idleTimeout: TimeInterval = 8 * 3600,
        lifetime: TimeInterval = 24 * 3600
    ) {
        self.cookieName = secureCookies ? "__Host-gantry_session" : "gantry_session"
        self.maximumSessions = maximumSessions
        self.idleTimeout = idleTimeout
        self.lifetime = lifetime
    }

    /// A new session for `token`: its id (the cookie's value) and the session.
    public func create(token: String, now: Date = Date()) -> (id: String, session: Session) {
        let id = Self.randomText()
        let session = Session(token: token, csrf: Self.randomText(), createdAt: now, lastUsedAt: now)
        sessions.withLock { table in
            let sameToken = table.filter { $0.value.token == token }
            if sameToken.count >= Self.maximumPerToken, let oldest = sameToken.min(by: { $0.value.lastUsedAt < $1.value.lastUsedAt }) {
                table.removeValue(forKey: oldest.key)
            }
            if table.count >= maximumSessions {
                // Full: drop what expired, then the least recently used.
                table = table.filter { !expired($0.value, now: now) }
                while table.count >= maximumSessions, let oldest = table.min(by: { $0.value.lastUsedAt < $1.value.lastUsedAt }) {
                    table.removeValue(forKey: oldest.key)
                }
            }
            table[id] = session
        }
        return (id, session)
    }

    /// The live session of `id`, marked as used; nil for an unknown or expired one.
    public func session(id: String, now: Date = Date()) -> Session? {
        guard id.utf8.count == 43 else { return nil }
        return sessions.withLock { table -> Session? in
            guard var session = table[id] else { return nil }
            if expired(session, now: now) {
                table.removeValue(forKey: id)
                return nil
            }
            session.lastUsedAt = now
            table[id] = session
            return session
        }
    }

    public func remove(id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    public var count: Int { sessions.withLock { $0.count } }

    private func expired(_ session: Session, now: Date) -> Bool {
        now.timeIntervalSince(session.lastUsedAt) > idleTimeout || now.timeIntervalSince(session.createdAt) > lifetime
    }

    /// 32 random bytes as unpadded base64url: 43 characters.
    public static func randomText() -> String {
        let key = SymmetricKey(size: .bits256)
        let data = key.withUnsafeBytes { Data($0) }
        return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The value of cookie `name` in a `Cookie` header, or nil: also nil when the name
    /// appears twice, since the browser's order then says nothing about which one this
    /// host set (another host of the site may have set one for a longer path).
    public static func cookie(_ name: String, in header: String?) -> String? {
        guard let header, header.utf8.count <= 8192 else { return nil }
        var found: String?
        for part in header.split(separator: ";").prefix(64) {
            let pair = part.trimmingCharacters(in: .whitespaces)
            guard let equals = pair.firstIndex(of: "="), pair[..<equals] == name else { continue }
            guard found == nil else { return nil }
            found = String(pair[pair.index(after: equals)...])
        }
        return found
    }

    /// Whether a request that changes something came from a page of this origin, by the
    /// browser's `Sec-Fetch-Site` (only `same-origin`, or `none` for one the user typed)
    /// or else its `Origin` (this `Host`); a request with neither (not a browser) passes,
    /// as it carries no ambient cookie a page could abuse.
    public static func isSameOrigin(secFetchSite: String?, origin: String?, host: String?) -> Bool {
        if let site = secFetchSite { return site == "same-origin" || site == "none" }
        guard let origin else { return true }
        guard let host, let url = URL(string: origin), let originHost = url.host else { return false }
        let port = url.port.map { ":\($0)" } ?? ""
        return (originHost + port).lowercased() == host.lowercased()
            || "[\(originHost)]\(port)".lowercased() == host.lowercased()
    }

    /// Whether `given` equals `expected`, in time that does not depend on where they differ.
    public static func matches(_ given: String?, _ expected: String) -> Bool {
        guard let given else { return false }
        let a = Array(given.utf8), b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
