/// A linear pre-scan of an encoded `Envelope` that counts its message's fields before
/// SwiftProtobuf decodes it.
///
/// Decoding allocates an object per repeated entry: a 2 MiB frame of 2-byte empty
/// entries would become a million objects (and hundreds of MiB) before any validation
/// could refuse it. The scan walks the protobuf wire format (tags, varints, lengths)
/// without allocating, descends into the envelope's one body field, and counts that
/// message's top-level fields, repeated and map entries included. Deeper levels need no
/// count: every repeated field the coordinator reads sits at that level, and unknown
/// fields deeper down are kept as raw bytes, not objects.
public enum WireShape {
    /// Throws if `bytes` is not well-formed protobuf at the levels it walks, or if the
    /// body message (all its copies together) has more than `maximumFields` fields.
    public static func check(_ bytes: UnsafeRawBufferPointer, maximumFields: Int) throws(ProtocolError) {
        var reader = Reader(bytes: bytes, start: 0, end: bytes.count)
        var bodies = 0
        // One count across every copy of the body: protobuf merges repeated copies of a
        // message field into one message, so their entries add up.
        var fields = 0
        while !reader.atEnd {
            let (wireType, body) = try reader.field()
            if wireType == 2, let body {
                bodies += 1
                var inner = Reader(bytes: bytes, start: body.lowerBound, end: body.upperBound)
                while !inner.atEnd {
                    _ = try inner.field()
                    fields += 1
                    if fields > maximumFields {
                        throw .malformed("message has more than \(maximumFields) fields")
                    }
                }
            }
            if bodies > 16 { throw .malformed("envelope repeats its body more than 16 times") }
        }
    }

    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        let end: Int

        init(bytes: UnsafeRawBufferPointer, start: Int, end: Int) {
            self.bytes = bytes
            self.position = start
            self.end = end
        }

        var atEnd: Bool { position >= end }

        mutating func varint() throws(ProtocolError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while position < end {
                let byte = bytes[position]
                position += 1
                if shift == 63 && byte > 1 { throw .malformed("varint overflows 64 bits") }
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
                if shift > 63 { throw .malformed("varint is longer than 10 bytes") }
            }
            throw .malformed("truncated varint")
        }

        mutating func skip(_ count: UInt64) throws(ProtocolError) {
            guard count <= UInt64(end - position) else { throw .malformed("field runs past the end of its message") }
            position += Int(count)
        }

        /// Reads one field; for a length-delimited one, returns the range of its payload.
        mutating func field() throws(ProtocolError) -> (wireType: UInt64, payload: Range<Int>?) {
            let key = try varint()
            guard key >> 3 != 0 else { throw .malformed("field number 0") }
            let wireType = key & 7
            switch wireType {
            case 0: _ = try varint()
            case 1: try skip(8)
            case 5: try skip(4)
            case 2:
                let length = try varint()
                let start = position
                try skip(length)
                return (wireType, start..<position)
            default:
                throw .malformed("unsupported wire type \(wireType)")
            }
            return (wireType, nil)
        }
    }
}
