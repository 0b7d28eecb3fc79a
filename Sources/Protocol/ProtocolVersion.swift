/// The protocol versions this build speaks, and how two peers agree on one.
///
/// Versions are a closed integer range. A peer offers `[min, max]`; the other side picks
/// the highest version both support, or refuses the connection with
/// `ERROR_CODE_UNSUPPORTED_VERSION` naming both ranges, so an operator can tell which
/// side to upgrade.
public enum ProtocolVersion {
    /// The oldest version this build still accepts.
    public static let minimum: UInt32 = 1
    /// The newest version this build speaks.
    public static let current: UInt32 = 4

    /// The highest version in both ranges, or `nil` if they do not overlap.
    public static func negotiate(
        peerMinimum: UInt32,
        peerMaximum: UInt32,
        localMinimum: UInt32 = ProtocolVersion.minimum,
        localMaximum: UInt32 = ProtocolVersion.current
    ) -> UInt32? {
        guard peerMinimum <= peerMaximum else { return nil }
        let high = min(peerMaximum, localMaximum)
        let low = max(peerMinimum, localMinimum)
        return high >= low ? high : nil
    }
}
