import Crypto
import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import NIOCore
import Testing

/// Hashing an upload as it is written: the running sha256 kept between a session's
/// PATCHes (`PartDigests`), the batches a PATCH writes in (`PartBatch`), the part writer
/// that extends the digest, the completion that uses it only when it covers the whole
/// file, and blobs read back in chunks with one read ahead.
@Suite("Part digests")
final class PartDigestTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-part-digests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func sha(_ bytes: some Sequence<UInt8>) -> String { ArtifactDigest.hex(SHA256.hash(data: Array(bytes))) }

    static func bytes(_ count: Int, seed: Int = 7) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &+ seed) &* 2_654_435_761 >> 7) }
    }

    func service() throws -> ArtifactService {
        ArtifactService(
            store: try SQLiteStore(path: directory + "/gantry.sqlite"), blobs: try BlobStore(root: directory + "/artifacts"),
            logger: Logger(label: "test"))
    }

    @Test func aKeptDigestIsOnlyTakenForExactlyTheBytesItCovers() {
        let digests = PartDigests()
        #expect(digests.take("s", coveringBytes: 0)?.bytes == 0, "a session at 0 starts a fresh digest")
        #expect(digests.take("s", coveringBytes: 10) == nil, "nothing kept: hash the file instead")
        var running = PartDigests.Running()
        running.hasher.update(data: [1, 2, 3])
        running.bytes = 3
        digests.keep("s", running)
        #expect(digests.take("s", coveringBytes: 4) == nil, "another length than the store's offset is never trusted")
        #expect(digests.take("s", coveringBytes: 3) == nil, "a take removes the entry, even a refused one")
        digests.keep("s", running)
        #expect(digests.take("s", coveringBytes: 3)?.finalize() == Self.sha([1, 2, 3]))
        #expect(digests.count == 0)
        digests.keep("s", running)
        digests.drop("s")
        #expect(digests.count == 0)
    }

    @Test func keptDigestsAreBounded() {
        let digests = PartDigests()
        for n in 0..<(PartDigests.maximumEntries + 10) { digests.keep("s\(n)", PartDigests.Running()) }
        #expect(digests.count == PartDigests.maximumEntries)
        // One already kept may still be replaced.
        var running = PartDigests.Running()
        running.bytes = 0
        digests.keep("s0", running)
        #expect(digests.count == PartDigests.maximumEntries)
    }

    @Test func aBatchGathersBuffersUntilItsLimitWithoutCopying() {
        var batch = PartBatch(limit: 10)
        #expect(batch.isEmpty)
        let first = batch.append(ByteBuffer(bytes: [1, 2, 3, 4]))
        let empty = batch.append(ByteBuffer())
        let full = batch.append(ByteBuffer(bytes: [5, 6, 7, 8, 9, 10, 11]))
        #expect(!first && !empty && full)
        #expect(batch.bytes == 11)
        let taken = batch.take()
        #expect(taken.map(\.readableBytes) == [4, 7])
        #expect(batch.isEmpty && batch.bytes == 0 && batch.buffers.isEmpty)
    }

    /// A chunked body of 1-byte chunks arrives one buffer per chunk: a batch is full at one
    /// `pwritev`'s worth of buffers, whatever their bytes, so it never holds a million.
    @Test func aBatchIsAlsoBoundedByItsNumberOfBuffers() {
        var batch = PartBatch(limit: 1 << 20)
        var full = false
        for index in 1...VectoredFileWrite.maximumVectors {
            full = batch.append(ByteBuffer(bytes: [1]))
            if full { #expect(index == VectoredFileWrite.maximumVectors) }
        }
        #expect(full && batch.bytes == VectoredFileWrite.maximumVectors)
    }

    /// Two PATCHes' worth of writes, the digest kept in between as the route does: the
    /// completion's digest is the file's, without reading it.
    @Test func aDigestCarriedAcrossWritersMatchesTheFile() async throws {
        let service = try service()
        let bytes = Self.bytes(3 * BlobStore.batchBytes + 12_345)
        try service.blobs.createPart("s1")
        let first = try await service.blobs.openPart("s1", at: 0, digest: service.partDigests.take("s1", coveringBytes: 0))
        try await first.write([ByteBuffer(bytes: bytes[..<100]), ByteBuffer(bytes: bytes[100..<1_500_000])])
        #expect(await first.finish() == nil)
        service.partDigests.keep("s1", try #require(first.digest))
        let second = try await service.blobs.openPart(
            "s1", at: first.offset, digest: service.partDigests.take("s1", coveringBytes: first.offset))
        #expect(second.digest != nil)
        try await second.write(ByteBuffer(bytes: bytes[1_500_000...]))
        #expect(await second.finish() == nil)
        service.partDigests.keep("s1", try #require(second.digest))
        let (digest, size) = try await APIRouter.partDigest("s1", size: Int64(bytes.count), service)
        #expect(digest == Self.sha(bytes) && size == Int64(bytes.count))
        #expect(service.partDigests.count == 0, "the completion took it")
    }

    /// No kept digest (a restart), or one whose file holds more than it covers (a write
    /// that failed part-way left a tail): the completion hashes the file itself.
    @Test func withoutAMatchingDigestTheFileIsHashed() async throws {
        let service = try service()
        let bytes = Self.bytes(200_000)
        try service.blobs.createPart("s1")
        let writer = try await service.blobs.openPart("s1", at: 0)
        #expect(writer.digest == nil)
        try await writer.write(ByteBuffer(bytes: bytes))
        #expect(await writer.finish() == nil)
        var result = try await APIRouter.partDigest("s1", size: 200_000, service)
        #expect(result.digest == Self.sha(bytes) && result.size == 200_000)

        // A digest of 200,000 bytes kept, but the file is longer: the file wins.
        var running = PartDigests.Running()
        running.hasher.update(data: bytes)
        running.bytes = 200_000
        service.partDigests.keep("s1", running)
        let tail = try await service.blobs.openPart("s1", at: 200_000)
        try await tail.write(ByteBuffer(bytes: [1, 2, 3]))
        _ = await tail.finish()
        result = try await APIRouter.partDigest("s1", size: 200_000, service)
        #expect(result.size == 200_003 && result.digest == Self.sha(bytes + [1, 2, 3]))
    }

    /// Several chunks, a range that starts and ends inside them: every byte once, in order.
    @Test func aBlobIsStreamedInChunksWithOneReadAhead() async throws {
        let blobs = try BlobStore(root: directory + "/artifacts")
        let bytes = Self.bytes(2 * BlobStore.batchBytes + 777)
        try blobs.createPart("s")
        let writer = try await blobs.openPart("s", at: 0)
        try await writer.write(ByteBuffer(bytes: bytes))
        _ = await writer.finish()
        let digest = Self.sha(bytes)
        try await blobs.place(part: "s", as: digest)
        let reader = try blobs.openBlob(digest)
        defer { reader.finish() }
        var read: [UInt8] = []
        var chunks: [Int] = []
        try await reader.stream(from: 5, through: Int64(bytes.count) - 3) {
            chunks.append($0.readableBytes)
            read += Array($0.readableBytesView)
        }
        #expect(read == Array(bytes[5...(bytes.count - 3)]))
        #expect(chunks.allSatisfy { $0 <= BlobStore.batchBytes } && chunks.count == 3)

        // A writer that fails stops the stream with its error.
        struct Stop: Error {}
        var calls = 0
        await #expect(throws: Stop.self) {
            try await reader.stream(from: 0, through: Int64(bytes.count) - 1) { _ in
                calls += 1
                throw Stop()
            }
        }
        #expect(calls == 1)
    }
}
