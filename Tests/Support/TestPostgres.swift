import Foundation

/// The real PostgreSQL + pgvector the tests run against: the server at `LOUPE_TEST_POSTGRES_URL`, or one
/// `scripts/postgres.sh` starts on first use (its own data folder and port, stopped by `scripts/test.sh`).
/// Every caller gets a schema of its own, so tests never see each other's collections.
public enum TestPostgres {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The environment `scripts/postgres.sh` gets for the tests' own server.
    public static let scriptEnvironment = [
        "LOUPE_POSTGRES_DATA": "\(ProcessInfo.processInfo.environment["LOUPE_POSTGRES_HOME"] ?? "/var/tmp/loupe-postgres")/test-data",
        "LOUPE_POSTGRES_PORT": "55433",
    ]

    private static let server: Result<String, Failure> = {
        var url = ProcessInfo.processInfo.environment["LOUPE_TEST_POSTGRES_URL"] ?? ""
        if url.isEmpty {
            let started = run(root.appendingPathComponent("scripts/postgres.sh").path, ["start"], environment: scriptEnvironment)
            url = started.stdout.split(separator: "\n").last.map(String.init) ?? ""
            guard started.status == 0, url.hasPrefix("postgres://") else {
                return .failure(Failure(description: "scripts/postgres.sh could not start PostgreSQL: \(started.stderr)"))
            }
        }
        // In public, where every test schema sees it; Loupe would otherwise create it in the first schema.
        let extensionMade = run("/usr/bin/env", ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", url,
                                                 "--command=CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"])
        guard extensionMade.status == 0 else { return .failure(Failure(description: "cannot create pgvector: \(extensionMade.stderr)")) }
        return .success(url)
    }()

    /// A URL whose `search_path` puts a new, empty schema first (pgvector's types stay in `public`).
    public static func freshURL() throws -> String {
        let url = try server.get()
        let schema = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let created = run("/usr/bin/env", ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", url, "--command=CREATE SCHEMA \(schema)"])
        guard created.status == 0 else { throw Failure(description: "cannot create a test schema: \(created.stderr)") }
        return url + (url.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)%2Cpublic"
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
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
