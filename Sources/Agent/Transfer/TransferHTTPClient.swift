import GantryProtocol
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SystemPackage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The agent's own small HTTP/1.1 client for artifacts and caches: one connection per
/// request (`Connection: close`), bearer job token, bounded JSON answers, file bodies
/// streamed in both directions, an idle timeout, and bounded retries with backoff.
///
/// Not AsyncHTTPClient: the agent stays lean (docs/architecture.md, "Lean"), and what a
/// transfer needs is a request, a streamed body and a status. Each request runs on the
/// caller's task (the job's, never the agent connection's) and on `eventLoopGroup`, a
/// loop of its own (`TransferHTTPClient.eventLoopGroup`), so a large upload's TLS and
/// socket work never queue behind or in front of the agent connection's heartbeats and log
/// acknowledgements. Cancelling the task closes the connection at once.
public struct TransferHTTPClient: Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: TimeAmount = .seconds(10)
        /// Nothing read or written for this long: the connection is closed (and retried).
        public var idleTimeout: TimeAmount = .seconds(60)
        /// Largest JSON (or error) body the agent reads into memory.
        public var maximumJSONBytes = 4 << 20
        /// Tries of one request, the first included, for connection failures and 5xx/429.
        public var attempts = 6
        public var initialBackoff: Duration = .milliseconds(200)
        public var maximumBackoff: Duration = .seconds(5)
        /// How long an upload keeps retrying while the API answers 409 without progress
        /// (`UploadSession`). After a half-open drop the API holds the session for the
        /// request left behind until it notices the connection is gone (its HTTP idle
        /// timeout, 30 s), so this must outlast that; `attempts` would give up in seconds.
        public var sessionBusyBudget: Duration = .seconds(60)
        /// Most bytes sent in one `PATCH` of an upload session. Large on purpose: the API
        /// keeps (syncs and records) whatever arrived before a dropped connection, so a
        /// resume never depends on the chunk, while each chunk costs a connection (TLS
        /// handshake), an fsync the upload waits for, and a store write: at 8 MiB, 128 of
        /// each per GiB.
        public var uploadChunkBytes: UInt64 = 1 << 30
        /// Bytes read from a file or written to one at a time.
        public var fileBufferBytes = 1 << 20

        public init() {}
    }

    /// One thread for every transfer of this process, apart from the agent connection's
    /// loops (`MultiThreadedEventLoopGroup.singleton`).
    public static let eventLoopGroup: MultiThreadedEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    public let endpoint: TransferEndpoint
    let token: String
    let sslContext: NIOSSLContext?
    let group: any EventLoopGroup
    public var configuration: Configuration

    /// `caFile`: the PEM the API's certificate chains to (the agent's pinned CA, when the
    /// lease says the API serves the coordinator's certificate); nil trusts the system's
    /// roots.
    public init(
        endpoint: TransferEndpoint, token: String, caFile: String?, configuration: Configuration = .init(),
        group: any EventLoopGroup = TransferHTTPClient.eventLoopGroup
    ) throws(TransferError) {
        guard !token.isEmpty else { throw .noJobToken }
        self.endpoint = endpoint
        self.token = token
        self.configuration = configuration
        self.group = group
        if endpoint.secure {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            do {
                if let caFile {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
                }
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw .invalidAPIURL("cannot set up TLS: \(error)")
            }
        } else {
            sslContext = nil
        }
    }

    // MARK: - Requests

    public enum Body: Sendable {
        case empty
        case bytes([UInt8])
        /// `length` bytes of the open file from `offset`, read as they are sent.
        case file(SystemPackage.FileDescriptor, offset: UInt64, length: UInt64)

        var length: UInt64 {
            switch self {
            case .empty: 0
            case .bytes(let bytes): UInt64(bytes.count)
            case .file(_, _, let length): length
            }
        }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        /// The body, unless it went to the sink; at most `maximumJSONBytes`.
        public var body: [UInt8]
    }

    /// One request on a fresh connection, without retries. A 2xx body goes to `sink`
    /// when there is one (streamed, nothing buffered), else into `Response.body`; an
    /// error body is read (bounded) for its message. Throws `TransferError.connection`
    /// when the connection fails or ends before the response does; what `sink` took until
    /// then stays taken, so a download can resume after it.
    public func send(
        _ method: HTTPMethod, _ path: String, headers extra: [(String, String)] = [], body: Body = .empty,
        sink: ((_ status: Int, ByteBuffer) async throws -> Void)? = nil
    ) async throws -> Response {
        try Task.checkCancellation()
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await connect()
        } catch let error as TransferError {
            throw error
        } catch {
            throw TransferError.connection("\(endpoint.host):\(endpoint.port): \(error)")
        }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: endpoint.basePath + path)
        head.headers.add(name: "Host", value: endpoint.hostHeader)
        head.headers.add(name: "Authorization", value: "Bearer \(token)")
        head.headers.add(name: "User-Agent", value: "gantry-agent")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in extra { head.headers.add(name: name, value: value) }
        if method != .GET && method != .HEAD { head.headers.add(name: "Content-Length", value: String(body.length)) }
        let underlying = channel.channel
        return try await withTaskCancellationHandler {
            do {
                return try await channel.executeThenClose { inbound, outbound in
                    // The API may answer and close as soon as it has the last byte of the
                    // body, before our (empty) `.end` or a flush of it goes out: a write
                    // that fails is only a failure if no whole response came back either.
                    var writeFailure: (any Error)?
                    do {
                        switch body {
                        case .empty, .bytes:
                            var parts: [HTTPClientRequestPart] = [.head(head)]
                            if case .bytes(let bytes) = body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: bytes)))) }
                            parts.append(.end(nil))
                            try await outbound.write(contentsOf: parts)
                        case .file:
                            try await outbound.write(.head(head))
                            try await writeBody(body, to: outbound)
                            try await outbound.write(.end(nil))
                        }
                    } catch {
                        writeFailure = error
                    }
                    do {
                        return try await readResponse(inbound, sink: sink)
                    } catch {
                        throw writeFailure ?? error
                    }
                }
            } catch let error as TransferError {
                throw error
            } catch {
                if Task.isCancelled { throw TransferError.stopped }
                throw TransferError.connection("\(error)")
            }
        } onCancel: {
            underlying.close(promise: nil)
        }
    }

    private func connect() async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let sslContext = self.sslContext
        let host = endpoint.host
        let idle = configuration.idleTimeout
        // Hostname verification needs a name, not an IP literal, in SNI; NIOSSL checks IP SANs itself.
        let serverHostname = AgentChannel.isIPAddress(host) ? nil : host
        return try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            // An upload's next file buffer is read while the loop encrypts and sends the
            // previous one: with NIO's default 64 KiB high-water mark every buffer made the
            // channel unwritable, so reading and sending took turns.
            .channelOption(.writeBufferWaterMark, value: .init(low: 2 << 20, high: 4 << 20))
            .connectTimeout(configuration.connectTimeout)
            .connect(host: host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(allTimeout: idle))
                    try pipeline.addHandler(CloseWhenIdle())
                    if let sslContext {
                        try pipeline.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    }
                    try pipeline.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
    }

    private func writeBody(
        _ body: Body, to outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    ) async throws {
        switch body {
        case .empty: return
        case .bytes(let bytes):
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
        case .file(let descriptor, let offset, let length):
            var sent: UInt64 = 0
            let allocator = ByteBufferAllocator()
            while sent < length {
                try Task.checkCancellation()
                let want = Int(min(UInt64(configuration.fileBufferBytes), length - sent))
                var buffer = allocator.buffer(capacity: want)
                let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { raw in
                    try descriptor.read(
                        fromAbsoluteOffset: Int64(offset + sent),
                        into: UnsafeMutableRawBufferPointer(rebasing: raw.prefix(want)))
                }
                guard count > 0 else { throw TransferError.file("the file ended \(length - sent) bytes early") }
                sent += UInt64(count)
                // Awaiting the write is the backpressure: nothing more is read from the
                // file until the socket took this buffer.
                try await outbound.write(.body(.byteBuffer(buffer)))
            }
        }
    }

    private func readResponse(
        _ inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>, sink: ((_ status: Int, ByteBuffer) async throws -> Void)?
    ) async throws -> Response {
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        for try await part in inbound {
            switch part {
            case .head(let received):
                // 1xx answers are followed by the real one.
                if received.status.code < 200 { continue }
                head = received
            case .body(let buffer):
                guard let head else { throw TransferError.protocolViolation("a body before the status line") }
                if let sink, (200..<300).contains(Int(head.status.code)) {
                    try await sink(Int(head.status.code), buffer)
                } else {
                    guard body.count + buffer.readableBytes <= configuration.maximumJSONBytes else {
                        throw TransferError.protocolViolation("a body of more than \(configuration.maximumJSONBytes) bytes")
                    }
                    body.append(contentsOf: buffer.readableBytesView)
                }
            case .end:
                guard let head else { throw TransferError.protocolViolation("the response ended before its status line") }
                return Response(status: Int(head.status.code), headers: head.headers, body: body)
            }
        }
        throw TransferError.connection("the connection closed before the response ended")
    }

    // MARK: - Retries

    /// `operation` until it succeeds, fails for good, or `attempts` are used; between
    /// tries a jittered exponential pause. Only retryable `TransferError`s are retried.
    public func retrying<Result>(
        _ what: String, _ operation: (_ attempt: Int) async throws -> Result
    ) async throws -> Result {
        var pause = configuration.initialBackoff
        var attempt = 1
        while true {
            do {
                return try await operation(attempt)
            } catch let error as TransferError where error.isRetryable && attempt < configuration.attempts {
                attempt += 1
                let jittered = pause * Double.random(in: 0.5...1.0)
                do { try await Task.sleep(for: jittered) } catch { throw TransferError.stopped }
                pause = min(pause * 2, configuration.maximumBackoff)
            } catch is CancellationError {
                throw TransferError.stopped
            }
        }
    }

    // MARK: - JSON

    /// A request whose 2xx answer is JSON of type `T`, retried.
    public func json<T: Decodable>(
        _ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<Never>.none, as type: T.Type
    ) async throws -> T {
        let response = try await jsonResponse(method, path, body: body)
        guard (200..<300).contains(response.status) else { throw Self.statusError(response) }
        return try Self.decode(T.self, from: response)
    }

    /// A JSON request, retried; the answer whatever its status.
    public func jsonResponse(
        _ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<Never>.none
    ) async throws -> Response {
        var payload: Body = .empty
        var headers = [("Accept", "application/json")]
        if let body {
            do {
                payload = .bytes(Array(try API.encoder.encode(body)))
            } catch {
                throw TransferError.protocolViolation("cannot encode the request: \(error)")
            }
            headers.append(("Content-Type", "application/json"))
        }
        return try await retrying("\(method) \(path)") { _ in
            let response = try await send(method, path, headers: headers, body: payload)
            if response.status >= 500 || response.status == 429 { throw Self.statusError(response) }
            return response
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from response: Response) throws -> T {
        do {
            return try API.decoder.decode(T.self, from: Data(response.body))
        } catch {
            throw TransferError.protocolViolation("cannot decode \(T.self): \(error)")
        }
    }

    /// `409 upload_offset_mismatch: …`: the status and the API's own code and message.
    static func statusError(_ response: Response) -> TransferError {
        if let body = try? API.decoder.decode(API.ErrorBody.self, from: Data(response.body)) {
            return .status(response.status, "\(body.error.code): \(String(body.error.message.prefix(300)))")
        }
        return .status(response.status, "")
    }
}

/// Closes the connection on `IdleStateHandler`'s event: the request then fails with a
/// connection error and is retried.
private final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
