import Foundation
import GRDB
import NIOCore
import PostgresNIO

/// The one mapping between the records' database values and PostgreSQL's.
///
/// The record types (`StoredJob`, `StoredIdentity`, …) already say how they become columns
/// and back, through GRDB's `PersistenceContainer` and `Row`. Both back ends use that same
/// code: this store turns a record's `DatabaseValue`s into parameters and PostgreSQL's
/// cells into a GRDB `Row`, so a field added to a record reaches both stores or neither.
enum PostgresValues {
    /// A parameter for `value`. Text and numbers go as text of no declared type, so the
    /// server reads them as the column or operator they meet needs (`timestamptz`,
    /// `boolean`, `bigint`): GRDB writes a `Date` as UTC text, a `Bool` as 0 or 1. Blobs go
    /// as `bytea`.
    static func append(_ value: DatabaseValue, to bindings: inout PostgresBindings) throws {
        switch value.storage {
        case .null: bindings.appendNull()
        case .int64(let integer): try bindings.append(UntypedText(String(integer)))
        case .double(let double): try bindings.append(UntypedText(String(double)))
        case .string(let string): try bindings.append(UntypedText(string))
        case .blob(let data): bindings.append(ByteBuffer(data: data))
        }
    }

    static func query(_ sql: String, _ arguments: [DatabaseValue]) throws -> PostgresQuery {
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments { try append(argument, to: &bindings) }
        return PostgresQuery(unsafeSQL: PlaceholderSQL.postgres(sql), binds: bindings)
    }

    /// A row as GRDB's `Row`, so `FetchableRecord` types decode it with their own code.
    static func row(_ row: PostgresRow) throws -> Row {
        var columns: [String: DatabaseValue] = [:]
        for cell in row { columns[cell.columnName] = try value(cell) }
        return Row(columns)
    }

    static func value(_ cell: PostgresCell) throws -> DatabaseValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .bool: return (try cell.decode(Bool.self) ? 1 : 0).databaseValue
        case .int2, .int4, .int8: return try cell.decode(Int64.self).databaseValue
        case .float4, .float8: return try cell.decode(Double.self).databaseValue
        case .text, .varchar, .name, .bpchar, .unknown, .json: return try cell.decode(String.self).databaseValue
        case .bytea:
            var buffer = try cell.decode(ByteBuffer.self)
            return (buffer.readData(length: buffer.readableBytes) ?? Data()).databaseValue
        case .timestamptz, .timestamp:
            // GRDB's own text for a date (UTC, milliseconds), what `Date` decodes from.
            return try cell.decode(Date.self).databaseValue
        default:
            throw PostgresStoreError.unexpectedColumnType(column: cell.columnName, type: "\(cell.dataType)")
        }
    }
}

/// Text sent with no declared type (OID 0): the server infers it from where it is used.
struct UntypedText: PostgresThrowingDynamicTypeEncodable {
    var text: String

    init(_ text: String) { self.text = text }

    var psqlType: PostgresDataType { PostgresDataType(0) }
    var psqlFormat: PostgresFormat { .text }

    func encode<JSONEncoder: PostgresJSONEncoder>(
        into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) throws {
        byteBuffer.writeString(text)
    }
}
