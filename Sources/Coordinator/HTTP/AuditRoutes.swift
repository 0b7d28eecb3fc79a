import Foundation
import GantryProtocol
import Hummingbird
import NIOCore
import NIOPosix

extension APIRouter {
    /// `GET /v1/audit` (a page, or `?format=jsonl`: every matching record as JSON lines for
    /// a SIEM) and `GET /v1/audit/verify`. Both need `read_audit` (admin).
    static func addAuditRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let store = audit.store

        router.on(.listAudit, audit: audit) { request, _ -> Response in
            let query = request.uri.queryParameters
            let filter: AuditFilter
            do throws(AuditFilter.Invalid) {
                filter = try AuditFilter(
                    since: query.get("since"), actor: query.get("actor"), object: query.get("object"),
                    after: query.get("after"), limit: query.get("limit"))
            } catch {
                return APIResponses.error(.badRequest, code: "bad_request", message: error.description)
            }
            switch query.get("format") ?? "json" {
            case "json":
                let records = try store.auditRecords(filter)
                let next = records.count == filter.limit ? records.last?.seq : nil
                return APIResponses.json(API.AuditPage(records: records.map(\.apiView), next: next))
            case "jsonl":
                return Response(
                    status: .ok, headers: [.contentType: "application/x-ndjson"],
                    body: ResponseBody { writer in
                        try await store.forEachAuditBatch(filter) { batch in
                            try await writer.write(try jsonLines(batch))
                        }
                        try await writer.finish(nil)
                    })
            default:
                return APIResponses.error(.badRequest, code: "bad_request", message: "format is json or jsonl")
            }
        }

        router.on(.verifyAudit, audit: audit) { request, _ -> Response in
            let text = request.uri.queryParameters.get("anchor") ?? ""
            let anchor = text.isEmpty ? nil : AuditAnchor(parsing: text)
            if !text.isEmpty, anchor == nil {
                return APIResponses.error(
                    .badRequest, code: "bad_request", message: "anchor is SEQ:HASH as `audit verify` prints the head")
            }
            // A long chain takes a while to hash: keep it off the request threads.
            let result = try await NIOThreadPool.singleton.runIfActive { try store.verifyAudit(anchor: anchor) }
            return APIResponses.json(result.apiView)
        }
    }

    /// One compact JSON object per record, each ending in a newline.
    static func jsonLines(_ records: [AuditRecord]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for record in records {
            buffer.writeBytes(try API.encoder.encode(record.apiView))
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        return buffer
    }
}
