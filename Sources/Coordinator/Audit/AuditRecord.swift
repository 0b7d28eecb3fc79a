import Crypto
import Foundation
import GRDB

/// A stored audit record: an `AuditEvent` with its place in the chain.
///
/// Records are hash-chained: `hash = SHA-256(previousHash ‖ canonicalBytes)`, starting from
/// 32 zero bytes. Editing a stored field, deleting a record or inserting one changes every
/// hash after it, which `gantry audit verify` detects. Times are kept to the millisecond so
/// the bytes hashed at append are exactly the bytes read back.
public struct AuditRecord: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "audit_log"

    public var seq: Int64
    public var at: Date
    public var actor: String
    public var tokenId: String?
    public var address: String?
    public var action: String
    public var object: String
    public var outcome: String
    /// The event's detail as canonical JSON (sorted keys), exactly as stored.
    public var detail: String
    public var prevHash: Data
    public var hash: Data

    enum CodingKeys: String, CodingKey {
        case seq, at, actor, address, action, object, outcome, detail
        case tokenId = "token_id"
        case prevHash = "prev_hash"
        case hash
    }

    public static let genesisHash = Data(repeating: 0, count: 32)

    /// A record for `event` following `previous` (nil for the first record).
    public init(event: AuditEvent, at date: Date, seq: Int64, previousHash: Data) {
        self.seq = seq
        self.at = Self.millisecondPrecision(date)
        self.actor = event.actor
        self.tokenId = event.tokenID
        self.address = event.address
        self.action = event.action
        self.object = event.object
        self.outcome = event.outcome
        self.detail = Self.canonicalJSON(event.detail)
        self.prevHash = previousHash
        self.hash = Data()
        self.hash = computedHash()
    }

    /// The hash this record's fields and `prevHash` call for; equals `hash` unless the
    /// record was changed after it was written.
    public func computedHash() -> Data {
        var hasher = SHA256()
        hasher.update(data: prevHash)
        hasher.update(data: canonicalBytes())
        return Data(hasher.finalize())
    }

    /// Every field but the hashes, each as a 4-byte big-endian length and its UTF-8 bytes
    /// (0xFFFFFFFF for nil), so no two different records share bytes.
    public func canonicalBytes() -> Data {
        var bytes = Data()
        func field(_ text: String?) {
            guard let text else {
                bytes.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF])
                return
            }
            let utf8 = Array(text.utf8)
            let length = UInt32(clamping: utf8.count)
            bytes.append(contentsOf: [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)])
            bytes.append(contentsOf: utf8)
        }
        field(String(seq))
        field(String(Self.milliseconds(at)))
        field(actor)
        field(tokenId)
        field(address)
        field(action)
        field(object)
        field(outcome)
        field(detail)
        return bytes
    }

    public var event: AuditEvent {
        let parsed = (try? JSONDecoder().decode([String: String].self, from: Data(detail.utf8))) ?? [:]
        return AuditEvent(
            actor: actor, tokenID: tokenId, address: address, action: action, object: object, outcome: outcome,
            detail: parsed)
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func millisecondPrecision(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds(date)) / 1000)
    }

    static func canonicalJSON(_ detail: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(detail)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
