import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The dashboard's stylesheet and scripts, embedded in the binary. Served with an ETag
/// (their sha256) so a browser revalidates cheaply, and `nosniff` so a script is never
/// read as anything else.
struct DashboardAssets: Sendable {
    struct Asset: Sendable {
        var bytes: ByteBuffer
        var contentType: String
        var etag: String
    }

    let assets: [String: Asset]

    init() {
        var assets: [String: Asset] = [:]
        for (name, bytes, type) in [
            ("dashboard.css", PackageResources.dashboard_css, "text/css; charset=utf-8"),
            ("dashboard.js", PackageResources.dashboard_js, "text/javascript; charset=utf-8"),
            ("pipeline.js", PackageResources.pipeline_js, "text/javascript; charset=utf-8"),
            ("log.js", PackageResources.log_js, "text/javascript; charset=utf-8"),
            ("tables.js", PackageResources.tables_js, "text/javascript; charset=utf-8"),
        ] {
            let digest = SHA256.hash(data: bytes).prefix(12).map { String(format: "%02x", $0) }.joined()
            assets[name] = Asset(bytes: ByteBuffer(bytes: bytes), contentType: type, etag: "\"\(digest)\"")
        }
        self.assets = assets
    }

    func response(name: String, ifNoneMatch: String?) -> Response {
        guard let asset = assets[name] else {
            return Response(status: .notFound, body: ResponseBody(byteBuffer: ByteBuffer(string: "no such asset\n")))
        }
        var headers: HTTPFields = [
            .contentType: asset.contentType, .eTag: asset.etag, .cacheControl: "no-cache",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        ]
        if ifNoneMatch == asset.etag {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: asset.bytes))
    }
}
