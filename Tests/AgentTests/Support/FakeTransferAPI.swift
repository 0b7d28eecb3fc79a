import Crypto
import Foundation
import GantryProtocol
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A test double of the coordinator's artifact routes (`APIRoute`, `APIModels+Artifacts`):
/// upload sessions with `Upload-Offset` and 409, `Range` downloads with `X-Gantry-Sha256`,
/// and listings, on 127.0.0.1 with NIOHTTP1. It can misbehave on purpose: drop a PATCH or a
/// download after some bytes, claim a different offset once, or serve wrong bytes. The
/// real routes are tested end to end by the lead after the merge.
final class FakeTransferAPI: Sendable {
    struct Session {
        var id: String
        var name: String
        var size: UInt64
        var sha256: String
        var bytes: [UInt8]
        var complete = false
        /// A cache upload's key; nil for an artifact.
        var cacheKey: String?
    }

    struct State {
        var sessions: [String: Session] = [:]
        /// digest -> bytes, and the listing of pipeline "p".
        var blobs: [String: [UInt8]] = [:]
        var artifacts: [API.Artifact] = []
        /// Requests seen, as "METHOD path [Range|Upload-Offset]".
        var requests: [String] = []
        /// Close the next PATCH after this many body bytes (kept), once.
        var dropPatchAfter: Int?
        /// Close the next content download after this many body bytes, once.
        var dropDownloadAfter: Int?
        /// Bytes the next created session already holds (a lost answer's worth), once.
        var prefillNextSession: [UInt8]?
        /// Answer the next PATCH, and the next completion, with 409 and the session, as the
        /// API does while a dropped request still holds the session.
        var busyPatches = 0
        var busyCompletions = 0
        /// Answer every PATCH and completion with 409 until then (a session held by a
        /// half-open request until the server's idle timeout notices).
        var busyUntil: ContinuousClock.Instant?
        /// Serve these bytes instead of the blob (a corrupt store).
        var corrupt = false
        /// Whether `Authorization: Bearer token` was on every request.
        var unauthorized = 0
        /// Cache entries by key.
        var caches: [String: API.CacheEntry] = [:]
    }

    let state = Mutex(State())
    let token: String
    private let channel: any Channel

    var port: Int { channel.localAddress?.port ?? 0 }
    var url: String { "http://127.0.0.1:\(port)" }

    init(token: String) async throws {
        self.token = token
        let box = Box()
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(api: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        box.api.withLock { $0 = self }
    }

    func close() async { try? await channel.close() }

    static func hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// Stores `bytes` as an artifact `name` of step `step` of pipeline `p`.
    func addArtifact(name: String, step: String, bytes: [UInt8]) {
        let digest = Self.hex(bytes)
        state.withLock {
            $0.blobs[digest] = bytes
            $0.artifacts.append(
                API.Artifact(
                    sha256: digest, name: name, size: UInt64(bytes.count), pipelineId: "p", stepKey: step, jobId: "j0",
                    attempt: 1, commit: "", agentId: "h/1", createdAt: Date()))
        }
    }

    final class Box: Sendable {
        let api = Mutex<FakeTransferAPI?>(nil)
    }

    /// One connection's requests, on its event loop.
    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let box: Box
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        /// The PATCH's session while its bytes are appended as they arrive.
        var patching: String?
        var patchConflict: API.ArtifactUpload?
        var dropAfter: Int?
        var received = 0

        init(api: Box) { self.box = api }

        var api: FakeTransferAPI? { box.api.withLock { $0 } }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let api else { return }
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
                patching = nil
                patchConflict = nil
                received = 0
                let note = head.headers.first(name: "Range") ?? head.headers.first(name: "Upload-Offset").map { "offset=\($0)" } ?? ""
                api.state.withLock {
                    $0.requests.append("\(head.method) \(head.uri) \(note)")
                    if head.headers.first(name: "Authorization") != "Bearer \(api.token)" { $0.unauthorized += 1 }
                }
                if head.method == .PATCH, let id = head.uri.split(separator: "/").last.map(String.init) {
                    let offset = head.headers.first(name: "Upload-Offset").flatMap(UInt64.init)
                    api.state.withLock { state in
                        guard let session = state.sessions[id] else { return }
                        let held = state.busyUntil.map { ContinuousClock.now < $0 } ?? false
                        if offset != UInt64(session.bytes.count) || state.busyPatches > 0 || held {
                            state.busyPatches = max(state.busyPatches - 1, 0)
                            patchConflict = Self.shape(session)
                        } else {
                            patching = id
                            dropAfter = state.dropPatchAfter
                            state.dropPatchAfter = nil
                        }
                    }
                }
            case .body(let buffer):
                if let id = patching {
                    let bytes = Array(buffer.readableBytesView)
                    var keep = bytes
                    var drop = false
                    if let limit = dropAfter, received + bytes.count >= limit {
                        keep = Array(bytes.prefix(limit - received))
                        drop = true
                    }
                    received += keep.count
                    api.state.withLock { $0.sessions[id]?.bytes.append(contentsOf: keep) }
                    if drop {
                        context.close(promise: nil)
                        patching = nil
                    }
                } else {
                    body.append(contentsOf: buffer.readableBytesView)
                }
            case .end:
                guard let head else { return }
                respond(context: context, api: api, head: head)
            }
        }

        static func shape(_ session: Session) -> API.ArtifactUpload {
            API.ArtifactUpload(id: session.id, offset: UInt64(session.bytes.count), size: session.size, sha256: session.sha256)
        }

        func respond(context: ChannelHandlerContext, api: FakeTransferAPI, head: HTTPRequestHead) {
            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
            let parts = path.split(separator: "/").map(String.init)
            if let conflict = patchConflict {
                return json(context, status: .conflict, conflict)
            }
            switch (head.method, parts.count) {
            case (.PATCH, 3):
                let session = api.state.withLock { $0.sessions[parts[2]] }
                guard let session else { return error(context, .notFound) }
                json(context, status: .ok, Self.shape(session))
            case (.GET, 3) where parts[1] == "artifact-uploads":
                let session = api.state.withLock { $0.sessions[parts[2]] }
                guard let session else { return error(context, .notFound) }
                json(context, status: .ok, Self.shape(session))
            case (.POST, 4) where parts[1] == "artifact-uploads" && parts[3] == "complete":
                let (session, busy) = api.state.withLock { state in
                    defer { state.busyCompletions = max(state.busyCompletions - 1, 0) }
                    let held = state.busyUntil.map { ContinuousClock.now < $0 } ?? false
                    return (state.sessions[parts[2]], state.busyCompletions > 0 || held)
                }
                if busy, let session { return json(context, status: .conflict, Self.shape(session)) }
                guard let session, UInt64(session.bytes.count) == session.size, FakeTransferAPI.hex(session.bytes) == session.sha256
                else { return error(context, .unprocessableEntity) }
                api.state.withLock {
                    $0.sessions[parts[2]]?.complete = true
                    $0.blobs[session.sha256] = session.bytes
                    if let key = session.cacheKey {
                        $0.caches[key] = API.CacheEntry(
                            scope: "branch:main", key: key, sha256: session.sha256, size: session.size, createdAt: Date(),
                            lastUsedAt: Date())
                    }
                }
                json(context, status: .ok, Self.shape(session))
            case (.POST, 4) where parts[1] == "jobs" && parts[3] == "artifacts":
                guard let request = try? API.decoder.decode(API.CreateArtifactUpload.self, from: Data(body)) else {
                    return error(context, .badRequest)
                }
                let session = api.state.withLock { state -> Session in
                    let prefill = state.prefillNextSession ?? []
                    state.prefillNextSession = nil
                    let session = Session(
                        id: "u\(state.sessions.count + 1)", name: request.name, size: request.size, sha256: request.sha256,
                        bytes: prefill)
                    state.sessions[session.id] = session
                    return session
                }
                // A fresh session says offset 0 even when prefilled: the client learns
                // otherwise from the 409.
                json(context, status: .created, API.ArtifactUpload(id: session.id, offset: 0, size: session.size, sha256: session.sha256))
            case (.GET, 4) where parts[1] == "pipelines" && parts[3] == "artifacts":
                let list = api.state.withLock { API.ArtifactList(pipelineId: parts[2], promotedFrom: nil, artifacts: $0.artifacts) }
                json(context, status: .ok, list)
            case (.GET, 4) where parts[1] == "artifacts" && parts[3] == "content":
                let (blob, dropAfter, corrupt) = api.state.withLock { state in
                    defer { state.dropDownloadAfter = nil }
                    return (state.blobs[parts[2]], state.dropDownloadAfter, state.corrupt)
                }
                guard var blob else { return error(context, .notFound) }
                if corrupt, !blob.isEmpty { blob[0] ^= 0xFF }
                var start = 0
                var status = HTTPResponseStatus.ok
                var headers = HTTPHeaders()
                if let range = head.headers.first(name: "Range"), range.hasPrefix("bytes="), range.hasSuffix("-"),
                    let from = Int(range.dropFirst(6).dropLast()), from <= blob.count
                {
                    start = from
                    status = .partialContent
                    headers.add(name: "Content-Range", value: "bytes \(from)-\(blob.count - 1)/\(blob.count)")
                }
                headers.add(name: "X-Gantry-Sha256", value: parts[2])
                headers.add(name: "Content-Length", value: String(blob.count - start))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                var slice = Array(blob[start...])
                if let dropAfter { slice = Array(slice.prefix(dropAfter)) }
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: slice)))), promise: nil)
                if dropAfter != nil {
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer())))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
                    return
                }
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
            case (.POST, 4) where parts[1] == "jobs" && parts[3] == "cache":
                guard let request = try? API.decoder.decode(API.CreateCacheUpload.self, from: Data(body)) else {
                    return error(context, .badRequest)
                }
                // An entry under the key already: born complete with it, whatever its
                // size, as the API answers.
                if let existing = api.state.withLock({ $0.caches[request.key] }) {
                    return json(
                        context, status: .ok,
                        API.ArtifactUpload(id: "existing", offset: existing.size, size: existing.size, sha256: existing.sha256, cache: existing))
                }
                let session = api.state.withLock { state -> Session in
                    var session = Session(
                        id: "u\(state.sessions.count + 1)", name: "", size: request.size, sha256: request.sha256, bytes: [])
                    session.cacheKey = request.key
                    state.sessions[session.id] = session
                    return session
                }
                json(context, status: .created, Self.shape(session))
            case (.GET, 4) where parts[1] == "jobs" && parts[3] == "cache":
                let query = head.uri.split(separator: "?").dropFirst().first.map(String.init) ?? ""
                var key = ""
                var restoreKeys: [String] = []
                for pair in query.split(separator: "&") {
                    let items = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                    guard items.count == 2 else { continue }
                    if items[0] == "key" { key = items[1] } else if items[0] == "restore_key" { restoreKeys.append(items[1]) }
                }
                let hit = api.state.withLock { state -> API.CacheHit? in
                    if let entry = state.caches[key] { return API.CacheHit(entry: entry, exact: true) }
                    for prefix in restoreKeys {
                        if let entry = state.caches.values.filter({ $0.key.hasPrefix(prefix) }).max(by: { $0.createdAt < $1.createdAt }) {
                            return API.CacheHit(entry: entry, exact: false)
                        }
                    }
                    return nil
                }
                guard let hit else { return error(context, .notFound, code: "cache_miss") }
                json(context, status: .ok, hit)
            case (.GET, 6) where parts[1] == "jobs" && parts[3] == "cache" && parts[5] == "content":
                let blob = api.state.withLock { $0.blobs[parts[4]] }
                guard let blob else { return error(context, .notFound) }
                var headers = HTTPHeaders()
                headers.add(name: "X-Gantry-Sha256", value: parts[4])
                headers.add(name: "Content-Length", value: String(blob.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: blob)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
            default:
                error(context, .notFound)
            }
        }

        func json<T: Encodable>(_ context: ChannelHandlerContext, status: HTTPResponseStatus, _ value: T) {
            let bytes = (try? API.encoder.encode(value)).map(Array.init) ?? []
            send(context, status: status, bytes)
        }

        func error(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, code: String = "error") {
            send(context, status: status, Array("{\"error\":{\"code\":\"\(code)\",\"message\":\"\(status)\"}}".utf8))
        }

        func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus, _ bytes: [UInt8]) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(bytes.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        }
    }
}
