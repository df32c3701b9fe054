import XCTest

/// Base class for tests that share one proxy per test: started on first use, stopped after the
/// test. Skipped against PostgreSQL directly (`proxyRequirement` says why).
class SharedProxyTestCase: IntegrationTestCase {
    private var proxy: ProxyProcess?

    /// Why these tests need the proxy (the skip message in direct mode).
    class var proxyRequirement: String { "transaction pooling is the proxy's" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try requireProxyTarget(Self.proxyRequirement)
    }

    override func tearDown() {
        proxy?.stop()
        proxy = nil
        super.tearDown()
    }

    /// Stops this test's proxy; the next ``sharedProxy(_:)`` starts another.
    func stopSharedProxy() {
        proxy?.stop()
        proxy = nil
    }

    /// This test's proxy, made by `start` the first time.
    func sharedProxy(_ start: () throws -> ProxyProcess) rethrows -> ProxyProcess {
        if let proxy { return proxy }
        let started = try start()
        proxy = started
        return started
    }
}
