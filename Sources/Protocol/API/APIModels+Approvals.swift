#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension API {
    /// `POST /v1/pipelines/{id}/approve` and `.../reject`: which block (its step key; may
    /// be left out when only one waits), the values of its fields (approve only), and why.
    public struct BlockDecision: Codable, Sendable {
        public var step: String?
        public var fields: [String: String]?
        public var reason: String?

        public init(step: String? = nil, fields: [String: String]? = nil, reason: String? = nil) {
            self.step = step
            self.fields = fields
            self.reason = reason
        }
    }
}
