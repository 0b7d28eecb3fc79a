/// `Range: bytes=N-` or `bytes=N-M` (one range; a download resumes from where it stopped).
enum ByteRange {
    static func parse(_ header: String, size: Int64) -> (Int64, Int64)? {
        guard header.hasPrefix("bytes="), header.utf8.count <= 64 else { return nil }
        let spec = header.dropFirst("bytes=".count)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let from = Int64(parts[0]), from >= 0, from < size else { return nil }
        if parts[1].isEmpty { return (from, size - 1) }
        guard let to = Int64(parts[1]), to >= from else { return nil }
        return (from, min(to, size - 1))
    }
}
