/// The [portcullis] section. Names and units follow postgresql.conf where PostgreSQL has an
/// equivalent (PostgreSQL 20.3 Connections and Authentication).
extension ConfigBuilder {
    static let minimumMessageBufferSize = 8 * 1024
    static let maximumMessageSize = 1 << 30

    mutating func applyGeneral(_ entry: IniDocument.Entry) throws(SettingError) -> Bool {
        let value = entry.value
        switch entry.key {
        case "listen_addresses":
            config.general.listenAddresses = try SettingValue.listenAddresses(value)
        case "listen_port":
            config.general.listenPort = UInt16(try SettingValue.integer(value, in: 1...65535))
        case "so_reuseport":
            config.general.soReusePort = try SettingValue.boolean(value)
        case "unix_socket_directories":
            config.general.unixSocketDirectories = try SettingValue.socketDirectories(value)
        case "unix_socket_permissions":
            config.general.unixSocketPermissions = try SettingValue.octalPermissions(value)
        case "unix_socket_group":
            config.general.unixSocketGroup = try groupName(value)
        case "workers":
            config.general.workers = try SettingValue.integer(value, in: 0...256)
        case "max_client_connections":
            config.general.maxClientConnections = try SettingValue.integer(value, in: 1...1_000_000)
        case "max_startup_connections":
            config.general.maxStartupConnections = try SettingValue.integer(value, in: 0...1_000_000)
        case "max_startup_connections_per_address":
            config.general.maxStartupConnectionsPerAddress = try SettingValue.integer(value, in: 0...1_000_000)
        case "max_identity_connections":
            config.general.maxIdentityConnections = try SettingValue.integer(value, in: 0...1_000_000)
        case "startup_first_byte_timeout":
            config.general.startupFirstByteTimeout = try optionalDuration(value)
        case "auth_failure_delay":
            let delay = try optionalDuration(value)
            if let delay, delay > .seconds(60) { throw SettingError("must be at most 60s") }
            config.general.authFailureDelay = delay
        case "login_timeout":
            config.general.loginTimeout = try positiveDuration(value)
        case "client_idle_timeout":
            config.general.clientIdleTimeout = try optionalDuration(value)
        case "shutdown_drain_timeout":
            config.general.shutdownDrainTimeout = try SettingValue.duration(value)
        case "max_message_size":
            config.general.maxMessageSize = try SettingValue.size(
                value, in: Self.minimumMessageBufferSize...Self.maximumMessageSize)
        case "readonly_max_statement_size":
            config.general.readOnlyMaxStatementSize = try SettingValue.size(value, in: 1024...Self.maximumMessageSize)
        case "max_kept_statement_memory":
            config.general.maxKeptStatementMemory = try SettingValue.size(value, in: (1 << 20)...(1 << 40))
        case "readonly_classify_timeout":
            config.general.readOnlyClassifyTimeout = try positiveDuration(value)
        case "outbound_buffer_limit":
            config.general.outboundBufferLimit = try SettingValue.size(
                value, in: Self.minimumMessageBufferSize...Self.maximumMessageSize)
        case "local_auth_method":
            config.general.localAuthMethod = try SettingValue.choice(value, of: AuthMethod.self)
        case "host_auth_method":
            config.general.hostAuthMethod = try SettingValue.choice(value, of: AuthMethod.self)
        case "server_reset":
            config.general.serverReset = try SettingValue.choice(value, of: ServerResetPolicy.self)
        case "pool_mode":
            config.general.poolMode = try SettingValue.choice(value, of: PoolMode.self)
        case "transaction_pin":
            config.general.transactionPin = try SettingValue.choice(value, of: TransactionPinPolicy.self)
        case "max_prepared_statements":
            config.general.maxPreparedStatements = try SettingValue.integer(value, in: 0...100_000)
        case "pool_max_size":
            config.general.pool.maxSize = try SettingValue.integer(value, in: 1...100_000)
        case "pool_min_idle":
            config.general.pool.minIdle = try SettingValue.integer(value, in: 0...100_000)
        case "pool_spare_linger":
            config.general.pool.spareLinger = try SettingValue.duration(value)
        case "pool_spare_max_age":
            config.general.pool.spareMaxAge = try optionalDuration(value)
        case "pool_idle_timeout":
            config.general.pool.idleTimeout = try optionalDuration(value)
        case "pool_max_lifetime":
            config.general.pool.maxLifetime = try optionalDuration(value)
        case "pool_wait_timeout":
            config.general.pool.waitTimeout = try positiveDuration(value)
        case "secret_key_file":
            config.general.secretKeyFile = value.isEmpty ? nil : value
        case "hba_file":
            config.general.hbaFile = value.isEmpty ? nil : value
        case "ident_file":
            config.general.identFile = value.isEmpty ? nil : value
        case "pid_file":
            config.general.pidFile = value.isEmpty ? nil : value
        case "service_user":
            config.general.serviceUser = value.isEmpty ? nil : value
        case "service_password":
            config.general.servicePassword = value.isEmpty ? nil : Secret(value)
        case "catalog_refresh_interval":
            config.general.catalogRefreshInterval = try positiveDuration(value)
        case "catalog_max_age":
            // No "off": a snapshot that can be frozen forever is the hole this closes.
            config.general.catalogMaxAge = value.isEmpty ? nil : try positiveDuration(value)
        case "log_level":
            config.general.logLevel = try SettingValue.choice(value, of: LogLevelSetting.self)
        case _ where entry.key.hasPrefix("audit"):
            return try applyAudit(entry)
        case _ where entry.key.hasPrefix("auth_"):
            return try applyAuthQuery(entry)
        default:
            return false
        }
        return true
    }

    private func positiveDuration(_ value: String) throws(SettingError) -> Duration {
        let duration = try SettingValue.duration(value)
        guard duration > .zero else { throw SettingError("must be greater than zero") }
        return duration
    }

    /// 0 means "off", as for PostgreSQL's idle_session_timeout.
    private func optionalDuration(_ value: String) throws(SettingError) -> Duration? {
        let duration = try SettingValue.duration(value)
        return duration == .zero ? nil : duration
    }

    private func groupName(_ value: String) throws(SettingError) -> String? {
        if value.isEmpty { return nil }
        guard !value.contains(where: { $0 == ":" || $0 == "/" || $0 == "," || IniParser.isWhitespace($0) }) else {
            throw SettingError("\"\(value)\" is not a valid group name")
        }
        return value
    }

    mutating func checkGeneralRelationships() {
        let general = config.general
        if general.listenAddresses.isEmpty, general.unixSocketDirectories.isEmpty {
            report(line: lineForProblem(with: "listen_addresses", in: "portcullis"),
                   "no listeners: listen_addresses and unix_socket_directories are both empty")
        }
        for directory in general.unixSocketDirectories {
            let path = SettingValue.socketPath(directory: directory, port: general.listenPort)
            if path.utf8.count > SettingValue.maximumSocketPathLength {
                report(line: lineForProblem(with: "unix_socket_directories", in: "portcullis"),
                       "unix_socket_directories: socket path \"\(path)\" is longer than "
                           + "\(SettingValue.maximumSocketPathLength) bytes")
            }
        }
        if general.maxStartupConnections > general.maxClientConnections {
            report(line: lineForProblem(with: "max_startup_connections", in: "portcullis"),
                   "max_startup_connections (\(general.maxStartupConnections)) must not exceed max_client_connections (\(general.maxClientConnections))")
        }
        if let maxAge = general.catalogMaxAge, maxAge <= general.catalogRefreshInterval {
            // Every snapshot would outlive its bound before the next refresh came: read-only
            // statements would be refused at every interval.
            report(line: lineForProblem(with: "catalog_max_age", in: "portcullis"),
                   "catalog_max_age must be longer than catalog_refresh_interval")
        }
        if general.pool.minIdle > general.pool.maxSize {
            report(line: lineForProblem(with: "pool_min_idle", in: "portcullis"),
                   "pool_min_idle (\(general.pool.minIdle)) must not exceed pool_max_size (\(general.pool.maxSize))")
        }
    }
}
