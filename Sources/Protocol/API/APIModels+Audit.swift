#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension API {
    /// One audit record as `GET /v1/audit` lists it and `?format=jsonl` exports it: every
    /// stored field, hashes in lowercase hex, so a SIEM can keep (and re-check) the chain.
    public struct AuditRecord: Codable, Sendable, Equatable {
        public var seq: Int64
        /// ISO 8601 with milliseconds, UTC: the precision the hash covers.
        public var at: String
        public var actor: String
        public var tokenId: String?
        public var address: String?
        public var action: String
        public var object: String
        /// `succeeded`, `denied`, `refused` or `failed`.
        public var outcome: String
        public var detail: [String: String]
        public var prevHash: String
        public var hash: String

        public init(
            seq: Int64, at: String, actor: String, tokenId: String?, address: String?, action: String, object: String,
            outcome: String, detail: [String: String], prevHash: String, hash: String
        ) {
            self.seq = seq
            self.at = at
            self.actor = actor
            self.tokenId = tokenId
            self.address = address
            self.action = action
            self.object = object
            self.outcome = outcome
            self.detail = detail
            self.prevHash = prevHash
            self.hash = hash
        }
    }

    /// `GET /v1/audit`: a page in seq order; pass `next` as `after` for the following one
    /// (nil when this page was the last).
    public struct AuditPage: Codable, Sendable {
        public var records: [AuditRecord]
        public var next: Int64?

        public init(records: [AuditRecord], next: Int64?) {
            self.records = records
            self.next = next
        }
    }

    /// `GET /v1/audit/verify` and `gantry-coordinator audit verify --json`.
    public struct AuditVerification: Codable, Sendable {
        public var ok: Bool
        /// Records verified (up to the break, when broken).
        public var count: Int64
        /// The last verified record: anchor it outside the coordinator, since deleting the
        /// newest records leaves a shorter chain that is still intact.
        public var headSeq: Int64?
        public var headHash: String?
        /// The first seq where the chain breaks, when it does.
        public var brokenSeq: Int64?
        /// What is wrong there, or that the chain is intact.
        public var message: String

        public init(ok: Bool, count: Int64, headSeq: Int64?, headHash: String?, brokenSeq: Int64?, message: String) {
            self.ok = ok
            self.count = count
            self.headSeq = headSeq
            self.headHash = headHash
            self.brokenSeq = brokenSeq
            self.message = message
        }
    }
}
