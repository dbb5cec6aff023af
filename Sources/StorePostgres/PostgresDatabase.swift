import Foundation
import ImageCollections
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// PostgreSQL through PostgresNIO's connection pool: statements with bound parameters only (no SQL is
/// built from data), rows as typed cells, transactions, and errors that name the server's reason but
/// never the password. Nothing here blocks a thread: queries are NIO channel work.
final class PostgresDatabase: Sendable {
    private let client: PostgresClient
    private let running: Task<Void, Never>

    /// A bound value.
    enum Value {
        case null, text(String), integer(Int), number(Double), bytes(Data), vector([Float])
    }

    /// Connects once first, so that an unreachable server, a wrong password or a server without TLS where
    /// `sslmode` requires it fails now with its reason (the pool would retry in the background for a
    /// minute before failing a request), and runs `prepare` on that connection; then starts the pool.
    static func connect(url: String, connections: Int, prepare: (Connection) async throws -> Void) async throws -> PostgresDatabase {
        let settings = try PostgresURL(url)
        do {
            let first = try await PostgresConnection.connect(configuration: try settings.connectionConfiguration(), id: 0, logger: quiet)
            do {
                try await prepare(Connection(base: first))
                try? await first.close()
            } catch {
                try? await first.close()
                throw error
            }
        } catch {
            throw Self.storeError(error)
        }
        return PostgresDatabase(client: PostgresClient(configuration: try settings.clientConfiguration(connections: connections),
                                                        backgroundLogger: quiet))
    }

    private init(client: PostgresClient) {
        self.client = client
        running = Task { await client.run() }
    }

    deinit { running.cancel() }

    /// Runs one statement with `$1…$n` bound to `values`; returns every row.
    @discardableResult
    func execute(_ sql: String, _ values: [Value] = []) async throws -> [PostgresRandomAccessRow] {
        try await withConnection { try await $0.execute(sql, values) }
    }

    func withConnection<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { try await body(Connection(base: $0)) }
        } catch {
            throw Self.storeError(error)
        }
    }

    func transaction<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        try await withConnection { try await $0.transaction { try await body($0) } }
    }

    /// One leased connection.
    struct Connection {
        let base: PostgresConnection

        @discardableResult
        func execute(_ sql: String, _ values: [Value] = []) async throws -> [PostgresRandomAccessRow] {
            var bindings = PostgresBindings(capacity: values.count)
            for value in values {
                switch value {
                case .null: bindings.appendNull()
                case .text(let text):
                    try StoredText.check(text, as: "a value")
                    bindings.append(text)
                case .integer(let integer): bindings.append(integer)
                case .number(let number): bindings.append(number)
                case .bytes(let data): bindings.append(ByteBuffer(bytes: data))
                case .vector(let vector): bindings.append(PGVector(vector))
                }
            }
            do {
                return try await base.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: quiet).collect().map(PostgresRandomAccessRow.init)
            } catch {
                throw PostgresDatabase.storeError(error)
            }
        }

        /// Runs `body` in a transaction; any failure rolls it back and is the error reported.
        func transaction<T>(_ body: (Connection) async throws -> T) async throws -> T {
            try await execute("BEGIN")
            do {
                let result = try await body(self)
                try await execute("COMMIT")
                return result
            } catch {
                _ = try? await execute("ROLLBACK")
                throw error
            }
        }
    }

    /// The server's own words where it gave a reason; PostgresNIO's error descriptions are deliberately
    /// vague, and a connection error carries the socket's reason underneath.
    static func storeError(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError else { return error }
        if let message = error.serverInfo?[.message] {
            let sqlState = error.serverInfo?[.sqlState] ?? ""
            // Class 08 is a connection exception, 28 an authorization failure, 3D an unknown database.
            let connecting = sqlState.hasPrefix("08") || sqlState.hasPrefix("28") || sqlState.hasPrefix("3D")
            return StoreError.database((connecting ? "cannot connect to PostgreSQL: " : "") + message)
        }
        switch error.code {
        case .connectionError:
            return StoreError.database("cannot connect to PostgreSQL: \(error.underlying.map { "\($0)" } ?? "the connection failed")")
        case .authMechanismRequiresPassword:
            return StoreError.database("cannot connect to PostgreSQL: the server asks for a password and none was given (in the URL, PGPASSWORD or ~/.pgpass)")
        case .sslUnsupported:
            return StoreError.database("cannot connect to PostgreSQL: the server does not support TLS, which sslmode requires")
        case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
            return StoreError.database("lost the connection to PostgreSQL")
        default:
            return StoreError.database("PostgreSQL: \(error.code)")
        }
    }
}

/// PostgresNIO logs nothing unless given a logger: a library stays quiet.
private let quiet = Logger(label: "loupe.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

/// pgvector's binary form: the dimension and a reserved word as 16-bit integers, then the floats, all big
/// endian. Bound with type 0, so the server takes the type from the statement's `::vector` cast (the
/// extension's type has no fixed OID).
struct PGVector: PostgresNonThrowingEncodable, PostgresDecodable {
    let values: [Float]

    init(_ values: [Float]) { self.values = values }

    static var psqlType: PostgresDataType { PostgresDataType(0) }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(Int16(values.count))
        buffer.writeInteger(Int16(0))
        for value in values { buffer.writeInteger(value.bitPattern) }
    }

    init<JSONDecoder: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
                                           context: PostgresDecodingContext<JSONDecoder>) throws {
        guard format == .binary, let count = buffer.readInteger(as: Int16.self), buffer.readInteger(as: Int16.self) != nil,
            count >= 0, buffer.readableBytes == Int(count) * 4
        else { throw PostgresDecodingError.Code.failure }
        values = (0..<Int(count)).map { _ in Float(bitPattern: buffer.readInteger(as: UInt32.self) ?? 0) }
    }
}

extension PostgresURL {
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch host {
        case .tcp(let name):
            let tls: PostgresConnection.Configuration.TLS = switch try tlsConfiguration() {
            case .none: .disable
            case .some(let (tls, required)): required ? .require(try NIOSSLContext(configuration: tls)) : .prefer(try NIOSSLContext(configuration: tls))
            }
            configuration = .init(host: name, port: port, username: user, password: password, database: database, tls: tls)
        case .socket(let path):
            configuration = .init(unixSocketPath: path, username: user, password: password, database: database)
        }
        configuration.options.connectTimeout = .seconds(Int64(connectTimeout))
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    func clientConfiguration(connections: Int) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch host {
        case .tcp(let name):
            let tls: PostgresClient.Configuration.TLS = switch try tlsConfiguration() {
            case .none: .disable
            case .some(let (tls, required)): required ? .require(tls) : .prefer(tls)
            }
            configuration = .init(host: name, port: port, username: user, password: password, database: database, tls: tls)
        case .socket(let path):
            configuration = .init(unixSocketPath: path, username: user, password: password, database: database)
        }
        configuration.options.connectTimeout = .seconds(connectTimeout)
        configuration.options.additionalStartupParameters = startupParameters
        configuration.options.maximumConnections = max(1, connections)
        return configuration
    }

    private var startupParameters: [(String, String)] {
        [("application_name", applicationName)] + (options.map { [("options", $0)] } ?? [])
    }

    /// TLS as `sslmode` asks, and whether it is required; nil for no TLS.
    private func tlsConfiguration() throws -> (TLSConfiguration, required: Bool)? {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable:
            return nil
        case .allow, .prefer, .require:
            tls.certificateVerification = .none
        case .verifyCA, .verifyFull:
            tls.certificateVerification = sslMode == .verifyCA ? .noHostnameVerification : .fullVerification
            if let sslRootCertificate { tls.trustRoots = .file(sslRootCertificate) }
        }
        return (tls, required: sslMode != .allow && sslMode != .prefer)
    }
}
