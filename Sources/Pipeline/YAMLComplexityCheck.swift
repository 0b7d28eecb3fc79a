// CYaml is the libyaml that Yams vendors and parses with. It is not one of Yams' products,
// but SwiftPM gives every target the module maps of the C targets it links, so it can be
// imported; if a Yams release renames it, this import fails the build (loudly, never
// silently). Yams has no public API for the event stream, and a second, hand-written YAML
// scanner could disagree with libyaml about what is an alias; reading libyaml's own events
// cannot.
internal import CYaml

/// Refuses YAML that would be expensive to compose, before Yams composes it.
///
/// Yams builds a tree in which an alias shares its anchor's node, so composing is linear,
/// but two things downstream are not: Yams checks each mapping for duplicate keys by
/// hashing the key nodes recursively, so an alias used as (or inside) a key makes it hash
/// the expanded tree, which nested aliases make exponential (a 460-byte file took 109 s);
/// and every walk of the tree, the pipeline parser's included, visits what aliases stand
/// for once per use (an 80 KB file became 400 jobs and 40 MB). This check drives libyaml's
/// parser over the same bytes, which yields events without expanding anything, and:
///
/// - refuses an alias anywhere inside a mapping key;
/// - counts the nodes and string bytes each anchor stands for once, when it is defined,
///   charges an alias its anchor's count, and refuses the file as soon as the expanded
///   total passes `PipelineLimits.maximumExpandedNodes` or `maximumExpandedBytes`;
/// - refuses nesting deeper than `PipelineLimits.maximumDepth`.
///
/// Each event costs constant work (plus one dictionary access for an anchor or alias), so
/// the check is linear in the input. A syntax error ends the check without an error: Yams,
/// reading the same bytes with the same parser, stops at the same place and reports it, and
/// everything before that point has been checked here.
struct YAMLComplexityCheck {
    var file: String

    /// What a node stands for once every alias in it is expanded.
    private struct Cost {
        var nodes = 0
        var bytes = 0

        mutating func add(_ other: Cost) {
            nodes = Self.saturatingSum(nodes, other.nodes)
            bytes = Self.saturatingSum(bytes, other.bytes)
        }

        private static func saturatingSum(_ a: Int, _ b: Int) -> Int {
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : sum
        }
    }

    /// A list or mapping whose end event has not been seen yet.
    private struct Frame {
        var isMapping: Bool
        var anchor: String?
        var cost = Cost(nodes: 1)
        /// Children completed so far; in a mapping an even count means the next child is a key.
        var children = 0
        /// Whether this collection is itself (part of) a mapping key.
        var inKey: Bool
    }

    func check(_ text: String) throws(PipelineError) {
        let count = text.utf8.count
        guard count > 0 else { return }
        // libyaml keeps pointers to its input and to itself between calls, so both get
        // stable addresses of their own rather than Swift values that could move.
        let input = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: count)
        defer { input.deallocate() }
        _ = input.initialize(from: text.utf8)
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            throw PipelineError(file: file, line: nil, column: nil, message: "could not start the YAML parser (out of memory?); try again")
        }
        defer { yaml_parser_delete(parser) }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(parser, input.baseAddress, count)

        var anchors: [String: Cost] = [:]
        var stack: [Frame] = []
        var total = Cost()
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(parser, &event) == 1 else { return }
            defer { yaml_event_delete(&event) }
            let line = Int(event.start_mark.line) + 1
            let column = Int(event.start_mark.column) + 1
            let inKey = stack.last.map { $0.inKey || ($0.isMapping && $0.children % 2 == 0) } ?? false

            /// A node or alias that is complete: charge it to the file and to every open
            /// collection (through its parent, when that collection ends).
            func complete(_ cost: Cost, counted: Bool) throws(PipelineError) {
                if !counted {
                    total.add(cost)
                    try checkBudget(total, line: line, column: column)
                }
                if !stack.isEmpty {
                    stack[stack.count - 1].cost.add(cost)
                    stack[stack.count - 1].children += 1
                }
            }

            switch event.type {
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                if inKey {
                    throw PipelineError(
                        file: file, line: line, column: column,
                        message: "the alias `*\(name)` is used in a mapping key: aliases are not allowed in keys, "
                            + "because checking such keys for duplicates can take exponential time; write the key out")
                }
                // An undefined alias costs one node here; Yams refuses it right after.
                try complete(anchors[name] ?? Cost(nodes: 1), counted: false)
            case YAML_SCALAR_EVENT:
                let cost = Cost(nodes: 1, bytes: Int(event.data.scalar.length))
                if let anchor = Self.string(event.data.scalar.anchor) { anchors[anchor] = cost }
                try complete(cost, counted: false)
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                guard stack.count < PipelineLimits.maximumDepth else {
                    throw PipelineError(
                        file: file, line: line, column: column,
                        message: "lists and mappings are nested more than \(PipelineLimits.maximumDepth) deep; "
                            + "a pipeline needs at most 6 levels: flatten the file")
                }
                let isMapping = event.type == YAML_MAPPING_START_EVENT
                let anchor = Self.string(isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
                stack.append(Frame(isMapping: isMapping, anchor: anchor, inKey: inKey))
                // The collection node itself; its children are counted as they come.
                total.add(Cost(nodes: 1))
                try checkBudget(total, line: line, column: column)
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast() else { return }
                if let anchor = frame.anchor { anchors[anchor] = frame.cost }
                try complete(frame.cost, counted: true)
            case YAML_DOCUMENT_END_EVENT, YAML_STREAM_END_EVENT:
                // Yams composes only the first document (and refuses a second one).
                return
            default:
                continue
            }
        }
    }

    private func checkBudget(_ total: Cost, line: Int, column: Int) throws(PipelineError) {
        if total.nodes > PipelineLimits.maximumExpandedNodes {
            throw PipelineError(
                file: file, line: line, column: column,
                message: "the YAML expands to more than \(PipelineLimits.maximumExpandedNodes) nodes once aliases are "
                    + "expanded (each use of an alias counts everything its anchor holds): use fewer aliases of large "
                    + "anchors, or split the pipeline")
        }
        if total.bytes > PipelineLimits.maximumExpandedBytes {
            throw PipelineError(
                file: file, line: line, column: column,
                message: "the YAML's text expands to more than \(PipelineLimits.maximumExpandedBytes / (1024 * 1024)) MiB "
                    + "once aliases are expanded: use fewer aliases of large anchors, or move long scripts into the repository")
        }
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}
