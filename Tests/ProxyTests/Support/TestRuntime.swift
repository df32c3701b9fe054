import Config
import Logging
@testable import Proxy

extension RuntimeConfig {
    /// A configuration with one plaintext [databases] entry `app` at `host`:`port` and one
    /// read-write identity, for tests of parts that only read the runtime (links, registries).
    static func oneDatabase(port: UInt16 = 5432, host: String = "127.0.0.1") throws -> RuntimeConfig {
        let config = try ConfigLoader.parse("""
        [portcullis]
        local_auth_method = trust
        [tls]
        client_tls = disable
        [databases]
        app = host=\(host) port=\(port) dbname=app user=app sslmode=disable
        [identities]
        rw = mode=read-write
        """, fileName: "test.ini")
        return try RuntimeConfig(config: config, mockSeed: [1], logger: Logger(label: "test"))
    }
}
