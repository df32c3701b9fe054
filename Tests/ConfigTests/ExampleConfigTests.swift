import Foundation
import XCTest

@testable import Config

/// conf/portcullis.ini documents every key as ";key = default". These tests keep the
/// documentation honest: the file loads, and uncommenting every such line changes nothing.
final class ExampleConfigTests: XCTestCase {
    static func exampleText() throws -> String {
        let repositoryRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: repositoryRoot.appendingPathComponent("conf/portcullis.ini"), encoding: .utf8)
    }

    func testExampleLoadsWithDevelopmentCertificates() throws {
        let config = try ConfigLoader.parse(Self.exampleText(), fileName: "portcullis.ini")
        let app = try XCTUnwrap(config.databases["app"])
        XCTAssertEqual(app.host, "127.0.0.1")
        XCTAssertEqual(app.port, 5432)
        XCTAssertEqual(app.dbname, "app")
        XCTAssertEqual(app.sslMode, .verifyFull)
        XCTAssertEqual(app.sslRootCert, "certs-example/generated/ca.crt")
        XCTAssertEqual(config.tls.certFile, "certs-example/generated/server.crt")
        XCTAssertEqual(config.tls.keyFile, "certs-example/generated/server.key")
        XCTAssertEqual(config.identities.count, 0)
    }

    func testDocumentedDefaultsMatchTheCode() throws {
        var uncommented: [String] = []
        var documentedKeys: Set<String> = []
        for line in try Self.exampleText().split(separator: "\n", omittingEmptySubsequences: false) {
            let body = line.dropFirst()
            if line.hasPrefix(";"), body.first?.isLetter == true, let equals = body.firstIndex(of: "=") {
                documentedKeys.insert(body[..<equals].trimmingCharacters(in: .whitespaces))
                uncommented.append(String(body))
            } else {
                uncommented.append(String(line))
            }
        }
        XCTAssertEqual(documentedKeys, [
            "listen_addresses", "listen_port", "so_reuseport", "unix_socket_directories", "unix_socket_permissions",
            "unix_socket_group", "workers", "max_client_connections", "login_timeout", "client_idle_timeout",
            "shutdown_drain_timeout", "max_message_size", "outbound_buffer_limit", "local_auth_method",
            "host_auth_method", "server_reset", "pool_mode", "transaction_pin", "max_prepared_statements", "max_kept_statement_memory", "pool_max_size", "pool_min_idle", "pool_spare_linger", "pool_idle_timeout",
            "pool_max_lifetime", "pool_wait_timeout", "secret_key_file", "log_level",
            "hba_file", "ident_file", "service_user", "service_password", "catalog_refresh_interval", "catalog_max_age",
            "client_tls", "client_tls_ca_file", "client_tls_min_protocol", "client_tls_max_protocol",
            "client_tls_ciphers", "client_tls_ciphersuites", "client_tls_direct", "alice",
            "max_startup_connections", "max_startup_connections_per_address", "max_identity_connections", "startup_first_byte_timeout",
            "auth_failure_delay", "pid_file",
            "audit", "audit_sinks", "audit_json_fsync", "audit_queue_size", "audit_queue_full",
            "audit_statement_text", "audit_classes", "audit_journald_fields",
            "auth_user", "auth_password", "auth_query", "auth_function", "auth_dbname",
            "auth_query_refresh_interval", "auth_query_timeout",
        ])

        let config = try ConfigLoader.parse(uncommented.joined(separator: "\n"), fileName: "uncommented.ini")
        let general = config.general
        let defaults = GeneralSettings()
        XCTAssertEqual(general.audit, defaults.audit)
        XCTAssertEqual(general.authQuery, defaults.authQuery)
        XCTAssertEqual(general.listenAddresses, defaults.listenAddresses)
        XCTAssertEqual(general.listenPort, defaults.listenPort)
        XCTAssertEqual(general.soReusePort, defaults.soReusePort)
        XCTAssertEqual(general.maxKeptStatementMemory, defaults.maxKeptStatementMemory)
        XCTAssertEqual(general.unixSocketDirectories, defaults.unixSocketDirectories)
        XCTAssertEqual(general.unixSocketPermissions, defaults.unixSocketPermissions)
        XCTAssertEqual(general.unixSocketGroup, defaults.unixSocketGroup)
        XCTAssertEqual(general.pidFile, defaults.pidFile)
        XCTAssertEqual(general.workers, defaults.workers)
        XCTAssertEqual(general.hbaFile, defaults.hbaFile)
        XCTAssertEqual(general.identFile, defaults.identFile)
        XCTAssertEqual(general.serviceUser, defaults.serviceUser)
        XCTAssertNil(general.servicePassword)
        XCTAssertEqual(general.catalogRefreshInterval, defaults.catalogRefreshInterval)
        XCTAssertEqual(general.catalogMaxAge, defaults.catalogMaxAge)
        XCTAssertEqual(general.maxClientConnections, defaults.maxClientConnections)
        XCTAssertEqual(general.maxStartupConnections, defaults.maxStartupConnections)
        XCTAssertEqual(general.maxStartupConnectionsPerAddress, defaults.maxStartupConnectionsPerAddress)
        XCTAssertEqual(general.startupFirstByteTimeout, defaults.startupFirstByteTimeout)
        XCTAssertEqual(general.authFailureDelay, defaults.authFailureDelay)
        XCTAssertEqual(general.loginTimeout, defaults.loginTimeout)
        XCTAssertEqual(general.clientIdleTimeout, defaults.clientIdleTimeout)
        XCTAssertEqual(general.shutdownDrainTimeout, defaults.shutdownDrainTimeout)
        XCTAssertEqual(general.maxMessageSize, defaults.maxMessageSize)
        XCTAssertEqual(general.outboundBufferLimit, defaults.outboundBufferLimit)
        XCTAssertEqual(general.localAuthMethod, defaults.localAuthMethod)
        XCTAssertEqual(general.hostAuthMethod, defaults.hostAuthMethod)
        XCTAssertEqual(general.serverReset, defaults.serverReset)
        XCTAssertEqual(general.poolMode, defaults.poolMode)
        XCTAssertEqual(general.transactionPin, defaults.transactionPin)
        XCTAssertEqual(general.maxPreparedStatements, defaults.maxPreparedStatements)
        XCTAssertEqual(general.pool.maxSize, defaults.pool.maxSize)
        XCTAssertEqual(general.pool.minIdle, defaults.pool.minIdle)
        XCTAssertEqual(general.pool.spareLinger, defaults.pool.spareLinger)
        XCTAssertEqual(general.pool.idleTimeout, defaults.pool.idleTimeout)
        XCTAssertEqual(general.pool.maxLifetime, defaults.pool.maxLifetime)
        XCTAssertEqual(general.pool.waitTimeout, defaults.pool.waitTimeout)
        XCTAssertEqual(general.secretKeyFile, defaults.secretKeyFile)
        XCTAssertEqual(general.logLevel, defaults.logLevel)

        let tls = config.tls
        let tlsDefaults = ClientTLSSettings()
        XCTAssertEqual(tls.mode, tlsDefaults.mode)
        XCTAssertEqual(tls.caFile, tlsDefaults.caFile)
        XCTAssertEqual(tls.minProtocol, tlsDefaults.minProtocol)
        XCTAssertEqual(tls.maxProtocol, tlsDefaults.maxProtocol)
        XCTAssertEqual(tls.ciphers, tlsDefaults.ciphers)
        XCTAssertEqual(tls.ciphersuites, tlsDefaults.ciphersuites)
        XCTAssertEqual(tls.directTLS, tlsDefaults.directTLS)

        let alice = try XCTUnwrap(config.identities["alice"])
        XCTAssertEqual(alice.mode, .readWrite)
        XCTAssertEqual(alice.serverUser, "app")
        guard case .scramSHA256(4096, _, _, _) = alice.password else {
            return XCTFail("the documented example verifier should parse")
        }
    }
}
