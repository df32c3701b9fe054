import Foundation
import Glibc

/// A protocol-3.0 client on a plain TCP socket, for sequences libpq will not send: malformed
/// messages, long pipelines, a reset in mid-stream. It logs in where pg_hba.conf says `trust`
/// (the proxy under test is given such a rule) and then speaks raw frames.
final class WireClient {
    let socket: RawSocket
    private var buffer: [UInt8] = []

    struct Message {
        let type: UInt8
        let payload: [UInt8]

        /// ErrorResponse/NoticeResponse fields by code (55.8 Error and Notice Message Fields).
        var fields: [Character: String] {
            var result: [Character: String] = [:]
            var i = 0
            while i < payload.count, payload[i] != 0 {
                let code = Character(UnicodeScalar(payload[i]))
                i += 1
                let start = i
                while i < payload.count, payload[i] != 0 { i += 1 }
                result[code] = String(decoding: payload[start..<i], as: UTF8.self)
                i += 1
            }
            return result
        }
    }

    /// Connects and logs in; throws unless the server says ReadyForQuery.
    convenience init(port: Int, user: String, database: String = "app", parameters: [(String, String)] = []) throws {
        try self.init(socket: try RawSocket(port: port), user: user, database: database, parameters: parameters)
    }

    /// PostgreSQL alone over its Unix socket (`local all all trust` in scripts/pg-cluster.sh).
    convenience init(cluster: Cluster, user: String, database: String = "app") throws {
        try self.init(socket: try RawSocket(unixPath: "\(cluster.dir)/.s.PGSQL.\(cluster.port)"), user: user, database: database)
    }

    init(socket: RawSocket, user: String, database: String, parameters: [(String, String)] = []) throws {
        self.socket = socket
        var body = WireClient.int32(196_608)
        for (key, value) in [("user", user), ("database", database)] + parameters {
            body += Array(key.utf8) + [0] + Array(value.utf8) + [0]
        }
        body.append(0)
        socket.send(WireClient.int32(UInt32(body.count + 4)) + body)
        while true {
            guard let message = try next(timeout: 20) else { throw CommandError(description: "login: connection closed") }
            if message.type == UInt8(ascii: "E") { throw CommandError(description: "login refused: \(message.fields)") }
            if message.type == UInt8(ascii: "Z") { return }
        }
    }

    static func int32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    static func frame(_ type: Character, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(ascii: type.unicodeScalars.first!)] + int32(UInt32(payload.count + 4)) + payload
    }

    static func query(_ sql: String) -> [UInt8] { frame("Q", Array(sql.utf8) + [0]) }
    static func parse(_ sql: String, name: String = "") -> [UInt8] {
        frame("P", Array(name.utf8) + [0] + Array(sql.utf8) + [0, 0, 0])
    }
    /// Bind of the unnamed portal to `statement`, no parameters, text results.
    static func bind(statement: String = "") -> [UInt8] { frame("B", [0] + Array(statement.utf8) + [0, 0, 0, 0, 0, 0, 0]) }
    /// Close of a prepared statement ('S') or portal ('P').
    static func close(statement: String) -> [UInt8] { frame("C", [UInt8(ascii: "S")] + Array(statement.utf8) + [0]) }
    /// Describe of a prepared statement.
    static func describe(statement: String) -> [UInt8] { frame("D", [UInt8(ascii: "S")] + Array(statement.utf8) + [0]) }
    static func execute() -> [UInt8] { frame("E", [0, 0, 0, 0, 0]) }
    /// Execute of the unnamed portal that stops after `maxRows` rows (PortalSuspended).
    static func execute(maxRows: UInt32) -> [UInt8] { frame("E", [0] + int32(maxRows)) }
    static let sync = frame("S", [])

    /// The next whole message, or nil when the peer closed; throws on timeout.
    func next(timeout: Double) throws -> Message? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if buffer.count >= 5 {
                let length = Int(buffer[1]) << 24 | Int(buffer[2]) << 16 | Int(buffer[3]) << 8 | Int(buffer[4])
                if buffer.count >= 1 + length {
                    let message = Message(type: buffer[0], payload: Array(buffer[5..<(1 + length)]))
                    buffer.removeFirst(1 + length)
                    return message
                }
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw CommandError(description: "no complete message within \(timeout) s") }
            var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(remaining, 1) * 1000))
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer += chunk[0..<count]
            } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                return nil
            }
        }
    }

    /// Messages up to and including the `count`-th ReadyForQuery (fewer if the peer closed).
    func collect(readyForQuery count: Int, timeout: Double) throws -> [Message] {
        var messages: [Message] = []
        var seen = 0
        while seen < count, let message = try next(timeout: timeout) {
            messages.append(message)
            if message.type == UInt8(ascii: "Z") { seen += 1 }
        }
        return messages
    }

    /// SO_LINGER 0: when the client is released (its socket closed), the kernel sends RST
    /// instead of FIN.
    func armReset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(socket.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    }
}
