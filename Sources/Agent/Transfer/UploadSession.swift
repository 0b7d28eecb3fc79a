import GantryProtocol
import NIOCore
import NIOHTTP1
import SystemPackage

/// Sends one file through an upload session of the API (`APIModels+Artifacts.swift`):
/// `PATCH /v1/artifact-uploads/{id}` with `Upload-Offset` in chunks from the session's
/// offset, then `POST …/complete`. After a dropped connection or a 5xx it asks the
/// session where it stands (`GET`) and resumes from there; a 409 carries the session, and
/// the upload resumes from its offset. Rounds without progress are bounded by the
/// client's `attempts`.
struct UploadSession {
    let client: TransferHTTPClient

    /// `rounds`: how many times a 409 at completion sends the upload back to its session.
    func send(_ session: API.ArtifactUpload, file: SystemPackage.FileDescriptor, size: UInt64, rounds: Int = 3) async throws {
        var session = session
        guard session.size == size else {
            throw TransferError.protocolViolation("the session is for \(session.size) bytes, the file has \(size)")
        }
        // Born complete: the coordinator holds these bytes already.
        if session.artifact != nil || session.cache != nil { return }
        var failures = 0
        var pause = client.configuration.initialBackoff
        while session.offset < size {
            let offset = session.offset
            let length = min(client.configuration.uploadChunkBytes, size - offset)
            let path = "/v1/artifact-uploads/\(QueryEncoding.encode(session.id))"
            do {
                let response = try await client.send(
                    .PATCH, path,
                    headers: [("Upload-Offset", String(offset)), ("Content-Type", "application/octet-stream")],
                    body: .file(file, offset: offset, length: length))
                switch response.status {
                case 200..<300, 409:
                    // 409: the session's own offset differs from ours; resume from it.
                    let next = try TransferHTTPClient.decode(API.ArtifactUpload.self, from: response)
                    guard next.id == session.id, next.size == size, next.offset <= size else {
                        throw TransferError.protocolViolation("the session changed under the upload")
                    }
                    session = next
                    if response.status == 409 || next.offset <= offset {
                        // No progress: the session may still be held by the request a
                        // dropped connection left behind (the API answers 409 until it
                        // lets go), so wait before the next try.
                        failures += 1
                        guard failures < client.configuration.attempts else {
                            throw TransferError.connection("no progress after \(failures) tries at offset \(session.offset)")
                        }
                        do { try await Task.sleep(for: pause * Double.random(in: 0.5...1.0)) } catch { throw TransferError.stopped }
                        pause = min(pause * 2, client.configuration.maximumBackoff)
                    } else {
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
                continue
            }
        }
        let done = try await client.jsonResponse(
            .POST, "/v1/artifact-uploads/\(QueryEncoding.encode(session.id))/complete", body: Optional<Never>.none)
        if done.status == 409, rounds > 1 {
            // The request a dropped connection left behind may still hold the session, or
            // it holds less than we thought: look again, send what is missing, complete.
            let held = try TransferHTTPClient.decode(API.ArtifactUpload.self, from: done)
            guard held.id == session.id, held.size == size, held.offset <= size else {
                throw TransferError.protocolViolation("the session changed under the upload")
            }
            do { try await Task.sleep(for: client.configuration.initialBackoff) } catch { throw TransferError.stopped }
            return try await send(held, file: file, size: size, rounds: rounds - 1)
        }
        guard (200..<300).contains(done.status) else { throw TransferHTTPClient.statusError(done) }
    }
}
