import CSQLite
import ImageCollections
import Foundation

/// A thin, safe layer over one SQLite connection: prepared statements with bound values only (no SQL
/// is ever built from data), typed errors, transactions.
final class SQLiteDatabase: @unchecked Sendable {
    private var handle: OpaquePointer?
    private let lock = NSRecursiveLock()

    enum Value {
        case null, integer(Int64), real(Double), text(String), blob(Data)
    }

    init(path: String) throws {
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw StoreError.database("cannot open \(path): \(message)")
        }
        sqlite3_busy_timeout(handle, 5000)
        // WAL keeps readers and the ingest writer apart; a crash loses at most the open transaction.
        // Switching a new file to WAL needs it to itself, and SQLite answers "locked" at once, without the
        // busy timeout, while another process opens the same new file: try again for as long.
        for attempt in 1...500 {
            do {
                try execute("PRAGMA journal_mode = WAL")
                break
            } catch where attempt < 500 && [SQLITE_BUSY, SQLITE_LOCKED].contains(sqlite3_errcode(handle) & 0xFF) {
                usleep(10_000)
            }
        }
        try execute("PRAGMA synchronous = NORMAL")
        try execute("PRAGMA foreign_keys = ON")
    }

    deinit { sqlite3_close_v2(handle) }

    private func failure(_ context: String) -> StoreError {
        .database("\(context): \(String(cString: sqlite3_errmsg(handle)))")
    }

    /// Runs `sql` with `values` bound to its `?` parameters; returns every row.
    @discardableResult
    func execute(_ sql: String, _ values: [Value] = []) throws -> [[Value]] {
        lock.lock()
        defer { lock.unlock() }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else { throw failure("cannot prepare") }
        defer { sqlite3_finalize(statement) }
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch value {
            case .null: status = sqlite3_bind_null(statement, position)
            case .integer(let number): status = sqlite3_bind_int64(statement, position, number)
            case .real(let number): status = sqlite3_bind_double(statement, position, number)
            case .text(let text):
                try StoredText.check(text, as: "a value")
                status = sqlite3_bind_text64(statement, position, text, UInt64(text.utf8.count), loupe_sqlite_transient(), UInt8(SQLITE_UTF8))
            case .blob(let data):
                status = data.withUnsafeBytes { sqlite3_bind_blob(statement, position, $0.baseAddress, Int32($0.count), loupe_sqlite_transient()) }
            }
            guard status == SQLITE_OK else { throw failure("cannot bind a value") }
        }
        var rows = [[Value]]()
        while true {
            let step = sqlite3_step(statement)
            if step == SQLITE_DONE { break }
            guard step == SQLITE_ROW else { throw failure("\(sql.split(separator: " ").prefix(3).joined(separator: " ")) failed") }
            rows.append((0..<sqlite3_column_count(statement)).map { column in
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, column))
                case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, column))
                case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(statement, column)))
                case SQLITE_BLOB:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    guard count > 0, let bytes = sqlite3_column_blob(statement, column) else { return .blob(Data()) }
                    return .blob(Data(bytes: bytes, count: count))
                default: return .null
                }
            })
        }
        return rows
    }

    func transaction<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try runTransaction(begin: { try execute("BEGIN IMMEDIATE") }, commit: { try execute("COMMIT") },
                                  rollback: { try execute("ROLLBACK") }, body)
    }
}

extension SQLiteDatabase.Value {
    var text: String? { if case .text(let value) = self { value } else { nil } }
    var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    var blob: Data? { if case .blob(let value) = self { value } else { nil } }
}
