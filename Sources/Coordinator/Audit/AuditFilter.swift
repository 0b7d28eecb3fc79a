import Foundation

/// The filters of an audit read, parsed from hostile text (query strings, flags): every
/// value is bounded and checked before it reaches SQL (which binds it, never splices it).
public struct AuditFilter: Sendable, Equatable {
    public var since: Date?
    public var actor: String?
    public var object: String?
    public var afterSeq: Int64?
    public var limit: Int = AuditQuery.defaultLimit

    public init(since: Date? = nil, actor: String? = nil, object: String? = nil, afterSeq: Int64? = nil, limit: Int = AuditQuery.defaultLimit) {
        self.since = since
        self.actor = actor
        self.object = object
        self.afterSeq = afterSeq
        self.limit = limit
    }

    /// A refused filter, saying which value and what is accepted.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Parses the raw values (nil or empty = no filter); `limit` is 1...1000.
    public init(since: String?, actor: String?, object: String?, after: String?, limit: String?) throws(Invalid) {
        if let since = since.nonEmpty {
            guard let date = Self.parseTime(since) else {
                throw Invalid(description: "since must be an ISO 8601 time like 2026-12-01T05:00:00Z, got '\(since.prefix(64))'")
            }
            self.since = date
        }
        for (name, value) in [("actor", actor), ("object", object)] {
            if let value = value.nonEmpty, value.utf8.count > AuditQuery.maximumFilterLength {
                throw Invalid(description: "\(name) is longer than \(AuditQuery.maximumFilterLength) bytes")
            }
        }
        self.actor = actor.nonEmpty
        self.object = object.nonEmpty
        if let after = after.nonEmpty {
            guard after.utf8.count <= 19, let seq = Int64(after), seq >= 0 else {
                throw Invalid(description: "after must be a record seq (a non-negative integer), got '\(after.prefix(32))'")
            }
            self.afterSeq = seq
        }
        if let limit = limit.nonEmpty {
            // Refused, not clamped: a client asking for 5,000 and given 1,000 would take
            // the short page for the end.
            guard limit.utf8.count <= 9, let value = Int(limit), (1...AuditQuery.maximumLimit).contains(value) else {
                throw Invalid(description: "limit must be an integer from 1 to \(AuditQuery.maximumLimit), got '\(limit.prefix(32))'")
            }
            self.limit = value
        }
    }

    /// ISO 8601 with or without fractional seconds; at most 40 characters.
    public static func parseTime(_ text: String) -> Date? {
        guard text.utf8.count <= 40 else { return nil }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }
}

extension Optional where Wrapped == String {
    fileprivate var nonEmpty: String? {
        guard let self, !self.isEmpty else { return nil }
        return self
    }
}

extension AuditStore {
    public func auditRecords(_ filter: AuditFilter) throws -> [AuditRecord] {
        try auditRecords(since: filter.since, actor: filter.actor, object: filter.object, afterSeq: filter.afterSeq, limit: filter.limit)
    }

    /// Every record the filter selects from `afterSeq` on, a bounded batch at a time, for
    /// an export: each batch is one short read.
    public func forEachAuditBatch(_ filter: AuditFilter, _ body: ([AuditRecord]) async throws -> Void) async throws {
        var filter = filter
        filter.limit = AuditQuery.maximumLimit
        while true {
            let batch = try auditRecords(filter)
            if !batch.isEmpty { try await body(batch) }
            guard batch.count == filter.limit, let last = batch.last else { return }
            filter.afterSeq = last.seq
        }
    }
}
