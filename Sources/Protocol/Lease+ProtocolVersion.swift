extension Gantry_V1_Lease {
    /// The oldest protocol version an agent must have negotiated to run this lease as
    /// written. An agent ignores fields newer than its version, so a version-3 agent given
    /// a checkout, artifacts, downloads or a cache (fields 17-21) would run the commands
    /// without their source or inputs, or lose their outputs, and report success. The
    /// scheduler therefore matches such a job only to an agent at this version or newer.
    public var minimumProtocolVersion: UInt32 {
        let usesVersion4 =
            (hasCheckout && checkout.enabled) || !artifactPaths.isEmpty || artifactsAlways || !downloads.isEmpty
            || hasCache
        return usesVersion4 ? 4 : ProtocolVersion.minimum
    }
}
