import Mustache

/// The dashboard's Mustache templates, parsed once at start from the files embedded in
/// the binary (`Resources/*.mustache`): a broken template fails the coordinator's start,
/// not a page view.
struct DashboardTemplates: Sendable {
    let library: MustacheLibrary

    init() throws {
        MustacheContentTypes.register(ScalarHTMLContentType(), named: ScalarHTMLContentType.name)
        var library = MustacheLibrary()
        let files: [(String, [UInt8])] = [
            ("layout", PackageResources.layout_mustache), ("login", PackageResources.login_mustache),
            ("pipelines", PackageResources.pipelines_mustache), ("pipeline-rows", PackageResources.pipeline_rows_mustache),
            ("pipeline", PackageResources.pipeline_mustache), ("job", PackageResources.job_mustache),
            ("agents", PackageResources.agents_mustache), ("agents-body", PackageResources.agents_body_mustache),
            ("deployments", PackageResources.deployments_mustache), ("audit", PackageResources.audit_mustache),
            ("error", PackageResources.error_mustache),
        ]
        for (name, bytes) in files {
            let text = String(decoding: bytes, as: UTF8.self)
            // A template that escaped with Mustache's own HTML rules would be open to
            // quotes hidden in grapheme clusters (`ScalarHTMLContentType`).
            guard text.hasPrefix("{{% CONTENT_TYPE: \(ScalarHTMLContentType.name)}}") else {
                throw TemplateWithoutScalarEscaping(name: name)
            }
            try library.register(text, named: name)
        }
        self.library = library
    }

    /// The page `name` rendered with `context`; a template that is missing renders as an
    /// empty string, which the tests would catch.
    func render(_ context: Any, _ name: String) -> String {
        library.render(context, withTemplate: name) ?? ""
    }
}

struct TemplateWithoutScalarEscaping: Error, CustomStringConvertible {
    var name: String
    var description: String { "template \(name) does not start with {{% CONTENT_TYPE: \(ScalarHTMLContentType.name)}}" }
}
