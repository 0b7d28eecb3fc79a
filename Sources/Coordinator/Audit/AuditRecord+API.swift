import Foundation
import GantryProtocol

extension AuditRecord {
    /// The API's view: every field, hashes in hex, the time to the millisecond.
    public var apiView: API.AuditRecord {
        let parsed = (try? JSONDecoder().decode([String: String].self, from: Data(detail.utf8))) ?? ["unparsed": detail]
        return API.AuditRecord(
            seq: seq, at: Self.timeText(at), actor: actor, tokenId: tokenId, address: address, action: action,
            object: object, outcome: outcome, detail: parsed, prevHash: prevHash.hexString, hash: hash.hexString)
    }

    /// ISO 8601, UTC, milliseconds: `2026-12-01T05:35:25.123Z`.
    static func timeText(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

extension AuditVerification {
    public var apiView: API.AuditVerification {
        API.AuditVerification(
            ok: ok, count: count, headSeq: head?.seq, headHash: head?.hash.hexString, brokenSeq: broken?.seq,
            message: summary)
    }
}
