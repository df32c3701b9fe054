import XCTest
import Wire
import Config
import Auth
@testable import Proxy

/// The client side of session start-up, driven byte by byte as a socket would, checked against
/// what PostgreSQL itself sends in each case.
final class ClientStartupMachineTests: XCTestCase {
    static let verifier = SCRAMVerifier.make(password: "secret", salt: Array(repeating: 7, count: 16))

    func config(extra: String = "", tls: String = "require", hostAuth: String = "scram-sha-256") throws -> PortcullisConfig {
        try ConfigLoader.parse("""
        [portcullis]
        host_auth_method = \(hostAuth)
        local_auth_method = trust
        \(extra)
        [tls]
        client_tls = \(tls)
        client_tls_cert_file = /nonexistent/server.crt
        client_tls_key_file = /nonexistent/server.key
        [databases]
        app = host=127.0.0.1 port=5432 dbname=app sslmode=verify-full sslrootcert=/nonexistent/ca.crt
        [identities]
        alice = mode=read-write password='\(Self.verifier.text)' server_user=app_rw server_password=pw
        bob = mode=read-only password='\(Self.verifier.text)'
        """, fileName: "test.ini")
    }

    func startup(_ params: [(String, String)], minor: UInt16 = 0) -> ByteBuffer {
        var b = ByteBuffer()
        StartupPacket(protocolMinor: minor, parameters: params.map { StartupParameter(name: $0.0, value: $0.1) }).encode(into: &b)
        return b
    }

    func errorFields(_ action: ClientStartupMachine.Action) -> ErrorFields? {
        guard var bytes = action.refusalBytes else { return nil }
        let decoder = FrameDecoder(maxMessageLength: 1 << 20)
        while let frame = try? decoder.peekFrame(in: bytes) {
            if case .errorResponse(let fields)? = try? BackendMessage.decode(frame: frame, from: &bytes) { return fields }
        }
        return nil
    }

    func testPlaintextTCPIsRefusedWithPostgresHbaWording() throws {
        var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "127.0.0.1"), mockSeed: [1])
        var b = startup([("user", "alice"), ("database", "app")])
        let fields = errorFields(m.bytesReceived(&b))
        XCTAssertEqual(fields?.sqlState, "28000")
        XCTAssertEqual(fields?.message, "no pg_hba.conf entry for host \"127.0.0.1\", user \"alice\", database \"app\", no encryption")
        XCTAssertEqual(fields?.severity, "FATAL")
    }

    /// The internal backup endpoint admits one user; anyone else gets the implicit-reject
    /// FATAL even though local_auth_method = trust would let them in on a public socket.
    func testInternalEndpointAdmitsOnlyItsUser() throws {
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        m.onlyUser = "bob"
        var b = startup([("user", "alice"), ("database", "app")])
        let fields = errorFields(m.bytesReceived(&b))
        XCTAssertEqual(fields?.sqlState, "28000")
        XCTAssertEqual(fields?.message, "no pg_hba.conf entry for host \"[local]\", user \"alice\", database \"app\", no encryption")
        var admitted = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        admitted.onlyUser = "bob"
        var ok = startup([("user", "bob"), ("database", "app")])
        XCTAssertNil(errorFields(admitted.bytesReceived(&ok)), "the backup identity passes on to authentication (trust here)")
    }

    func testSSLRequestIsAcceptedAndTrailingPlaintextIsAViolation() throws {
        var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "127.0.0.1"), mockSeed: [1])
        var b = ByteBuffer()
        StartupMessage.sslRequest.encode(into: &b)
        guard case .sendSSLAcceptAndStartTLS = m.bytesReceived(&b) else { return XCTFail("expected S") }

        // CVE-2021-23214: a startup packet riding along with the SSLRequest.
        var m2 = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "127.0.0.1"), mockSeed: [1])
        var b2 = ByteBuffer()
        StartupMessage.sslRequest.encode(into: &b2)
        b2.writeBytes(startup([("user", "alice")]).readableBytesView)
        guard case .closeSilently = m2.bytesReceived(&b2) else { return XCTFail("expected silent close") }
    }

    func testUnixSocketAnswersNToSSLAndGSSAndUsesLocalAuth() throws {
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = ByteBuffer()
        StartupMessage.gssEncRequest.encode(into: &b)
        guard case .sendBytes(let n1) = m.bytesReceived(&b) else { return XCTFail() }
        XCTAssertEqual(Array(n1.readableBytesView), [UInt8(ascii: "N")])
        StartupMessage.sslRequest.encode(into: &b)
        guard case .sendBytes(let n2) = m.bytesReceived(&b) else { return XCTFail() }
        XCTAssertEqual(Array(n2.readableBytesView), [UInt8(ascii: "N")])
        b.writeBytes(startup([("user", "alice"), ("database", "app"), ("application_name", "psql")]).readableBytesView)
        guard case .connectUpstream(let request) = m.bytesReceived(&b) else { return XCTFail("trust on the socket") }
        XCTAssertEqual(request.serverUser, "app_rw")
        XCTAssertEqual(request.mode, .readWrite)
        XCTAssertEqual(request.parameters, [StartupParameter(name: "application_name", value: "psql")])
    }

    func testReadOnlyIdentityStartsReadOnly() throws {
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = startup([("user", "bob"), ("database", "app"), ("options", "-c search_path=public")])
        guard case .connectUpstream(let request) = m.bytesReceived(&b) else { return XCTFail() }
        XCTAssertEqual(request.mode, .readOnly)
        XCTAssertEqual(request.parameters.suffix(3), [StartupParameter(name: "standard_conforming_strings", value: "on"),
                                                      StartupParameter(name: "default_transaction_read_only", value: "on"),
                                                      StartupParameter(name: "client_encoding", value: "UTF8")],
                       "no client_encoding asked for: UTF8, not the database's")
        // The accepted `options` settings go upstream as parameters, not as the client's text.
        XCTAssertEqual(request.parameters.first, StartupParameter(name: "search_path", value: "public"))
        XCTAssertFalse(request.parameters.contains { $0.name == "options" })
    }

    /// A read-only identity reads in UTF8 only: another encoding, however it is asked for, is
    /// refused; UTF8 asked for in any spelling is kept and not pinned again.
    func testReadOnlyIdentityUsesUTF8Only() throws {
        for parameters in [[("client_encoding", "LATIN1")], [("options", "-c client_encoding=latin1")], [("CLIENT_ENCODING", "euc_jp")]] {
            var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
            var b = startup([("user", "bob"), ("database", "app")] + parameters)
            guard case .refuseAuthentication(let bytes, let failure) = m.bytesReceived(&b) else { return XCTFail("\(parameters)") }
            XCTAssertEqual(failure.sqlState, "42501", "\(parameters)")
            XCTAssertTrue(failure.afterAuthentication)
            XCTAssertTrue(String(decoding: bytes.readableBytesView, as: UTF8.self).contains("is a read-only identity"))
        }
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = startup([("user", "bob"), ("database", "app"), ("client_encoding", "utf-8")])
        guard case .connectUpstream(let request) = m.bytesReceived(&b) else { return XCTFail() }
        XCTAssertEqual(request.parameters.filter { $0.name.lowercased() == "client_encoding" }.map(\.value), ["utf-8"])
    }

    func testReadOnlyIdentityCannotLeaveReadOnlyThroughTheStartupPacket() throws {
        let attempts: [[(String, String)]] = [
            [("default_transaction_read_only", "off")],
            [("options", "-c default_transaction_read_only=off")],
            [("options", "-cdefault-transaction-read-only=off")],
            [("options", "--default_transaction_read_only=off")],
            [("options", "-c search_path=x -c ROLE=postgres")],
            [("options", "-c\u{0B}session_authorization=postgres")],
            [("options", "-c x=1 -c\u{0C}role=postgres")],
            [("search_path", "evil, pg_catalog")],
            [("Transaction_Read_Only", "off")],
            [("session_replication_role", "replica")],
        ]
        for extra in attempts {
            var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
            var b = startup([("user", "bob"), ("database", "app")] + extra)
            let fields = errorFields(m.bytesReceived(&b))
            XCTAssertEqual(fields?.sqlState, "42501", "\(extra)")
            XCTAssertTrue(fields?.message?.hasPrefix("permission denied to set parameter") ?? false, "\(extra)")
        }
        // What PostgreSQL's backend would end the session for ends it here (the FATAL it sends).
        var bad = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var badBytes = startup([("user", "bob"), ("database", "app"), ("options", "-c\\ x -c session_authorization=postgres")])
        let badFields = errorFields(bad.bytesReceived(&badBytes))
        XCTAssertEqual(badFields?.sqlState, "42601")
        XCTAssertEqual(badFields?.message, "-c  x requires a value")
        // Switches other than -c/-- are refused.
        var flag = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var flagBytes = startup([("user", "bob"), ("database", "app"), ("options", "-ecrole=postgres")])
        XCTAssertEqual(errorFields(flag.bytesReceived(&flagBytes))?.message,
                       "permission denied for command-line switch \"-e\" in options")
        // A read-write identity may.
        var rw = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = startup([("user", "alice"), ("database", "app"), ("options", "-c default_transaction_read_only=off")])
        guard case .connectUpstream = rw.bytesReceived(&b) else { return XCTFail() }
    }

    func testNewerMinorVersionGetsNegotiateProtocolVersionFirst() throws {
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = startup([("user", "alice"), ("database", "app"), ("_pq_.feature", "1")], minor: 2)
        guard case .sendBytesThenConnect(var bytes, _) = m.bytesReceived(&b) else { return XCTFail() }
        let frame = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: bytes)!
        XCTAssertEqual(try BackendMessage.decode(frame: frame, from: &bytes), .negotiateProtocolVersion(newestMinorVersion: 0x0003_0000, unrecognizedOptions: ["_pq_.feature"]),
                       "PostgreSQL 15 sends PG_PROTOCOL_LATEST, 3.0")
    }

    func testSCRAMLoginOverTLSAndWrongPassword() throws {
        for (password, shouldPass) in [("secret", true), ("wrong", false)] {
            var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "::1"), mockSeed: [1])
            var b = ByteBuffer()
            StartupMessage.sslRequest.encode(into: &b)
            _ = m.bytesReceived(&b)
            _ = m.tlsHandshakeCompleted(serverEndPoint: [1, 2, 3], direct: false, alpnPostgreSQL: false)
            b = startup([("user", "alice"), ("database", "app")])
            guard case .sendBytes(var sasl) = m.bytesReceived(&b) else { return XCTFail() }
            let frame = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: sasl)!
            XCTAssertEqual(try BackendMessage.decode(frame: frame, from: &sasl), .authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])))

            var client = SCRAMClient(username: "alice", password: password, channelBinding: .tlsServerEndPoint([1, 2, 3]))
            FrontendMessage.saslInitialResponse(mechanism: client.mechanism, data: client.clientFirstMessage()).encode(into: &b)
            guard case .sendBytes(var cont) = m.bytesReceived(&b) else { return XCTFail() }
            let f2 = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: cont)!
            guard case .authentication(.saslContinue(let serverFirst)) = try BackendMessage.decode(frame: f2, from: &cont) else { return XCTFail() }
            FrontendMessage.saslResponse(try client.serverFirstReceived(serverFirst)).encode(into: &b)
            let action = m.bytesReceived(&b)
            if shouldPass {
                guard case .sendBytesThenConnect(_, let request) = action else { return XCTFail("expected login") }
                XCTAssertEqual(request.clientUser, "alice")
                XCTAssertEqual(m.authenticatedUser, "alice")
            } else {
                XCTAssertEqual(errorFields(action)?.sqlState, "28P01")
                XCTAssertEqual(errorFields(action)?.message, "password authentication failed for user \"alice\"")
            }
        }
    }

    /// PostgreSQL's auth-scram.c sends its errdetail with a malformed client-final-message
    /// (found in review: the detail was dropped).
    func testSCRAMProtocolFailuresCarryPostgreSQLsDetail() throws {
        var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "::1"), mockSeed: [1])
        var b = ByteBuffer()
        StartupMessage.sslRequest.encode(into: &b)
        _ = m.bytesReceived(&b)
        _ = m.tlsHandshakeCompleted(serverEndPoint: [1, 2, 3], direct: false, alpnPostgreSQL: false)
        b = startup([("user", "alice"), ("database", "app")])
        guard case .sendBytes = m.bytesReceived(&b) else { return XCTFail() }
        var client = SCRAMClient(username: "alice", password: "secret", channelBinding: .tlsServerEndPoint([1, 2, 3]))
        FrontendMessage.saslInitialResponse(mechanism: client.mechanism, data: client.clientFirstMessage()).encode(into: &b)
        guard case .sendBytes(var cont) = m.bytesReceived(&b) else { return XCTFail() }
        let frame = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: cont)!
        guard case .authentication(.saslContinue(let serverFirst)) = try BackendMessage.decode(frame: frame, from: &cont) else { return XCTFail() }
        let final = String(decoding: try client.serverFirstReceived(serverFirst), as: UTF8.self)
        // Another nonce, the proof left as it is.
        let tampered = final.replacingOccurrences(of: ",r=", with: ",r=X")
        FrontendMessage.saslResponse(Array(tampered.utf8)).encode(into: &b)
        let fields = errorFields(m.bytesReceived(&b))
        XCTAssertEqual(fields?.sqlState, "08P01")
        XCTAssertEqual(fields?.message, "invalid SCRAM response")
        XCTAssertEqual(fields?.detail, "Nonce does not match.")
    }

    func testUnknownUserGetsTheSameChallengeShapeAndTheSameFailure() throws {
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var mConfig = try config(extra: "")
        mConfig.general.localAuthMethod = .scramSHA256
        m = ClientStartupMachine(config: mConfig, transport: .unixSocket, mockSeed: [1])
        var b = startup([("user", "mallory"), ("database", "app")])
        guard case .sendBytes = m.bytesReceived(&b) else { return XCTFail("unknown users are still challenged") }
        var client = SCRAMClient(username: "mallory", password: "x", channelBinding: .notSupported)
        FrontendMessage.saslInitialResponse(mechanism: client.mechanism, data: client.clientFirstMessage()).encode(into: &b)
        guard case .sendBytes(var cont) = m.bytesReceived(&b) else { return XCTFail() }
        let f2 = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: cont)!
        guard case .authentication(.saslContinue(let serverFirst)) = try BackendMessage.decode(frame: f2, from: &cont) else { return XCTFail() }
        FrontendMessage.saslResponse(try client.serverFirstReceived(serverFirst)).encode(into: &b)
        XCTAssertEqual(errorFields(m.bytesReceived(&b))?.message, "password authentication failed for user \"mallory\"")
    }

    func testDirectTLSNeedsALPN() throws {
        var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "127.0.0.1"), mockSeed: [1])
        XCTAssertTrue(m.acceptsDirectTLS)
        guard case .startDirectTLS = m.directTLSDetected() else { return XCTFail() }
        guard case .closeSilently(let reason) = m.tlsHandshakeCompleted(serverEndPoint: nil, direct: true, alpnPostgreSQL: false) else { return XCTFail() }
        XCTAssertTrue(reason.contains("ALPN"))
    }

    func testMissingUserAndReplicationAndUnknownDatabase() throws {
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = startup([("database", "app")])
        XCTAssertEqual(errorFields(m.bytesReceived(&b))?.message, "no PostgreSQL user name specified in startup packet")
        m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        b = startup([("user", "alice"), ("replication", "database")])
        XCTAssertEqual(errorFields(m.bytesReceived(&b))?.sqlState, "0A000")
        m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        b = startup([("user", "alice"), ("database", "other")])
        XCTAssertEqual(errorFields(m.bytesReceived(&b))?.message, "database \"other\" does not exist")
    }

    /// A length PostgreSQL refuses is only logged (COMMERROR): the client gets nothing.
    func testImpossibleLengthsCloseSilently() throws {
        for bytes: [UInt8] in [[0x7f, 0xff, 0xff, 0xff, 1, 2, 3], [0, 0, 0, 4], [0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1]] {
            var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "127.0.0.1"), mockSeed: [1])
            var b = ByteBuffer(bytes: bytes)
            guard case .closeSilently = m.bytesReceived(&b) else { return XCTFail("\(bytes)") }
        }
    }

    /// Protocol 2.0 gets its FATAL in the old protocol's form, as PostgreSQL 15 sends it.
    func testProtocolTwoGetsAnOldStyleError() throws {
        var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "127.0.0.1"), mockSeed: [1])
        var b = ByteBuffer()
        b.writeInteger(Int32(9)); b.writeInteger(UInt32(2 << 16)); b.writeInteger(UInt8(0))
        guard case .sendAndClose(let out) = m.bytesReceived(&b) else { return XCTFail() }
        XCTAssertEqual(Array(out.readableBytesView),
                       [UInt8(ascii: "E")] + Array("FATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.0\n".utf8) + [0])
    }

    /// After an SSLRequest answered N: bytes that came with it get N and a FATAL, and a second
    /// SSLRequest is read as a startup packet of version 1234.5679 (ProcessStartupPacket).
    func testSSLRequestAnsweredNoAsPostgreSQLDoes() throws {
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = ByteBuffer(bytes: [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] + Array(startup([("user", "alice")]).readableBytesView))
        guard case .sendAndClose(var out) = m.bytesReceived(&b) else { return XCTFail() }
        XCTAssertEqual(out.readInteger(as: UInt8.self), UInt8(ascii: "N"))
        XCTAssertEqual(errorFields(.sendAndClose(out))?.message, "received unencrypted data after SSL request")

        m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        b = ByteBuffer(bytes: [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        guard case .sendBytes = m.bytesReceived(&b) else { return XCTFail() }
        b = ByteBuffer(bytes: [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        XCTAssertEqual(errorFields(m.bytesReceived(&b))?.message, "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0")
    }

    /// `replication` is read with parse_bool: false in any spelling is a normal session, a
    /// value it cannot read is PostgreSQL's FATAL.
    func testReplicationParameterIsReadAsABoolean() throws {
        for value in ["f", "FA", "n", "of", "0", "no"] {
            var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
            var b = startup([("user", "alice"), ("database", "app"), ("replication", value)])
            guard case .connectUpstream = m.bytesReceived(&b) else { return XCTFail(value) }
        }
        var m = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [1])
        var b = startup([("user", "alice"), ("replication", "xyz")])
        let fields = errorFields(m.bytesReceived(&b))
        XCTAssertEqual(fields?.sqlState, "22023")
        XCTAssertEqual(fields?.message, "invalid value for parameter \"replication\": \"xyz\"")
    }
}

extension ClientStartupMachine.Action {
    /// The bytes sent before closing: a plain refusal or a failed login.
    var refusalBytes: ByteBuffer? {
        switch self {
        case .sendAndClose(let bytes), .refuseAuthentication(let bytes, _): bytes
        default: nil
        }
    }

    var authenticationFailure: AuthenticationFailure? {
        if case .refuseAuthentication(_, let failure) = self { failure } else { nil }
    }
}
