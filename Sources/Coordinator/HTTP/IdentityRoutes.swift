import Foundation
import GantryProtocol
import Hummingbird
import NIOFoundationCompat

extension APIRouter {
    static let maximumSmallBody = 64 * 1024

    /// `whoami`, one's own tokens, and (admin) identities and their tokens.
    static func addIdentityRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let store = dependencies.identities

        router.on(.whoami, audit: audit) { _, context -> Response in
            let principal = context.principal!
            return APIResponses.json(
                API.WhoAmI(
                    identity: principal.identity, tokenId: principal.tokenID, roles: principal.bindings,
                    permissions: API.Permission.allCases.filter(principal.allows).map(\.rawValue)))
        }

        router.on(.createOwnToken, audit: audit) { request, context -> Response in
            try await createToken(for: context.principal!.identity, request, context, store)
        }
        router.on(.listOwnTokens, audit: audit) { request, context -> Response in
            switch WholeListPage.query(request.uri.queryParameters) {
            case .failure(let refusal): return APIResponses.error(.badRequest, code: "bad_request", message: refusal.text)
            case .success(let query):
                return WholeListPage.response(
                    try store.tokens(identity: context.principal!.identity), key: \.id, view: view, query, route: .listOwnTokens)
            }
        }
        router.on(.revokeOwnToken, audit: audit) { _, context -> Response in
            let id = try context.parameter("id")
            let identity = context.principal!.identity
            guard try store.revokeToken(id: id, identity: identity, at: Date()),
                let token = try store.tokens(identity: identity).first(where: { $0.id == id })
            else {
                return APIResponses.error(.notFound, code: "not_found", message: "you hold no unrevoked token \(id)")
            }
            return APIResponses.json(view(token))
        }

        router.on(.listIdentities, audit: audit) { request, _ -> Response in
            switch WholeListPage.query(request.uri.queryParameters) {
            case .failure(let refusal): return APIResponses.error(.badRequest, code: "bad_request", message: refusal.text)
            case .success(let query):
                return WholeListPage.response(try store.identities(), key: \.name, view: view, query, route: .listIdentities)
            }
        }
        router.on(.createIdentity, audit: audit) { request, context -> Response in
            try await saveIdentity(name: nil, request, context, store, creating: true)
        }
        router.on(.updateIdentity, audit: audit) { request, context -> Response in
            try await saveIdentity(name: try context.parameter("name"), request, context, store, creating: false)
        }
        router.on(.disableIdentity, audit: audit) { _, context -> Response in
            let name = try context.parameter("name")
            if name == context.principal!.identity {
                return APIResponses.error(
                    .conflict, code: "self_disable", message: "an admin cannot disable itself (another admin can)")
            }
            guard try store.disableIdentity(named: name, at: Date()), let identity = try store.identity(named: name) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no enabled identity named \(name)")
            }
            return APIResponses.json(view(identity))
        }
        router.on(.createIdentityToken, audit: audit) { request, context -> Response in
            try await createToken(for: try context.parameter("name"), request, context, store)
        }
        router.on(.listIdentityTokens, audit: audit) { request, context -> Response in
            let name = try context.parameter("name")
            guard try store.identity(named: name) != nil else {
                return APIResponses.error(.notFound, code: "not_found", message: "no identity named \(name)")
            }
            switch WholeListPage.query(request.uri.queryParameters) {
            case .failure(let refusal): return APIResponses.error(.badRequest, code: "bad_request", message: refusal.text)
            case .success(let query):
                return WholeListPage.response(
                    try store.tokens(identity: name), key: \.id, view: view, query, route: .listIdentityTokens,
                    path: APIRoute.listIdentityTokens.path(["name": name]))
            }
        }
        router.on(.revokeIdentityToken, audit: audit) { _, context -> Response in
            let name = try context.parameter("name")
            let id = try context.parameter("id")
            context.audit.set(object: "token:\(id)")
            guard try store.revokeToken(id: id, identity: name, at: Date()),
                let token = try store.tokens(identity: name).first(where: { $0.id == id })
            else {
                return APIResponses.error(.notFound, code: "not_found", message: "\(name) holds no unrevoked token \(id)")
            }
            return APIResponses.json(view(token))
        }
    }

    private static func createToken(
        for identity: String, _ request: Request, _ context: GantryRequestContext, _ store: any IdentityStore
    ) async throws -> Response {
        let body: API.CreateToken
        switch await decode(API.CreateToken.self, request, allowEmpty: true) {
        case .failure(let failure): return failure.response
        case .success(let decoded): body = decoded ?? API.CreateToken(description: nil, expiresIn: nil)
        }
        var lifetime: TimeInterval?
        if let text = body.expiresIn {
            do {
                lifetime = TimeInterval(try DurationParser.seconds(text))
            } catch {
                return APIResponses.error(
                    .unprocessableContent, code: "invalid_token_request", message: "expires_in: \(error.description)")
            }
        }
        do {
            let (token, secret) = try TokenIssuer.issue(
                for: identity, description: body.description, lifetime: lifetime, in: store)
            context.audit.set(object: "token:\(token.id)")
            context.audit.add("identity", identity)
            if let expiry = token.expiresAt { context.audit.add("expires_at", ISO8601DateFormatter().string(from: expiry)) }
            return APIResponses.json(API.CreatedToken(token: view(token), secret: secret), status: .created)
        } catch let failure as TokenIssuer.Failure {
            if case .noSuchIdentity = failure {
                return APIResponses.error(.notFound, code: "not_found", message: failure.description)
            }
            return APIResponses.error(.unprocessableContent, code: "invalid_token_request", message: failure.description)
        }
    }

    private static func saveIdentity(
        name pathName: String?, _ request: Request, _ context: GantryRequestContext, _ store: any IdentityStore,
        creating: Bool
    ) async throws -> Response {
        let body: API.SaveIdentity
        switch await decode(API.SaveIdentity.self, request, allowEmpty: false) {
        case .failure(let failure): return failure.response
        case .success(let decoded): body = decoded!
        }
        guard let name = pathName ?? body.name else {
            return APIResponses.error(.badRequest, code: "bad_request", message: "the body needs a \"name\"")
        }
        context.audit.set(object: "identity:\(name)")
        if let problem = StoredIdentity.nameProblem(name) {
            return APIResponses.error(.unprocessableContent, code: "invalid_identity", message: "identity name \(problem)")
        }
        guard !body.roles.isEmpty, body.roles.count <= 16 else {
            return APIResponses.error(.unprocessableContent, code: "invalid_identity", message: "give 1 to 16 roles")
        }
        var bindings: [API.RoleBinding] = []
        for text in body.roles {
            do {
                bindings.append(try API.RoleBinding(parsing: text))
            } catch {
                return APIResponses.error(.unprocessableContent, code: "invalid_identity", message: error.description)
            }
        }
        let kind = StoredIdentity.Kind(rawValue: body.kind ?? "person")
        guard let kind else {
            return APIResponses.error(.unprocessableContent, code: "invalid_identity", message: "kind is person or service")
        }
        context.audit.add("roles", bindings.map(\.description).joined(separator: ","))
        let existing = try store.identity(named: name)
        if creating, existing != nil {
            return APIResponses.error(.conflict, code: "exists", message: "an identity named \(name) exists: update it with PUT")
        }
        if !creating, existing == nil {
            return APIResponses.error(.notFound, code: "not_found", message: "no identity named \(name)")
        }
        if !creating, name == context.principal!.identity, !bindings.contains(where: { $0.role == .admin }) {
            return APIResponses.error(
                .conflict, code: "self_demotion",
                message: "an admin cannot remove its own admin role (another admin can), so the last admin cannot lock everyone out")
        }
        var identity = existing ?? StoredIdentity(
            name: name, kind: kind, bindings: bindings, createdAt: Date(), createdBy: context.principal!.identity)
        identity.bindings = bindings
        identity.kind = kind
        try store.save(identity)
        return APIResponses.json(view(identity), status: creating ? .created : .ok)
    }

    /// Decodes a small JSON body; an empty body is nil when allowed.
    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, allowEmpty: Bool) async -> Result<T?, DecodeFailure> {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumSmallBody)
        } catch {
            return .failure(
                DecodeFailure(
                    APIResponses.error(.contentTooLarge, code: "too_large", message: "the body exceeds \(maximumSmallBody) bytes")))
        }
        if buffer.readableBytes == 0, allowEmpty { return .success(nil) }
        do {
            return .success(try API.decoder.decode(T.self, from: Data(buffer: buffer)))
        } catch {
            return .failure(
                DecodeFailure(APIResponses.error(.badRequest, code: "bad_request", message: "the body is not a valid \(T.self): \(error)")))
        }
    }

    struct DecodeFailure: Error {
        let response: Response
        init(_ response: Response) { self.response = response }
    }

    static func view(_ token: StoredAPIToken) -> API.Token {
        API.Token(
            id: token.id, identity: token.identity, description: token.description, createdAt: token.createdAt,
            expiresAt: token.expiresAt, revokedAt: token.revokedAt, lastUsedAt: token.lastUsedAt)
    }

    static func view(_ identity: StoredIdentity) -> API.Identity {
        API.Identity(
            name: identity.name, kind: identity.kind.rawValue, roles: identity.bindings, createdAt: identity.createdAt,
            createdBy: identity.createdBy, disabledAt: identity.disabledAt)
    }
}
