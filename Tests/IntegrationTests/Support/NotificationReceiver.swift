import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A webhook receiver on 127.0.0.1 for the notification tests: records every request
/// (headers and body) and answers each with the next scripted status (`fallback`, 200
/// unless changed, once the script is used up).
final class NotificationReceiver: Sendable {
    struct Received: Sendable {
        var headers: [String: String]
        var body: [UInt8]
        /// The status the receiver answered it with.
        var status = 0
    }

    private final class State: Sendable {
        let value: Mutex<(received: [Received], script: [Int], fallback: Int)>
        init(script: [Int]) { value = Mutex(([], script, 200)) }
    }

    private let state: State
    private let channel: any Channel
    let port: Int

    var received: [Received] { state.value.withLock { $0.received } }

    /// What every request is answered with once the script is used up.
    func answer(_ status: Int) { state.value.withLock { $0.fallback = status } }

    init(answering script: [Int]) async throws {
        let state = State(script: script)
        self.state = state
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(record: { received in
                        state.value.withLock { state in
                            var received = received
                            received.status = state.script.isEmpty ? state.fallback : state.script.removeFirst()
                            state.received.append(received)
                            return received.status
                        }
                    }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    var url: String { "http://127.0.0.1:\(port)/hooks/ci" }

    func stop() async {
        try? await channel.close()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let record: @Sendable (Received) -> Int
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(record: @escaping @Sendable (Received) -> Int) { self.record = record }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(var buffer):
                // Bounded: the coordinator's bodies are small summaries.
                if body.count < 1 << 20 { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
            case .end:
                var headers: [String: String] = [:]
                for (name, value) in head?.headers ?? [:] { headers[name.lowercased()] = value }
                let status = record(Received(headers: headers, body: body))
                let text = status == 200 ? "ok" : "receiver says \(status)"
                var responseHeaders = HTTPHeaders()
                responseHeaders.add(name: "Content-Length", value: String(text.utf8.count))
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: responseHeaders))),
                    promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
