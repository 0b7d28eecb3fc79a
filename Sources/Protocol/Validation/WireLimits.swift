/// The bounds every value decoded from the wire must respect, checked by
/// `MessageValidation` before any code acts on a message.
///
/// Each bound is far above what a correct peer sends and far below what could trap an
/// integer conversion or make the receiver allocate much. They are constants, not
/// settings: both sides of the protocol must agree on them.
public enum WireLimits {
    /// Largest frame accepted before the handshake has authenticated the peer. An
    /// `EnrollRequest` (token + CSR) and a `Hello` within the limits below need a few
    /// KiB; 64 KiB leaves room without letting an anonymous peer make the coordinator
    /// buffer or decode much.
    public static let unauthenticatedFrameSize = 64 * 1024

    /// Largest frame the coordinator accepts from an authenticated agent: a log chunk of
    /// `chunkRawLength` that did not compress, plus its header. Everything else an agent
    /// sends is small.
    public static let agentFrameSize = 2 * 1024 * 1024

    /// Most fields an envelope's message may carry, counted before it is decoded (see
    /// `WireShape`): a Hello with every label and held attempt allowed below stays far
    /// under it, while a frame of millions of tiny repeated entries is refused before it
    /// becomes millions of objects.
    public static let fieldsPerMessage = 4096

    /// Longest agent id (`<host>/<slot>`) and host name: a DNS name is at most 253 bytes.
    public static let agentIDLength = 253
    public static let hostnameLength = 253
    public static let agentVersionLength = 128
    /// `Hello.instance`: agents send 16 random bytes.
    public static let instanceLength = 64
    /// Labels: a handful per agent in practice (`os`, `arch`, `queue`, …).
    public static let labelCount = 64
    public static let labelKeyLength = 63
    public static let labelValueLength = 255
    /// Slots one agent process may announce, and attempts it may hold or report.
    public static let capacity: UInt32 = 256
    public static let attemptsPerMessage = 256
    /// Job ids are UUIDs (36 bytes); 64 leaves room for another id scheme.
    public static let jobIDLength = 64
    /// Free text an agent sends (error messages, refusal reasons, finish messages).
    public static let messageLength = 4096
    /// Agents cut chunks at 256 KiB of raw output; 1 MiB leaves room for other agents
    /// while bounding what one chunk makes the coordinator inflate.
    public static let chunkRawLength: UInt32 = 1024 * 1024
    /// Deflate never grows data by more than a few bytes per 64 KiB block; anything
    /// beyond this margin over `raw_length` is not a deflate stream of that length.
    public static func chunkDataLength(rawLength: UInt32) -> Int { Int(rawLength) + Int(rawLength) / 64 + 1024 }
    /// Highest raw log offset: 1 TiB. Offsets are `uint64` on the wire; this keeps every
    /// `offset + raw_length` far from overflowing an `Int`.
    public static let logOffset: UInt64 = 1 << 40
    /// Enrollment: the join token and the certificate signing request.
    public static let tokenLength = 256
    public static let csrLength = 16 * 1024
    /// Agent ids a scaler may name in one `DrainIdle`.
    public static let drainIdleAgents = 1024
}
