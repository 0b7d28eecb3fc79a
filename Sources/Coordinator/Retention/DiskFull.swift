import Foundation
import GRDB
import HTTPTypes
import Hummingbird

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A full disk (or quota) on the coordinator while storing an upload: the request fails
/// with `507 Insufficient Storage` and code `disk_full`, whose message the agent puts in
/// the job's `artifact_upload_failed` reason. Nothing stored is touched: a part file's
/// recorded offset only ever covers synced bytes (`PartWriter`), a blob only appears by
/// renaming a complete part, and SQLite rolls a failed transaction back.
public enum DiskFull {
    public static let status = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")

    /// Whether `error` says the disk or the user's quota is full.
    public static func matches(_ error: any Error) -> Bool {
        switch error {
        case BlobError.io(_, let code): return code == ENOSPC || code == EDQUOT
        case let error as DatabaseError: return error.resultCode == .SQLITE_FULL
        case let error as CocoaError: return error.code == .fileWriteOutOfSpace
        default: return false
        }
    }

    /// The 507 for `error` if it is a full disk, nil for any other failure.
    public static func response(_ error: any Error, storedUpTo offset: Int64? = nil) -> Response? {
        guard matches(error) else { return nil }
        let stored = offset.map { "; the session holds \($0) bytes, resume from there once space is freed" } ?? ""
        return APIResponses.error(
            status, code: "disk_full",
            message: "the coordinator's disk is full (\(error))\(stored): an operator must free space or lower the retention "
                + "settings (docs/operations.md, \"Retention\")")
    }
}
