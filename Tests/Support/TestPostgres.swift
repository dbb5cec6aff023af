import Foundation

/// The real PostgreSQL + pgvector the tests run against: the server at `LOUPE_TEST_POSTGRES_URL`, which
/// `scripts/test.sh` starts with `scripts/postgres.sh` (its own data folder and port) and stops at the end.
/// Every caller gets a schema of its own, so tests never see each other's collections.
public enum TestPostgres {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    // Starting the server from inside the test process (Foundation's Process waiting on a script whose
    // pg_ctl leaves a server running) hung on Linux, so the test command starts it instead.
    private static let server: Result<String, any Error> = {
        guard let url = ProcessInfo.processInfo.environment["LOUPE_TEST_POSTGRES_URL"], url.hasPrefix("postgres://") else {
            return .failure(Failure(description: """
                LOUPE_TEST_POSTGRES_URL is not set: run scripts/test.sh, which starts PostgreSQL for the tests, or export \
                LOUPE_TEST_POSTGRES_URL=$(LOUPE_POSTGRES_DATA=/var/tmp/loupe-postgres/test-data LOUPE_POSTGRES_PORT=55433 scripts/postgres.sh start)
                """))
        }
        // In public, where every test schema sees it; Loupe would otherwise create it in the first schema.
        return Result { _ = try query(url, "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"); return url }
    }()

    /// The test server's data folder (`LOUPE_POSTGRES_DATA`, which `scripts/test.sh` exports), where its
    /// Unix socket is.
    public static func dataFolder() throws -> String {
        guard let folder = ProcessInfo.processInfo.environment["LOUPE_POSTGRES_DATA"], !folder.isEmpty else {
            throw Failure(description: "LOUPE_POSTGRES_DATA is not set: scripts/test.sh exports the test server's data folder")
        }
        return folder
    }

    /// A test URL's parts, for tests that rebuild it another way (without its password, over the socket,
    /// through a proxy). The passwords scripts/postgres.sh makes need no percent-encoding.
    public struct URLParts {
        public let user, password, host: String
        public let port: Int
        public let database: String
        /// The query without its `?` (a fresh URL's `options=…`).
        public let query: String
    }

    public static func parts(_ url: String) throws -> URLParts {
        guard let components = URLComponents(string: url), let user = components.user, let password = components.password,
            let host = components.host, let port = components.port
        else { throw Failure(description: "not a test PostgreSQL URL: user, password, host and port expected") }
        return URLParts(user: user, password: password, host: host, port: port, database: String(components.path.dropFirst()),
                        query: components.percentEncodedQuery ?? "")
    }

    /// A URL whose `search_path` puts a new, empty schema first (pgvector's types stay in `public`).
    public static func freshURL() throws -> String {
        let url = try server.get()
        let schema = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        _ = try query(url, "CREATE SCHEMA \(schema)")
        return url + (url.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)%2Cpublic"
    }

    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return (-1, "", "\(executable): \(error)") }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

extension TestPostgres {
    /// Runs SQL through psql and returns its unaligned output, for checks the store's API does not show.
    public static func query(_ url: String, _ sql: String) throws -> String {
        let result = run("/usr/bin/env", ["psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1", url,
                                          "--command=\(sql)"])
        guard result.status == 0 else { throw Failure(description: "psql failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
