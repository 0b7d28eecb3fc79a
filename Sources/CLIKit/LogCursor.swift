/// Where a follower is in one job's log, so a lost connection resumes at the next byte
/// it has not printed: no line lost, none printed twice.
///
/// The position is (attempt, byte offset within that attempt's log). Every request after
/// the first asks for `?follow=1&attempt=A&offset=N`; the coordinator then serves attempt
/// A only and ends the stream once A's log is complete, so every byte received belongs to
/// A and `offset` is just a count. When A is complete and the job has moved to another
/// attempt (a retry after a lost agent), the cursor moves to the new attempt's byte 0 and
/// the follower prints a marker line of its own.
public struct LogCursor: Sendable, Equatable {
    public let jobID: String
    /// The attempt being read; nil before the first answer said which.
    public private(set) var attempt: Int?
    /// Bytes of `attempt`'s log already handed to the printer.
    public private(set) var offset: Int = 0

    public init(jobID: String, attempt: Int? = nil) {
        self.jobID = jobID
        self.attempt = attempt
    }

    /// The request path for the next connection.
    public var path: String {
        let job = Self.percentEncoded(jobID)
        guard let attempt else { return "/v1/jobs/\(job)/log?follow=1&offset=0" }
        return "/v1/jobs/\(job)/log?follow=1&attempt=\(attempt)&offset=\(offset)"
    }

    /// A path segment: unreserved ASCII as is, every other byte as %XX.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 0x80, (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || "-._~".unicodeScalars.contains(scalar) {
                out.unicodeScalars.append(scalar)
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// The coordinator's `Gantry-Log-Attempt` header of a stream that starts at `offset`.
    /// A header that contradicts the cursor's attempt is ignored: the request named it.
    public mutating func started(attempt header: Int?) {
        if attempt == nil, let header, header > 0 { attempt = header }
    }

    /// `count` more bytes of the attempt were received (and printed, or held as the
    /// unfinished last line, which is printed when the rest arrives).
    public mutating func received(_ count: Int) {
        offset += count
    }

    /// What to do when a stream ended (cleanly or not), given the job as read afterwards.
    public enum Next: Sendable, Equatable {
        /// The job ended on this attempt and its log is complete.
        case done
        /// Connect again at the same position.
        case reconnect
        /// The job runs as a later attempt: print a marker and read it from its start.
        case newAttempt(previous: Int, current: Int)
    }

    /// `cleanEnd`: the stream ended as the server meant it to (not a lost connection).
    public mutating func next(jobAttempt: Int, jobTerminal: Bool, cleanEnd: Bool) -> Next {
        guard let attempt else {
            self.attempt = jobAttempt
            return .reconnect
        }
        if jobAttempt > attempt {
            // A clean end means attempt `attempt` is complete; after a lost connection its
            // tail is read first (the request is pinned to it and ends when it is done).
            guard cleanEnd else { return .reconnect }
            self.attempt = jobAttempt
            offset = 0
            return .newAttempt(previous: attempt, current: jobAttempt)
        }
        return jobTerminal && cleanEnd ? .done : .reconnect
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
