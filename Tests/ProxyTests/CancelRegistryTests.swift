import Config
import Foundation
import Logging
import Synchronization
import XCTest
@testable import Proxy

/// The cancel key a client holds follows its server (transaction pooling moves it at each
/// transaction through the session's own binding), and a cancel request on its way keeps the
/// server connection it was meant for from serving anyone else.
final class CancelRegistryTests: XCTestCase {
    private func runtime() throws -> RuntimeConfig { try RuntimeConfig.oneDatabase() }

    private func key(_ pid: Int32, _ secret: UInt8) -> CancelRegistry.Key {
        .init(processID: pid, secret: UInt32(secret) << 24 | 0x02_03_04)
    }

    func testKeyFollowsTheAttachedBackendAndIsIgnoredBetweenTransactions() throws {
        let registry = CancelRegistry()
        let runtime = try runtime()
        let target = DatabaseTarget(name: "app", host: "127.0.0.1")
        let binding = registry.insert(key(100, 1), destination: .init(target: target, runtime: runtime), serverSecretKey: [9, 9, 9, 9])
        XCTAssertTrue(registry.contains(key(100, 1)))
        XCTAssertFalse(registry.contains(key(100, 2)), "the secret is part of the key")

        // The secret inline: each byte and its place count; a secret of another length
        // (never issued) matches nothing.
        XCTAssertEqual(CancelRegistry.Key(processID: 100, secretKey: [1, 2, 3, 4]), key(100, 1), "as a CancelRequest carries it")
        XCTAssertEqual(key(100, 1).secretBytes, [1, 2, 3, 4], "as BackendKeyData sends it")
        XCTAssertFalse(registry.contains(try XCTUnwrap(CancelRegistry.Key(processID: 100, secretKey: [4, 3, 2, 1]))))
        XCTAssertNil(CancelRegistry.Key(processID: 100, secretKey: [1, 2, 3]), "a secret of another length names no session")
        XCTAssertNil(CancelRegistry.Key(processID: 100, secretKey: [1, 2, 3, 4, 0]))
        XCTAssertNil(CancelRegistry.Key(processID: 100, secretKey: []))

        // Session mode (never attached): the key's own process.
        let first = try XCTUnwrap(registry.beginCancel(key(100, 1)))
        XCTAssertEqual(first.backendProcessID, 100)
        XCTAssertEqual(first.entry.serverSecretKey, [9, 9, 9, 9])
        registry.cancelFinished(backendProcessID: 100)

        // Between transactions: nothing runs, nothing is counted.
        XCTAssertFalse(registry.attach(binding, backend: nil))
        let idle = try XCTUnwrap(registry.beginCancel(key(100, 1)))
        XCTAssertNil(idle.backendProcessID)
        XCTAssertFalse(registry.cancelIsInFlight(backendProcessID: 100))

        // Another server for the next transaction: the cancel goes there, with its secret.
        XCTAssertFalse(registry.attach(binding, backend: (processID: 200, secretKey: [7, 7, 7, 7])))
        let moved = try XCTUnwrap(registry.beginCancel(key(100, 1)))
        XCTAssertEqual(moved.backendProcessID, 200)
        XCTAssertEqual(moved.entry.serverSecretKey, [7, 7, 7, 7])
        XCTAssertEqual(moved.entry.target.host, "127.0.0.1", "no destination given: the one it had")
        registry.cancelFinished(backendProcessID: 200)

        // After a reload moved the entry: the next server's destination comes with it.
        var elsewhere = target
        elsewhere.host = "192.0.2.9"
        XCTAssertFalse(registry.attach(binding, backend: (processID: 300, secretKey: [6, 6, 6, 6]),
                                       destination: .init(target: elsewhere, runtime: runtime)))
        let relocated = try XCTUnwrap(registry.beginCancel(key(100, 1)))
        XCTAssertEqual(relocated.backendProcessID, 300)
        XCTAssertEqual(relocated.entry.target.host, "192.0.2.9")
        registry.cancelFinished(backendProcessID: 300)
        XCTAssertFalse(registry.attach(binding, backend: (processID: 200, secretKey: [7, 7, 7, 7])))
        XCTAssertEqual(try XCTUnwrap(registry.beginCancel(key(100, 1))).backendProcessID, 200)
        XCTAssertEqual(binding.entry.backendProcessID, 200)

        // Released while that cancel is on its way: the caller must not hand the server on.
        XCTAssertTrue(registry.attach(binding, backend: nil))
        XCTAssertTrue(registry.cancelIsInFlight(backendProcessID: 200))
        registry.cancelFinished(backendProcessID: 200)
        XCTAssertFalse(registry.cancelIsInFlight(backendProcessID: 200))
        XCTAssertFalse(registry.attach(binding, backend: nil))

        XCTAssertFalse(registry.remove(binding))
        XCTAssertNil(registry.beginCancel(key(100, 1)), "an ended session's key is unknown")
        XCTAssertFalse(registry.contains(key(100, 1)))
    }

    func testRemoveReportsACancelStillOnItsWay() throws {
        let registry = CancelRegistry()
        let binding = registry.insert(key(300, 1), destination: .init(target: DatabaseTarget(name: "app", host: "127.0.0.1"), runtime: try runtime()),
                                      serverSecretKey: [1, 1, 1, 1])
        XCTAssertEqual(registry.beginCancel(key(300, 1))?.backendProcessID, 300)
        XCTAssertTrue(registry.remove(binding))
        // A finish for a backend nobody counted changes nothing.
        registry.cancelFinished(backendProcessID: 999)
        XCTAssertTrue(registry.cancelIsInFlight(backendProcessID: 300))
        registry.cancelFinished(backendProcessID: 300)
        XCTAssertFalse(registry.cancelIsInFlight(backendProcessID: 300))
    }

    /// A cancel racing the release of its transaction's server, from two threads as the loops
    /// run them: whenever a cancel was counted for the backend before the release moved the
    /// binding, the release reports it (the server connection is then closed, not reused).
    func testReleaseRacingACancelNeverMissesIt() throws {
        let registry = CancelRegistry()
        let binding = registry.insert(key(400, 1), destination: .init(target: DatabaseTarget(name: "app", host: "127.0.0.1"), runtime: try runtime()),
                                      serverSecretKey: [1, 1, 1, 1])
        let cancelKey = key(400, 1)
        let rounds = 20_000
        let missed = Mutex(0)
        for round in 0..<rounds {
            let backend = Int32(1_000 + round % 7)
            registry.attach(binding, backend: (processID: backend, secretKey: [2, 2, 2, 2]))
            let counted = Mutex<Int32?>(nil)
            let released = Mutex<Bool?>(nil)
            DispatchQueue.concurrentPerform(iterations: 2) { side in
                if side == 0 {
                    let found = registry.beginCancel(cancelKey)
                    counted.withLock { $0 = found?.backendProcessID }
                } else {
                    released.withLock { $0 = registry.attach(binding, backend: nil) }
                }
            }
            let cancelled = counted.withLock { $0 }
            let reported = released.withLock { $0 } ?? false
            // Counted for the attached backend means it read the binding before the release
            // moved it: the release must have seen it in flight. Read after, it finds the
            // binding detached and counts nothing.
            if cancelled == backend && !reported {
                missed.withLock { $0 += 1 }
            }
            if let cancelled { registry.cancelFinished(backendProcessID: cancelled) }
        }
        XCTAssertEqual(missed.withLock { $0 }, 0)
        for pid in 1_000..<1_007 { XCTAssertFalse(registry.cancelIsInFlight(backendProcessID: Int32(pid))) }
    }
}
