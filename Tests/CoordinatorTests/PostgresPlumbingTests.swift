import Foundation
@testable import GantryPostgresStore
import Testing

/// The pure parts of the PostgreSQL back end: the marker rewrite shared statements rely
/// on, and the reading of `--database` URLs.
@Suite("PostgreSQL plumbing")
struct PostgresPlumbingTests {
    @Test func markersBecomeNumberedOutsideQuotesAndComments() {
        #expect(PlaceholderSQL.postgres("SELECT * FROM t WHERE a = ? AND b > ?") == "SELECT * FROM t WHERE a = $1 AND b > $2")
        #expect(PlaceholderSQL.postgres("WHERE job_id = ?1 AND attempt = ?2 OR x = ?1") == "WHERE job_id = $1 AND attempt = $2 OR x = $1")
        #expect(PlaceholderSQL.postgres("SELECT '?', \"a?b\", ? -- what?\n, ?") == "SELECT '?', \"a?b\", $1 -- what?\n, $2")
        #expect(PlaceholderSQL.postgres("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', $1")
    }

    @Test func urlsNameTheServerTheDatabaseAndTLS() throws {
        let remote = try PostgresLocation(url: "postgres://gantry@db.example.com/ci", environment: ["PGPASSWORD": "s3cret"])
        #expect(remote.endpoint == .tcp(host: "db.example.com", port: 5432))
        #expect(remote.tls == .require, "off loopback, TLS unless the URL says otherwise")
        #expect(remote.password == "s3cret")
        #expect(remote.redacted == "postgres://gantry:***@db.example.com:5432/ci")
        let local = try PostgresLocation(url: "postgresql://gantry:pw@127.0.0.1:6543/ci", environment: [:])
        #expect(local.endpoint == .tcp(host: "127.0.0.1", port: 6543) && local.tls == .disable && local.password == "pw")
        let socket = try PostgresLocation(url: "postgres:///ci?host=/run/postgresql&user=gantry", environment: [:])
        #expect(socket.endpoint == .socket(path: "/run/postgresql/.s.PGSQL.5432"))
        let verified = try PostgresLocation(url: "postgres://g@db/ci?sslmode=verify-full&sslrootcert=/etc/ca.pem", environment: [:])
        #expect(verified.tls == .verifyFull && verified.rootCertificate == "/etc/ca.pem")
    }

    @Test(arguments: [
        "mysql://u@h/db", "postgres://u@h", "postgres://u@h/a/b", "postgres://u@h:0/db", "postgres://u@h:70000/db",
        "postgres://u@h/db?sslmode=maybe", "postgres://u@h/db?options=-c%20x", "postgres:///db?host=/s&user=u&sslmode=require",
        "postgres://h/db",
    ])
    func badURLsAreRefusedWithAReason(_ url: String) {
        #expect(throws: PostgresStoreError.self) { try PostgresLocation(url: url, environment: [:]) }
    }
}
