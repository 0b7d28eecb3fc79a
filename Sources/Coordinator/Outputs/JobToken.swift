import Crypto
import Foundation
import GantryProtocol

/// The bearer token a step uses to reach the API as its own job:
/// `gjt_<job id>.<attempt>.<HMAC-SHA256(key, domain ‖ job id ‖ attempt), 64 hex>`.
///
/// Stateless: nothing is stored, a restart keeps every token valid (the key is derived
/// from `secrets.key`, see `JobTokenKey`), and validation is a MAC and one question to
/// the core ("is this attempt held right now?"). What a token may do is decided by the
/// core's answer (the attempt must be leased or running) and by the route
/// (`APIRoute.jobTokenAllowed`, and only for the job's own pipeline).
public struct JobToken: Sendable, Equatable {
    public static let prefix = "gjt_"
    /// Longest token text accepted: the prefix, a job id of at most
    /// `maximumJobIDBytes`, ten digits of attempt, two dots and 64 hex digits. Anything
    /// longer is refused before it is split.
    public static let maximumBytes = 4 + maximumJobIDBytes + 1 + 10 + 1 + 64
    /// The coordinator's job ids are UUIDs (36 bytes); the bound leaves room without
    /// letting a caller make the MAC hash megabytes.
    public static let maximumJobIDBytes = 128
    /// Separates this MAC from any other use of a key derived the same way.
    static let domain = Array("gantry job token v1\0".utf8)

    public var jobID: String
    public var attempt: UInt32

    public init(jobID: String, attempt: UInt32) {
        self.jobID = jobID
        self.attempt = attempt
    }

    /// The token's text under `key`.
    public func text(key: JobTokenKey) -> String {
        "\(Self.prefix)\(jobID).\(attempt).\(CertificateEncoding.hex(mac(key: key)))"
    }

    func mac(key: JobTokenKey) -> Data {
        var message = Self.domain
        message += Array(jobID.utf8)
        message.append(0)
        message += Array(String(attempt).utf8)
        return Data(HMAC<SHA256>.authenticationCode(for: message, using: key.key))
    }

    /// Whether `text` looks like a job token at all (so the authenticator sends it here,
    /// not to the API-token table).
    public static func isJobToken(_ text: Substring) -> Bool { text.hasPrefix(prefix) }

    /// The job and attempt `text` was issued for, if its MAC is right under `key`.
    ///
    /// Strict: the prefix, a job id of `[A-Za-z0-9-]` (1 to 128 bytes), a canonical
    /// decimal attempt in 1...UInt32.max, and exactly 64 lower-case hex digits; the MAC
    /// is recomputed and compared in constant time (`SecretDigest.equal`).
    public static func verify(_ text: Substring, key: JobTokenKey) throws(JobTokenRefusal) -> JobToken {
        guard text.utf8.count <= maximumBytes, text.hasPrefix(prefix) else { throw .malformed }
        let parts = text.dropFirst(prefix.count).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed }
        let jobID = parts[0], attemptText = parts[1], macText = parts[2]
        guard !jobID.isEmpty, jobID.utf8.count <= maximumJobIDBytes,
            jobID.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
        else { throw .malformed }
        guard (1...10).contains(attemptText.utf8.count), attemptText.utf8.allSatisfy(isDigit),
            attemptText.utf8.first != UInt8(ascii: "0"), let attempt = UInt32(attemptText)
        else { throw .malformed }
        guard let mac = hexBytes(macText), mac.count == 32 else { throw .malformed }
        let token = JobToken(jobID: String(jobID), attempt: attempt)
        guard SecretDigest.equal(token.mac(key: key), mac) else { throw .forged }
        return token
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// Lower-case hex only: one spelling per MAC.
    private static func hexBytes(_ text: Substring) -> Data? {
        let digits = Array(text.utf8)
        guard digits.count == 64 else { return nil }
        var bytes = Data(capacity: 32)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}

/// Why a job token was refused. Every case is a 401; the message says what to do and
/// never repeats the token.
public enum JobTokenRefusal: Error, Equatable, Sendable {
    /// Not of the form `gjt_<job>.<attempt>.<64 hex>`.
    case malformed
    /// The MAC does not match: not issued by this coordinator (or `secrets.key` changed).
    case forged
    /// Issued for an attempt that is no longer held: finished, retried or fenced off.
    case notHeld(jobID: String, attempt: UInt32)

    public var message: String {
        switch self {
        case .malformed:
            return "malformed job token: a job token is only valid as GANTRY_JOB_TOKEN inside the step it was issued to"
        case .forged:
            return "invalid job token: it was not issued by this coordinator (or its secrets key was rotated since)"
        case .notHeld(let jobID, let attempt):
            return "job token of job \(jobID.logSafe(maximum: 128)) attempt \(attempt) is no longer valid: "
                + "a job token works only while that attempt is leased or running"
        }
    }
}

/// The HMAC key of job tokens.
///
/// Derived with HKDF-SHA256 from the secrets key (`STATE/secrets.key`) rather than kept
/// in a file of its own: that key is already 0600, backed up, locked while serving and
/// loaded into the vault the send edge reads, so there is no second key file to protect,
/// and a restart keeps tokens valid. HKDF's `info` separates it from the AES use of the
/// same key. The cost: `rotate-key` changes it, so steps still running across a rotation
/// get 401 on their meta-data calls (a rotation needs the coordinator stopped anyway).
public struct JobTokenKey: Sendable {
    let key: SymmetricKey

    static let info = Array("gantry job token HMAC key v1".utf8)

    public init(derivedFrom secretKey: SecretKey) {
        key = HKDF<SHA256>.deriveKey(inputKeyMaterial: secretKey.key, info: Self.info, outputByteCount: 32)
    }

    /// A key for a coordinator without a secrets key (tests, tools): tokens it issues die
    /// with the process.
    public static func ephemeral() -> JobTokenKey { JobTokenKey(key: SymmetricKey(size: .bits256)) }

    init(key: SymmetricKey) {
        self.key = key
    }
}
