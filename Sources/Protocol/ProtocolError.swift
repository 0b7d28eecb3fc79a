/// Errors raised while reading or writing the wire protocol.
///
/// Each case maps to a wire `ErrorCode`, so the peer learns why its connection was
/// closed instead of seeing a bare reset.
public enum ProtocolError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The length prefix announced more than the negotiated maximum; nothing was allocated.
    case frameTooLarge(length: UInt32, maximum: Int)
    /// The frame's payload is not a valid `Envelope`.
    case malformed(String)
    /// The envelope carries a message kind this build does not know.
    case unknownMessage
    /// The peer's protocol version range does not overlap ours.
    case unsupportedVersion(peerMinimum: UInt32, peerMaximum: UInt32)
    /// A message arrived that is not valid in the connection's current state.
    case unexpectedMessage(String)
    /// The connection closed in the middle of a frame.
    case truncatedFrame(bufferedBytes: Int)

    public var code: Gantry_V1_ErrorCode {
        switch self {
        case .frameTooLarge: return .frameTooLarge
        case .malformed, .truncatedFrame: return .malformed
        case .unknownMessage: return .unknownMessage
        case .unsupportedVersion: return .unsupportedVersion
        case .unexpectedMessage: return .unexpectedMessage
        }
    }

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let maximum):
            return "frame of \(length) bytes exceeds the maximum of \(maximum) bytes"
        case .malformed(let why):
            return "malformed message: \(why)"
        case .unknownMessage:
            return "unknown message type (the peer may speak a newer protocol version)"
        case .unsupportedVersion(let low, let high):
            return "peer speaks protocol versions \(low)...\(high), this build speaks "
                + "\(ProtocolVersion.minimum)...\(ProtocolVersion.current): upgrade the older side"
        case .unexpectedMessage(let what):
            return "unexpected message: \(what)"
        case .truncatedFrame(let bytes):
            return "connection closed in the middle of a frame (\(bytes) bytes buffered)"
        }
    }
}

extension Gantry_V1_Envelope {
    /// A protocol error as the frame that tells the peer about it.
    public static func error(
        _ code: Gantry_V1_ErrorCode, _ message: String, jobID: String = "", attempt: UInt32 = 0, fatal: Bool
    ) -> Gantry_V1_Envelope {
        .with {
            $0.error = .with {
                $0.code = code
                $0.message = message
                $0.jobID = jobID
                $0.attempt = attempt
                $0.fatal = fatal
            }
        }
    }
}
