import Foundation

/// A chain head recorded outside the coordinator (`seq` and its hash), which the chain
/// must still contain: the chain alone cannot show that its last records were deleted.
public struct AuditAnchor: Sendable, Equatable {
    public var seq: Int64
    public var hash: Data

    public init(seq: Int64, hash: Data) {
        self.seq = seq
        self.hash = hash
    }

    /// `SEQ:HEX` as `audit verify` prints the head; nil if it is not that.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count <= 19, let seq = Int64(parts[0]), seq > 0,
            let hash = Data(hex: String(parts[1])), hash.count == 32
        else { return nil }
        self.init(seq: seq, hash: hash)
    }
}

/// What verifying the chain found: intact (with its length and head), or the first seq
/// where it breaks and why.
public struct AuditVerification: Sendable, Equatable {
    public enum Problem: Sendable, Equatable {
        /// The record's fields do not hash to its stored hash: it was edited.
        case edited
        /// The record is not the one after its predecessor: a record was deleted before it
        /// (or the seq was renumbered).
        case missing(expectedSeq: Int64)
        /// Its `prev_hash` is not its predecessor's hash: a record before it was deleted,
        /// inserted or rewritten along with its hash.
        case unlinked
        /// A stored field cannot be read back as written.
        case unreadable(String)
        /// The external anchor's seq is past the end of the chain: records were deleted from the end.
        case truncated(anchorSeq: Int64)
        /// The record at the anchor's seq has a different hash than the anchor.
        case anchorMismatch
    }

    public var count: Int64
    public var head: (seq: Int64, hash: Data)?
    /// The first broken seq and why; nil when the chain is intact.
    public var broken: (seq: Int64, problem: Problem)?

    public var ok: Bool { broken == nil }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.count == rhs.count && lhs.head?.seq == rhs.head?.seq && lhs.head?.hash == rhs.head?.hash
            && lhs.broken?.seq == rhs.broken?.seq && lhs.broken?.problem == rhs.broken?.problem
    }

    /// One sentence an operator can act on.
    public var summary: String {
        guard let broken else {
            guard let head else { return "the audit log is empty" }
            return "the audit chain is intact: \(count) records, head \(head.seq):\(head.hash.hexString)"
        }
        let seq = broken.seq
        switch broken.problem {
        case .edited: return "record \(seq) was edited: its fields no longer hash to its stored hash"
        case .missing(let expected):
            return expected + 1 == seq
                ? "record \(expected) is missing (deleted) before record \(seq)"
                : "records \(expected) to \(seq - 1) are missing (deleted) before record \(seq)"
        case .unlinked where seq == 1:
            return "record 1 does not start from the genesis hash: records before it were deleted, or it was rewritten"
        case .unlinked:
            return "record \(seq) does not link to record \(seq - 1) (prev_hash differs): a record was deleted, inserted or rewritten before it"
        case .unreadable(let why): return "record \(seq) cannot be read (edited): \(why)"
        case .truncated(let anchorSeq):
            return "the chain ends at record \(seq) but the anchor names record \(anchorSeq): records after \(seq) were deleted"
        case .anchorMismatch: return "record \(seq) differs from the anchor: the chain was rewritten from there or earlier"
        }
    }
}

/// Checks records fed in `seq` order, one batch at a time, so verifying never holds the
/// whole log in memory.
public struct AuditChainVerifier: Sendable {
    public static let batchSize = 1000

    private var expectedSeq: Int64 = 1
    private var previousHash = AuditRecord.genesisHash
    private(set) var count: Int64 = 0
    private(set) var broken: (seq: Int64, problem: AuditVerification.Problem)?
    private let anchor: AuditAnchor?

    public init(anchor: AuditAnchor? = nil) {
        self.anchor = anchor
    }

    public var isBroken: Bool { broken != nil }

    /// Feeds the next record (or the reason the row at `seq` could not be decoded).
    public mutating func feed(_ row: Result<AuditRecord, AuditRowError>) {
        guard broken == nil else { return }
        let record: AuditRecord
        switch row {
        case .failure(let error):
            broken = (error.seq, .unreadable(error.reason))
            return
        case .success(let decoded): record = decoded
        }
        if record.seq != expectedSeq {
            broken = (record.seq, .missing(expectedSeq: expectedSeq))
        } else if record.prevHash != previousHash {
            broken = (record.seq, .unlinked)
        } else if record.computedHash() != record.hash {
            broken = (record.seq, .edited)
        } else if let anchor, anchor.seq == record.seq, anchor.hash != record.hash {
            broken = (record.seq, .anchorMismatch)
        }
        guard broken == nil else { return }
        count += 1
        expectedSeq = record.seq + 1
        previousHash = record.hash
    }

    /// The result once every record has been fed.
    public func finish() -> AuditVerification {
        let head = count > 0 ? (seq: expectedSeq - 1, hash: previousHash) : nil
        if broken == nil, let anchor, anchor.seq >= expectedSeq {
            return AuditVerification(count: count, head: head, broken: (expectedSeq - 1, .truncated(anchorSeq: anchor.seq)))
        }
        return AuditVerification(count: count, head: head, broken: broken)
    }
}

/// A stored row that does not decode as an `AuditRecord`.
public struct AuditRowError: Error, Sendable {
    public var seq: Int64
    public var reason: String
}

extension Data {
    /// Lowercase hex, as the audit API and `audit verify` print hashes.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(count * 2)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Parses even-length hex (either case); nil for anything else or longer than 256 digits.
    init?(hex text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0, utf8.count <= 256 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.init(bytes)
    }
}
