import Foundation
import ImageCollections

/// Where and how to connect, read from a libpq connection URL the way libpq reads it:
/// `postgres[ql]://[user[:password]@][host][:port][/database][?param=value&…]`, with what the URL leaves
/// out taken from libpq's environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`,
/// `PGSSLMODE`, `PGSSLROOTCERT`, `PGOPTIONS`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`) and the password, last, from
/// the password file (`PGPASSFILE`, default `~/.pgpass`). A host that starts with `/` is the folder of the
/// server's Unix socket, as is the default host.
struct PostgresURL: Equatable {
    enum Host: Equatable {
        case tcp(String)
        /// The socket file itself: the folder plus `.s.PGSQL.PORT`.
        case socket(String)
    }

    /// libpq's `sslmode`. `prefer` and `require` encrypt without checking the certificate, as libpq does.
    enum SSLMode: String, CaseIterable {
        case disable, allow, prefer, require, verifyCA = "verify-ca", verifyFull = "verify-full"
    }

    var host: Host
    var port: Int
    var user: String
    var password: String?
    var database: String
    var sslMode: SSLMode
    /// The certificate authorities for `verify-ca` and `verify-full` (`sslrootcert`).
    var sslRootCertificate: String?
    /// Server settings for the session, e.g. `-c search_path=a,public` (`options`).
    var options: String?
    var applicationName: String
    var connectTimeout: Int

    /// The parameters libpq takes in a URL's query that Loupe honours; any other is an error, as in libpq.
    static let parameters: Set = ["host", "port", "user", "password", "dbname", "sslmode", "sslrootcert", "options",
                                  "application_name", "connect_timeout"]

    init(_ url: String, environment: [String: String] = ProcessInfo.processInfo.environment,
         home: String = NSHomeDirectory()) throws {
        guard let rest = ["postgresql://", "postgres://"].lazy.compactMap({ url.hasPrefix($0) ? url.dropFirst($0.count) : nil }).first else {
            throw StoreError.database("a PostgreSQL store is a postgres:// or postgresql:// URL")
        }
        let (beforeQuery, query) = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).pair
        let (authority, path) = beforeQuery.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).pair
        // The password may hold '@' only percent-encoded, so the last '@' ends the user part.
        let at = authority.lastIndex(of: "@")
        let userInfo = at.map { authority[..<$0] }
        let hostPort = at.map { authority[authority.index(after: $0)...] } ?? authority[...]

        var values = [String: String]()
        if let userInfo {
            let (user, password) = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).pair
            values["user"] = try Self.decode(user)
            if let password { values["password"] = try Self.decode(password) }
        }
        let (hostPart, portPart) = try Self.splitHostPort(hostPort)
        if !hostPart.isEmpty { values["host"] = try Self.decode(hostPart) }
        if let portPart, !portPart.isEmpty { values["port"] = try Self.decode(portPart) }
        if let path, !path.isEmpty { values["dbname"] = try Self.decode(path) }
        for pair in (query ?? "").split(separator: "&") {
            let (key, value) = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).pair
            let name = try Self.decode(key)
            guard Self.parameters.contains(name) else {
                throw StoreError.database("the PostgreSQL URL has a parameter Loupe does not know: \(name) (known: \(Self.parameters.sorted().joined(separator: ", ")))")
            }
            values[name] = try Self.decode(value ?? "")
        }
        func setting(_ key: String, _ variable: String) -> String? {
            (values[key] ?? environment[variable]).flatMap { $0.isEmpty ? nil : $0 }
        }

        guard let port = Int(setting("port", "PGPORT") ?? "5432"), (1...65_535).contains(port) else {
            throw StoreError.database("the PostgreSQL port is not a number from 1 to 65535")
        }
        self.port = port
        let hostName = setting("host", "PGHOST") ?? "/var/run/postgresql"
        host = hostName.hasPrefix("/") ? .socket(hostName + "/.s.PGSQL.\(port)") : .tcp(hostName)
        user = setting("user", "PGUSER") ?? environment["USER"] ?? NSUserName()
        database = setting("dbname", "PGDATABASE") ?? user
        guard let mode = SSLMode(rawValue: setting("sslmode", "PGSSLMODE") ?? "prefer") else {
            throw StoreError.database("sslmode is one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        sslMode = mode
        sslRootCertificate = setting("sslrootcert", "PGSSLROOTCERT")
        options = setting("options", "PGOPTIONS")
        applicationName = setting("application_name", "PGAPPNAME") ?? "loupe"
        guard let timeout = Int(setting("connect_timeout", "PGCONNECT_TIMEOUT") ?? "10"), timeout >= 0 else {
            throw StoreError.database("connect_timeout is a number of seconds")
        }
        connectTimeout = timeout == 0 ? 10 : timeout
        password = values["password"] ?? setting("password", "PGPASSWORD")
            ?? PasswordFile(path: environment["PGPASSFILE"] ?? home + "/.pgpass")?.password(
                host: hostName.hasPrefix("/") ? "localhost" : hostName, port: port, database: database, user: user)
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port`.
    private static func splitHostPort(_ text: Substring) throws -> (Substring, Substring?) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw StoreError.database("the PostgreSQL URL has an unclosed [ in its host") }
            let host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            return (host, after.hasPrefix(":") ? after.dropFirst() : nil)
        }
        guard !text.contains(",") else { throw StoreError.database("Loupe connects to one PostgreSQL host; the URL names several") }
        return text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).pair
    }

    private static func decode(_ text: Substring) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else {
            throw StoreError.database("the PostgreSQL URL has a malformed percent escape")
        }
        return decoded
    }
}

/// libpq's password file: lines `host:port:database:user:password`, `*` matching anything, `\` escaping
/// `:` and `\`; the first matching line wins. Like libpq, a file that others may read is ignored.
struct PasswordFile {
    let lines: [[String]]

    init?(path: String) {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let permissions = attributes[.posixPermissions] as? Int, permissions & 0o077 == 0,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        lines = text.split(whereSeparator: \.isNewline).compactMap { line in
            guard !line.hasPrefix("#") else { return nil }
            let fields = Self.fields(line)
            return fields.count == 5 ? fields : nil
        }
    }

    func password(host: String, port: Int, database: String, user: String) -> String? {
        let wanted = [host, String(port), database, user]
        return lines.first { fields in zip(fields, wanted).allSatisfy { $0 == "*" || $0 == $1 } }?[4]
    }

    private static func fields(_ line: Substring) -> [String] {
        var fields = [String](), current = "", escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":", fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        return fields + [current]
    }
}

extension Array where Element == Substring {
    /// The first element and, if there is one, the second.
    fileprivate var pair: (Substring, Substring?) { (first ?? "", count > 1 ? self[1] : nil) }
}
