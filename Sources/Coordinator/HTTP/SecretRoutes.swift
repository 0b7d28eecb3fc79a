import Foundation
import GantryPipeline
import GantryProtocol
import Hummingbird
import NIOFoundationCompat

extension APIRouter {
    /// Largest `PUT /v1/secrets/{name}` body: a 64 KiB value may grow up to six times when
    /// JSON-escaped (`\u0001`), plus the envelope.
    static let maximumSecretBody = 6 * SecretValueRule.maximumBytes + 1024

    /// `GET /v1/secrets`, `PUT /v1/secrets/{name}?scope=S` (body `API.SetSecret`),
    /// `DELETE /v1/secrets/{name}?scope=S`; admin only (`manageSecrets`), audited with the
    /// object `secret:NAME@SCOPE`. No answer, error message or audit record ever holds a
    /// value.
    static func addSecretRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let vault = dependencies.core.secrets

        router.on(.listSecrets, audit: audit) { request, _ -> Response in
            switch WholeListPage.query(request.uri.queryParameters) {
            case .failure(let refusal): return APIResponses.error(.badRequest, code: "bad_request", message: refusal.text)
            case .success(let query):
                // A name and a scope make a secret; the key orders by name, then scope.
                return WholeListPage.response(
                    vault.list(), key: { $0.name + "\u{0}" + $0.scope.description },
                    view: {
                        API.Secret(
                            name: $0.name, scope: $0.scope.description, createdAt: $0.createdAt, updatedAt: $0.updatedAt,
                            updatedBy: $0.updatedBy)
                    }, query, route: .listSecrets)
            }
        }

        router.on(.setSecret, audit: audit) { request, context -> Response in
            let name = try context.parameter("name")
            let scope: SecretScope
            switch secretScope(request, context, name: name) {
            case .failure(let failure): return failure.response
            case .success(let parsed): scope = parsed
            }
            var request = request
            let buffer: ByteBuffer
            do {
                buffer = try await request.collectBody(upTo: maximumSecretBody)
            } catch {
                return APIResponses.error(
                    .contentTooLarge, code: "too_large", message: "the body exceeds \(maximumSecretBody) bytes; values are at most 64 KiB")
            }
            // The decoder's own message is not returned: it could quote part of the body.
            guard let body = try? API.decoder.decode(API.SetSecret.self, from: Data(buffer: buffer)) else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "the body must be {\"value\": \"...\"}")
            }
            do {
                let created = try vault.set(name: name, scope: scope, value: body.value, by: context.principal!.identity)
                context.audit.add("created", created ? "true" : "false")
                guard let info = vault.list().first(where: { $0.name == name && $0.scope == scope }) else {
                    return APIResponses.json(API.Secret(name: name, scope: scope.description, created: created))
                }
                return APIResponses.json(
                    API.Secret(
                        name: name, scope: scope.description, createdAt: info.createdAt, updatedAt: info.updatedAt,
                        updatedBy: info.updatedBy, created: created),
                    status: created ? .created : .ok)
            } catch let error as SecretRuleError {
                return APIResponses.error(.unprocessableContent, code: "invalid_secret", message: error.description)
            }
        }

        router.on(.deleteSecret, audit: audit) { request, context -> Response in
            let name = try context.parameter("name")
            let scope: SecretScope
            switch secretScope(request, context, name: name) {
            case .failure(let failure): return failure.response
            case .success(let parsed): scope = parsed
            }
            guard try vault.delete(name: name, scope: scope) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no secret \(name) with scope \(scope)")
            }
            return APIResponses.json(API.Secret(name: name, scope: scope.description, deleted: true))
        }
    }

    /// The request's `?scope=` (default `pipeline`), after naming the audit record's object
    /// `secret:NAME@SCOPE` so a refused call is recorded against what it asked for.
    private static func secretScope(_ request: Request, _ context: GantryRequestContext, name: String) -> Result<SecretScope, DecodeFailure> {
        let text = request.uri.queryParameters.get("scope") ?? "pipeline"
        context.audit.set(object: "secret:\(name.logSafe(maximum: 255))@\(text.logSafe(maximum: 300))")
        if let problem = SecretName.problem(name) {
            return .failure(DecodeFailure(APIResponses.error(.unprocessableContent, code: "invalid_secret", message: problem)))
        }
        do {
            return .success(try SecretScope(parsing: text))
        } catch {
            return .failure(DecodeFailure(APIResponses.error(.unprocessableContent, code: "invalid_secret", message: error.description)))
        }
    }
}
