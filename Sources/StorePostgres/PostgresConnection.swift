import CLibPQ
import ImageCollections
import Foundation

/// A thin, safe layer over libpq: statements with bound parameters only (no SQL is built from data),
/// typed errors, transactions, and a small pool so concurrent requests do not queue behind one socket.
final class PostgresConnection: @unchecked Sendable {
    private var handle: OpaquePointer?

    /// A bound value. Bytes travel in binary, everything else as text the server casts.
    enum Parameter {
        case null, text(String), bytes(Data)
    }

    /// One result row, as raw field bytes (text format unless the statement asked for binary).
    struct Row {
        let fields: [Data?]
        func text(_ column: Int) -> String? { fields[column].map { String(decoding: $0, as: UTF8.self) } }
        func bytes(_ column: Int) -> Data? { fields[column] }
        func integer(_ column: Int) -> Int64? { text(column).flatMap { Int64($0) } }
        func double(_ column: Int) -> Double? { text(column).flatMap { Double($0) } }
    }

    /// Opens a connection from a libpq URL or keyword string (`postgres://user:password@host:port/db`).
    init(url: String) throws {
        // Defaults first: the URL, expanded last, overrides them.
        let keys = ["connect_timeout", "application_name", "dbname"]
        let values = ["10", "loupe", url]
        handle = withCStrings(keys) { keyPointers in
            withCStrings(values) { valuePointers in PQconnectdbParams(keyPointers, valuePointers, 1) }
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let reason = message()
            PQfinish(handle)
            handle = nil
            throw StoreError.database("cannot connect to PostgreSQL: \(reason)")
        }
        // Notices (e.g. "relation already exists, skipping") would go to stderr: a library stays quiet.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    private func message() -> String {
        String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether the socket is still usable; a broken one is reset before the next use.
    func ensureConnected() throws {
        guard PQstatus(handle) != CONNECTION_OK else { return }
        PQreset(handle)
        guard PQstatus(handle) == CONNECTION_OK else { throw StoreError.database("lost the connection to PostgreSQL: \(message())") }
    }

    /// Runs one statement with `$1…$n` bound to `parameters`; returns every row.
    @discardableResult
    func execute(_ sql: String, _ parameters: [Parameter] = [], binaryResults: Bool = false) throws -> [Row] {
        for case .text(let text) in parameters { try StoredText.check(text, as: "a value") }
        let encoded: [Data?] = parameters.map {
            switch $0 {
            case .null: nil
            case .text(let text): Data(text.utf8) + [0]
            case .bytes(let data): data
            }
        }
        let types: [Oid] = parameters.map { if case .bytes = $0 { 17 } else { 0 } }  // 17 = bytea
        let formats: [Int32] = parameters.map { if case .bytes = $0 { 1 } else { 0 } }
        let lengths: [Int32] = encoded.map { Int32($0?.count ?? 0) }
        let result = withBuffers(encoded) { pointers in
            PQexecParams(handle, sql, Int32(parameters.count), types, pointers, lengths, formats, binaryResults ? 1 : 0)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return []
        case PGRES_TUPLES_OK:
            let columns = PQnfields(result)
            return (0..<PQntuples(result)).map { row in
                Row(fields: (0..<columns).map { column in
                    guard PQgetisnull(result, row, column) == 0, let value = PQgetvalue(result, row, column) else { return nil }
                    return Data(bytes: value, count: Int(PQgetlength(result, row, column)))
                })
            }
        default:
            let reason = result.flatMap { PQresultErrorMessage($0) }.map { String(cString: $0) } ?? message()
            throw StoreError.database(reason.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    func transaction<T>(_ body: () throws -> T) throws -> T {
        try runTransaction(begin: { try execute("BEGIN") }, commit: { try execute("COMMIT") }, rollback: { try execute("ROLLBACK") }, body)
    }
}

/// A fixed number of connections handed out one caller at a time.
final class PostgresPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [PostgresConnection]
    private let available: DispatchSemaphore

    /// Opens every connection now, so a bad URL or an unreachable server fails at once.
    init(url: String, size: Int) throws {
        idle = try (0..<max(1, size)).map { _ in try PostgresConnection(url: url) }
        available = DispatchSemaphore(value: idle.count)
    }

    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        available.wait()
        defer { available.signal() }
        let connection = lock.withLock { idle.popLast() }
        guard let connection else { throw StoreError.database("no PostgreSQL connection available") }
        defer { lock.withLock { idle.append(connection) } }
        try connection.ensureConnected()
        return try body(connection)
    }

    func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try withConnection { connection in try connection.transaction { try body(connection) } }
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return body(copies.map { UnsafePointer($0) } + [nil])
}

private func withBuffers<R>(_ buffers: [Data?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = buffers.map { buffer in
        guard let buffer else { return nil }
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, buffer.count))
        buffer.withUnsafeBytes { raw in
            if let base = raw.baseAddress { copy.update(from: base.assumingMemoryBound(to: CChar.self), count: buffer.count) }
        }
        return copy
    }
    defer { copies.forEach { $0?.deallocate() } }
    return body(copies.map { $0.map { UnsafePointer($0) } })
}
