import AsyncHTTPClient
import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import Testing

/// The listings the coordinator reads whole (identities here; agents, secrets, tokens and
/// projects the same way) page by key: `?limit=` bounded and checked, an RFC 8288 `Link`
/// to the next page, every row seen exactly once.
@Suite("Listing pages", .serialized, .timeLimit(.minutes(3)))
struct ListingPagesTests {
    @Test func identitiesPageThroughLinkHeadersInNameOrder() async throws {
        try await TestCluster.with("listing-pages") { cluster in
            for name in ["zoe", "carol", "bob-ci", "alice"] {
                let body = try API.encoder.encode(API.SaveIdentity(name: name, kind: "person", roles: ["viewer"]))
                let (status, data) = try await cluster.request(.POST, "/v1/identities", body: body)
                #expect(status == 201, "\(String(decoding: data, as: UTF8.self))")
            }
            var path: String? = "/v1/identities?limit=2"
            var names: [String] = []
            var pages = 0
            while let next = path, pages < 10 {
                pages += 1
                var request = HTTPClientRequest(url: cluster.serverURL + next)
                request.headers.add(name: "Authorization", value: "Bearer \(cluster.adminToken)")
                let response = try await cluster.http.execute(request, timeout: .seconds(30))
                #expect(response.status == .ok)
                let body = try await response.body.collect(upTo: 1 << 20)
                names += try API.decoder.decode([API.Identity].self, from: Data(buffer: body)).map(\.name)
                path = response.headers.first(name: "Link").flatMap { link in
                    link.range(of: #"^<([^>]+)>; rel="next"$"#, options: .regularExpression).map { _ in
                        String(link.dropFirst().prefix { $0 != ">" })
                    }
                }
            }
            #expect(names == names.sorted() && Set(names).isSuperset(of: ["alice", "bob-ci", "carol", "zoe"]))
            #expect(names.count == Set(names).count && pages >= 3)
            for bad in ["limit=0", "limit=1001", "limit=x", "cursor=nope"] {
                let (status, _) = try await cluster.request(.GET, "/v1/identities?\(bad)")
                #expect(status == 400, "\(bad)")
            }
        }
    }
}
