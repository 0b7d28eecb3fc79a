/// A text table whose columns are as wide as their widest cell: no id, name or state is
/// ever cut to fit a column (a long value widens its column instead). Cells are made
/// printable (`TerminalText.printable`) and kept to `cellLimit` characters, the bound on
/// what a hostile server can make one row cost; an id is far shorter than that.
public struct Table: Sendable, Equatable {
    public var header: [String]
    public var rows: [[String]]
    public static let cellLimit = 300

    public init(header: [String], rows: [[String]] = []) {
        self.header = header
        self.rows = rows
    }

    public func lines() -> [String] {
        let all = ([header] + rows).map { $0.map { TerminalText.printable($0, limit: Self.cellLimit) } }
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in all {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return all.map { row in
            var line = ""
            for (index, cell) in row.enumerated() {
                line += index == row.count - 1 ? cell : TerminalText.pad(cell, to: widths[index]) + "  "
            }
            return line
        }
    }
}
