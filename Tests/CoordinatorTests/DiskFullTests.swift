import Foundation
@testable import GantryCoordinator
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real full disk: a 1 MiB tmpfs mounted by the test (CI runs as root; elsewhere the
/// mount is refused and the test ends without asserting anything about the disk).
@Suite("Disk full")
struct DiskFullTests {
    @Test func aWriteThatRunsOutOfSpaceFailsWithDiskFullAndTheRecordedOffsetStaysSound() async throws {
        #if os(Linux)
        let mountPoint = NSTemporaryDirectory() + "gantry-diskfull-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=1m") == 0 else {
            print("skipped: mounting a tmpfs is not permitted here (errno \(errno))")
            return
        }
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        let blobs = try BlobStore(root: mountPoint + "/artifacts")
        try blobs.createPart("s")
        let writer = try await blobs.openPart("s", at: 0)
        let chunk = ByteBuffer(repeating: 7, count: 300_000)
        var failure: (any Error)?
        for _ in 0..<16 {
            do {
                try await writer.write(chunk)
            } catch {
                failure = error
                break
            }
        }
        let recorded = writer.offset
        // 300 000-byte writes into 1 MiB: the fourth is cut short by the full disk.
        #expect(blobs.partSize("s").map { $0 > recorded } == true)
        let syncFailure = await writer.finish()
        #expect(failure.map(DiskFull.matches) == true, "the write failed with \(String(describing: failure))")
        #expect(syncFailure == nil)
        // Only whole acknowledged writes count: a short write's bytes are not recorded,
        // and reopening at the recorded offset cuts them off.
        #expect(recorded % Int64(chunk.readableBytes) == 0 && recorded > 0 && recorded <= 1 << 20)
        let reopened = try await blobs.openPart("s", at: recorded)
        #expect(blobs.partSize("s") == recorded)
        _ = await reopened.finish()
        #expect(failure.flatMap { DiskFull.response($0, storedUpTo: recorded) }?.status.code == 507)
        #endif
    }
}
