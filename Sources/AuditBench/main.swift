import Audit
import AuditSink
import EventLoop
import Glibc

// How many events a second the audit writer thread sustains into each sink: one producer
// thread submits N finished statement records (as an event loop would, retrying when the
// queue is full) and the clock runs until the writer has written them all.
// Usage: portcullis-audit-bench N json:/path | journald | journald:compact
// Prints one Markdown table row: | sink | events | seconds | events/s |

let arguments = CommandLine.arguments
guard arguments.count == 3, let count = Int(arguments[1]), count > 0 else {
    print("usage: portcullis-audit-bench N json:/path|journald|journald:compact")
    exit(2)
}
let sinkName = arguments[2]
let sink: any AuditSink
do {
    if sinkName == "journald" || sinkName == "journald:compact" {
        sink = JournalSink(fields: sinkName == "journald" ? .full : .compact)
    } else if sinkName.hasPrefix("json:") {
        sink = try JSONLinesSink(path: String(sinkName.dropFirst(5)), fsync: .off)
    } else {
        print("unknown sink \(sinkName)")
        exit(2)
    }
} catch {
    print("cannot open \(sinkName): \(error)")
    exit(1)
}

@Sendable func wallMicroseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}

let writer: AuditWriter
do {
    writer = try AuditWriter(sinks: [sink], policy: .backpressure, clock: { wallMicroseconds() })
} catch {
    print("cannot start the writer: \(error)")
    exit(1)
}
let queue = writer.makeQueue(capacity: 10_000)
writer.start()

// A pgbench -S statement as the proxy records it (already prepared: the writer's parse of
// the text is a cache hit after the first, as in the proxy for repeated statement shapes).
let session = AuditSession(sessionID: 281_474_976_710_657, clientUser: "app_rw", mappedIdentity: "app_rw",
                           serverUser: "app_rw", database: "app", clientAddress: "127.0.0.1", clientPort: 51234,
                           tlsVersion: "TLSv1.3", tlsCipher: "TLS_AES_256_GCM_SHA384", backendPID: 4711)
let started = MonotonicInstant.now()
for index in 0..<count {
    let statement = AuditStatement(statementID: UInt64(index + 1), substatementID: 1, auditClass: "READ", command: "SELECT",
                                   objectType: "TABLE", objectName: "pgbench_accounts",
                                   text: "SELECT abalance FROM pgbench_accounts WHERE aid = 4242;", outcome: .ok,
                                   durationMicroseconds: 87, rows: 1, transactionStatus: "I")
    let event = AuditEvent(kind: .statement, timeMicroseconds: wallMicroseconds(), session: session, statement: statement)
    while !queue.submit(event) { pauseThread(for: .microseconds(50)) }
}
while writer.writtenCount < count { pauseThread(for: .milliseconds(1)) }
let elapsed = MonotonicInstant.now().duration(since: started)
writer.stop()
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let label = sinkName.hasPrefix("json:") ? "JSON lines file" : sinkName == "journald" ? "journald" : "journald (compact fields)"
let centis = Int((seconds * 100).rounded())
let secondsText = "\(centis / 100).\(centis % 100 < 10 ? "0" : "")\(centis % 100)"
print("| \(label) | \(count) | \(secondsText) | \(Int(Double(count) / seconds)) |")
