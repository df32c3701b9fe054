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
        let input = "\(dir)/password.txt"
        try "app_rw_pw".write(toFile: input, atomically: true, encoding: .utf8)
        let made = try runCommand(ProxyProcess.binaryPath(repoRoot: h.repoRoot),
                                  ["scram-verifier", "--iterations", "\(Self.slowIterations)"], stdinFile: input, timeout: 120)
        assertSucceeded(made, "scram-verifier")
        let verifier = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(verifier.hasPrefix("SCRAM-SHA-256$\(Self.slowIterations):"), verifier)

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

        let started = Date()
        let slow = try BackgroundCommand("psql", psqlFlags + ["-d", proxy.endpoint.conninfo(), "-c", "SELECT 'slow'"],
                                         environment: proxy.endpoint.env(), workDir: dir)
        var worst: TimeInterval = 0
        var roundTrips = 0
        while slow.isRunning && Date().timeIntervalSince(started) < 120 {
            let before = Date()
            XCTAssertEqual(try victim.rows("SELECT 1"), [["1"]])
            worst = max(worst, Date().timeIntervalSince(before))
            roundTrips += 1
            usleep(10_000)
        }
        let result = try slow.wait(timeout: 120)
        let waited = Date().timeIntervalSince(started)
        print("slow SCRAM verifier: login took \(waited) s; victim's worst round trip \(worst) s over \(roundTrips)")
        assertSucceeded(result, "login as app_rw with the slow verifier")
        XCTAssertEqual(result.stdout, "slow\n")
        // The effect to wait for: the login really waited for its keys, and the victim was
        // answered all along, not only before and after.
        XCTAssertGreaterThanOrEqual(waited, 1.5, "the login waited for PBKDF2 (\(Self.slowIterations) iterations)")
        XCTAssertGreaterThan(roundTrips, 20, "the victim's queries were answered while the login waited")
        XCTAssertLessThanOrEqual(worst, 0.5, "worst victim round trip \(worst) s over \(roundTrips) (login took \(waited) s)")
        XCTAssertEqual(try attacker.rows("SELECT 1"), [["1"]])
    }
}
