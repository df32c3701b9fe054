import Foundation
import Glibc
import XCTest

/// A role's SCRAM verifier decides how long PBKDF2 runs (its iteration count: PostgreSQL accepts
/// up to INT_MAX, and a role may set a pre-hashed verifier for itself). The proxy derives the
/// keys when it logs in upstream as that role, and when it checks a cleartext password against
/// such a verifier; both run on the derivation threads, never on a loop (docs/ARCHITECTURE.md,
/// "Key derivation"). A session on the same loop (workers = 1) keeps answering while a login
/// waits seconds for its keys. Bound for its round trips: 500 ms (documented there; they take
/// about a millisecond, and the derivation takes seconds).
final class SlowSCRAMTests: IntegrationTestCase {
    /// About 2–3 s of PBKDF2 on the 2-core CI machine (OpenSSL's speed, debug build or not).
    static let slowIterations = 6_000_000

    /// The attack found in review: a read-write identity runs `ALTER ROLE <itself> PASSWORD
    /// '<verifier with millions of iterations>'`; the next upstream connect as that role had its
    /// loop run PBKDF2 for seconds, stalling every other client of the loop.
    func testSlowUpstreamVerifierStallsOnlyTheLoginThatNeedsIt() throws {
        try requireProxyTarget("the proxy's key derivation threads")
        let h = try harness
        let dir = try h.makeDir("slow-scram")
        let original = try h.cluster.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_rw'")
        defer { _ = try? h.cluster.query("ALTER ROLE app_rw PASSWORD '\(original)'") }

        // The same password (the proxy's server_password for app_rw), a new salt, many iterations.
        let verifier = try slowVerifier(password: "app_rw_pw", dir: dir)

        var options = ProxyProcess.Options(upstream: h.cluster)
        // No warm spares: the login itself opens the server connection that needs the keys (a
        // spare opened with the slow verifier runs the same code, UpstreamLink).
        options.extraSettings = ["workers = 1", "pool_min_idle = 0"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        let victim = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", extra: "password=app_ro_pw"))
        XCTAssertEqual(try victim.rows("SELECT 1"), [["1"]])
        // The attacker sets its own verifier through the proxy, and stays connected: its server
        // connection is checked out, so the next app_rw login needs a new one (and new keys).
        let attacker = try LibPQSession(conninfo: proxy.endpoint.conninfo(extra: "password=app_rw_pw"))
        _ = try attacker.rows("ALTER ROLE app_rw PASSWORD '\(verifier)'")
        XCTAssertEqual(try h.cluster.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'app_rw'"), verifier)

        try assertVictimKeepsAnswering(victim, while: ["-d", proxy.endpoint.conninfo(), "-c", "SELECT 'slow'"],
                                       env: proxy.endpoint.env(), workDir: dir, succeeds: true)
        XCTAssertEqual(try attacker.rows("SELECT 1"), [["1"]])
    }

    /// A `password` line (cleartext) and an identity whose verifier has millions of iterations:
    /// every attempt, right or wrong, costs seconds of PBKDF2 — on the derivation threads, so
    /// unauthenticated attempts cannot stall the loop's other sessions.
    func testCleartextPasswordAgainstSlowVerifierStallsOnlyThatLogin() throws {
        try requireProxyTarget("the proxy's key derivation threads")
        let h = try harness
        let dir = try h.makeDir("slow-cleartext")
        let verifier = try slowVerifier(password: "slow_pw", dir: dir)
        try "hostssl all all all password\n".write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.extraSettings = ["workers = 1", "hba_file = \(dir)/pg_hba.conf"]
        options.extraIdentities = ["slow_user = mode=read-only password='\(verifier)' server_user=app_ro server_password='app_ro_pw'"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        let victim = try LibPQSession(conninfo: proxy.endpoint.conninfo(user: "app_ro", extra: "password=app_ro_pw"))
        XCTAssertEqual(try victim.rows("SELECT 1"), [["1"]])
        // A wrong password: refused (28P01) once the keys are derived, seconds later.
        try assertVictimKeepsAnswering(victim, while: ["-d", proxy.endpoint.conninfo(user: "slow_user"), "-c", "SELECT 'in'"],
                                       env: ["PGPASSWORD": "wrong"], workDir: dir, succeeds: false)
    }

    /// `scram-verifier --iterations` (Sources/CLI): the verifier PostgreSQL would store.
    private func slowVerifier(password: String, dir: String) throws -> String {
        let input = "\(dir)/password.txt"
        try password.write(toFile: input, atomically: true, encoding: .utf8)
        let made = try runCommand(ProxyProcess.binaryPath(repoRoot: try harness.repoRoot),
                                  ["scram-verifier", "--iterations", "\(Self.slowIterations)"], stdinFile: input, timeout: 120)
        assertSucceeded(made, "scram-verifier")
        let verifier = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(verifier.hasPrefix("SCRAM-SHA-256$\(Self.slowIterations):"), verifier)
        return verifier
    }

    /// Runs psql with `arguments` (a login that waits seconds for PBKDF2) while `victim` makes
    /// round trips on the same loop: the login must wait, and no round trip may take over the
    /// documented 500 ms (docs/ARCHITECTURE.md, "Key derivation").
    private func assertVictimKeepsAnswering(_ victim: LibPQSession, while arguments: [String], env: [String: String], workDir: String,
                                            succeeds: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let started = Date()
        let slow = try BackgroundCommand("psql", psqlFlags + arguments, environment: env, workDir: workDir)
        let (worst, roundTrips) = try roundTrips(on: victim, while: slow, timeout: 120, file: file, line: line)
        let result = try slow.wait(timeout: 120)
        let waited = Date().timeIntervalSince(started)
        print("slow SCRAM verifier: login took \(waited) s; victim's worst round trip \(worst) s over \(roundTrips)")
        if succeeds {
            assertSucceeded(result, "login with the slow verifier", file: file, line: line)
        } else {
            XCTAssertNotEqual(result.status, 0, "\(result)", file: file, line: line)
            XCTAssertTrue(result.stderr.contains("password authentication failed"), "\(result)", file: file, line: line)
        }
        // The effect to wait for: the login really waited for its keys, and the victim was
        // answered all along, not only before and after.
        XCTAssertGreaterThanOrEqual(waited, 1.5, "the login waited for PBKDF2 (\(Self.slowIterations) iterations)", file: file, line: line)
        XCTAssertGreaterThan(roundTrips, 20, "the victim's queries were answered while the login waited", file: file, line: line)
        XCTAssertLessThanOrEqual(worst, 0.5, "worst victim round trip \(worst) s over \(roundTrips) (login took \(waited) s)",
                                 file: file, line: line)
    }
}
