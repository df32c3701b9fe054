/// The proxy the transaction-pooling tests share: one event loop (so one pool of `poolSize`
/// server connections per entry and role), loopback trusted and client TLS optional (so a raw
/// wire client can log in as well as libpq), and transaction-mode entries over `app`.
extension ProxyProcess.Options {
    /// `databases` gets the base upstream connection string and returns `[databases]` lines.
    static func transactionPooling(_ h: Harness, directory: String, poolSize: Int, waitTimeout: String = "30s",
                                   databases: (String) -> [String]) throws -> ProxyProcess.Options {
        var options = ProxyProcess.Options(upstream: h.cluster)
        let dir = try h.makeDir(directory)
        try "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
            .write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        options.clientTLS = "allow"
        options.extraSettings = ["workers = 1", "pool_max_size = \(poolSize)", "pool_wait_timeout = \(waitTimeout)",
                                 "hba_file = \(dir)/pg_hba.conf", "pid_file = \(dir)/portcullis.pid"]
        options.extraDatabases = databases(ProxyProcess.upstreamConninfo(h.cluster, certDir: h.certDir))
        return options
    }
}
