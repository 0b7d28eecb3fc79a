/// Places a pipeline's jobs for the graph: a column per depth (a job sits one column
/// right of its deepest dependency), jobs in a column in pipeline order, and each edge as
/// a curve from a dependency's right side to its dependent's left. Pure, so the layout of
/// a 1,000-job pipeline is a unit test, and computed on the server, so the page needs no
/// layout script.
struct StepGraphLayout: Equatable {
    struct Node: Equatable {
        var index: Int
        var column: Int
        var row: Int
        var x: Int { column * (StepGraphLayout.nodeWidth + StepGraphLayout.columnGap) }
        var y: Int { row * (StepGraphLayout.nodeHeight + StepGraphLayout.rowGap) }
    }

    static let nodeWidth = 220
    static let nodeHeight = 76
    static let columnGap = 56
    static let rowGap = 10
    /// More edges than this are listed in each box, not drawn: thousands of curves make
    /// a picture nobody can read and a page that scrolls slowly.
    static let maximumDrawnEdges = 4_000

    var nodes: [Node]
    /// SVG path data of each drawn edge.
    var edges: [String]
    var edgeCount: Int
    var width: Int
    var height: Int

    /// `dependencies[i]`: the indexes of the jobs job `i` depends on. A dependency on a
    /// later or unknown job (which the parser never produces) is ignored, so a cycle
    /// cannot loop here.
    init(dependencies: [[Int]]) {
        var column = [Int](repeating: 0, count: dependencies.count)
        for index in dependencies.indices {
            for dependency in dependencies[index] where dependency >= 0 && dependency < dependencies.count && dependency != index {
                if dependency < index { column[index] = max(column[index], column[dependency] + 1) }
            }
        }
        // Dependencies on later jobs (an uploaded step that an earlier one waits for)
        // get a second pass so the picture still flows left to right.
        for index in dependencies.indices {
            for dependency in dependencies[index] where dependency > index && dependency < dependencies.count {
                column[index] = max(column[index], column[dependency] + 1)
            }
        }
        var rows: [Int: Int] = [:]
        nodes = dependencies.indices.map { index in
            let row = rows[column[index], default: 0]
            rows[column[index]] = row + 1
            return Node(index: index, column: column[index], row: row)
        }
        edgeCount = dependencies.reduce(0) { $0 + $1.count }
        var edges: [String] = []
        if edgeCount <= Self.maximumDrawnEdges {
            for (index, list) in dependencies.enumerated() {
                for dependency in list where dependency >= 0 && dependency < dependencies.count && dependency != index {
                    let from = nodes[dependency], to = nodes[index]
                    let x1 = from.x + Self.nodeWidth, y1 = from.y + Self.nodeHeight / 2
                    let x2 = to.x, y2 = to.y + Self.nodeHeight / 2
                    let bend = max((x2 - x1) / 2, 20)
                    edges.append("M\(x1) \(y1) C\(x1 + bend) \(y1) \(x2 - bend) \(y2) \(x2) \(y2)")
                }
            }
        }
        self.edges = edges
        let columns = (column.max() ?? -1) + 1
        width = max(columns * (Self.nodeWidth + Self.columnGap) - Self.columnGap, 0)
        height = max((rows.values.max() ?? 0) * (Self.nodeHeight + Self.rowGap) - Self.rowGap, 0)
    }
}
