#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension API {
    /// `PUT /v1/secrets/{name}?scope=S`: the value, which the coordinator seals and never
    /// returns. `scope` is `pipeline` (the default), `repository:URL` or `environment:NAME`.
    public struct SetSecret: Codable, Sendable {
        public var value: String

        public init(value: String) {
            self.value = value
        }
    }

    /// A secret as listed (`GET /v1/secrets`) and as answered by `PUT` and `DELETE`: its
    /// name, scope and history, never its value.
    public struct Secret: Codable, Sendable, Equatable {
        public var name: String
        public var scope: String
        public var createdAt: Date?
        public var updatedAt: Date?
        public var updatedBy: String?
        /// `PUT`: true when the (name, scope) was new. `DELETE`: true.
        public var created: Bool?
        public var deleted: Bool?

        public init(
            name: String, scope: String, createdAt: Date? = nil, updatedAt: Date? = nil, updatedBy: String? = nil,
            created: Bool? = nil, deleted: Bool? = nil
        ) {
            self.name = name
            self.scope = scope
            self.createdAt = createdAt
            self.updatedAt = updatedAt
            self.updatedBy = updatedBy
            self.created = created
            self.deleted = deleted
        }
    }
}
