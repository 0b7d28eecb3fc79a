/// What is wrong with a pipeline file, and where.
public struct PipelineError: Error, Equatable, CustomStringConvertible, Sendable {
    public var file: String
    /// 1-based; nil when the problem is the file as a whole (empty, too large).
    public var line: Int?
    /// 1-based, counted in characters.
    public var column: Int?
    public var message: String

    public init(file: String, line: Int?, column: Int?, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return "\(location): \(message)"
    }
}
