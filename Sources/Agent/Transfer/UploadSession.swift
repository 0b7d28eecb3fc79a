import GantryProtocol
import NIOCore
import NIOHTTP1
import SystemPackage

/// Sends one file through an upload session of the API (`APIModels+Artifacts.swift`):
/// `PATCH /v1/artifact-uploads/{id}` with `Upload-Offset` in chunks from the session's
/// offset, then `POST …/complete`. After a dropped connection or a 5xx it asks the
/// session where it stands (`GET`) and resumes from there, bounded by the client's
/// `attempts`. A 409 carries the session: the upload resumes from its offset, and while
/// 409s bring no progress (the session is still held by the request a dropped connection
/// left behind) it waits and tries again for up to `sessionBusyBudget`, long enough for
/// the API to notice the dead connection and let go. A cancel or the step's timeout ends
/// any wait at once.
struct UploadSession {
    let client: TransferHTTPClient

    func send(_ session: API.ArtifactUpload, file: SystemPackage.FileDescriptor, size: UInt64) async throws {
        // Born complete: the coordinator holds these bytes already, or (a cache) an entry
        // under the key, which may be another archive of another size: nothing to send.
        if session.artifact != nil || session.cache != nil { return }
        var session = session
        guard session.size == size else {
            throw TransferError.protocolViolation("the session is for \(session.size) bytes, the file has \(size)")
        }
        let path = "/v1/artifact-uploads/\(QueryEncoding.encode(session.id))"
        var busy = BusyWait(client: client)
        var failures = 0
        var pause = client.configuration.initialBackoff
        while true {
            while session.offset < size {
                let offset = session.offset
                let length = min(client.configuration.uploadChunkBytes, size - offset)
                do {
                    let response = try await client.send(
                        .PATCH, path,
                        headers: [("Upload-Offset", String(offset)), ("Content-Type", "application/octet-stream")],
                        body: .file(file, offset: offset, length: length))
                    switch response.status {
                    case 200..<300, 409:
                        // 409: the session's own offset differs from ours, or another
                        // request still holds it; resume from its offset.
                        session = try Self.check(TransferHTTPClient.decode(API.ArtifactUpload.self, from: response), session, size)
                        if response.status == 409 || session.offset <= offset {
                            try await busy.wait("no progress at offset \(session.offset)")
                        } else {
                            busy.reset()
                            failures = 0
                            pause = client.configuration.initialBackoff
                        }
                    default:
                        let error = TransferHTTPClient.statusError(response)
                        guard error.isRetryable else { throw error }
                        throw TransferError.connection("\(error)")
                    }
                } catch let error as TransferError {
                    guard case .connection = error else { throw error }
                    failures += 1
                    guard failures < client.configuration.attempts else { throw error }
                    do { try await Task.sleep(for: pause * Double.random(in: 0.5...1.0)) } catch { throw TransferError.stopped }
                    pause = min(pause * 2, client.configuration.maximumBackoff)
                    session = try await client.json(.GET, path, as: API.ArtifactUpload.self)
                    guard session.size == size else { throw TransferError.protocolViolation("the session's size changed") }
                }
            }
            let done = try await client.jsonResponse(.POST, "\(path)/complete", body: Optional<Never>.none)
            guard done.status == 409 else {
                guard (200..<300).contains(done.status) else { throw TransferHTTPClient.statusError(done) }
                return
            }
            // The request a dropped connection left behind may still hold the session, or
            // it holds less than we thought: wait, send what is missing, complete again.
            session = try Self.check(TransferHTTPClient.decode(API.ArtifactUpload.self, from: done), session, size)
            try await busy.wait("the session stayed busy at completion")
        }
    }

    private static func check(_ next: API.ArtifactUpload, _ session: API.ArtifactUpload, _ size: UInt64) throws -> API.ArtifactUpload {
        guard next.id == session.id, next.size == size, next.offset <= size else {
            throw TransferError.protocolViolation("the session changed under the upload")
        }
        return next
    }
}

/// The pauses between 409s that bring no progress: jittered exponential backoff up to
/// `maximumBackoff`, for at most `sessionBusyBudget` from the first of a run of them.
struct BusyWait {
    let client: TransferHTTPClient
    private var since: ContinuousClock.Instant?
    private var pause: Duration

    init(client: TransferHTTPClient) {
        self.client = client
        self.pause = client.configuration.initialBackoff
    }

    mutating func reset() {
        since = nil
        pause = client.configuration.initialBackoff
    }

    mutating func wait(_ what: String) async throws {
        let now = ContinuousClock.now
        let start = since ?? now
        since = start
        let budget = client.configuration.sessionBusyBudget
        // Not `.connection`: the caller retries those; this is the end of the retries.
        guard now - start < budget else {
            throw TransferError.status(409, "session_busy: \(what); the session stayed busy for \(budget)")
        }
        do { try await Task.sleep(for: pause * Double.random(in: 0.5...1.0)) } catch { throw TransferError.stopped }
        pause = min(pause * 2, client.configuration.maximumBackoff)
    }
}
