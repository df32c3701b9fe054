/// The audit stream's settings ([portcullis] `audit*` keys; docs/AUDIT.md).
public struct AuditSettings: Sendable, Equatable {
    public enum Sink: Sendable, Equatable {
        case journald
        /// JSON lines to a file (nil: standard output).
        case json(path: String?)
    }

    public enum Fsync: Sendable, Equatable {
        case off
        case batch
        case interval(Duration)
    }

    public enum QueueFull: String, Sendable, CaseIterable {
        case backpressure
        case drop
    }

    /// How much of a statement's text the record carries. Passwords are masked in every mode.
    public enum TextMode: String, Sendable, CaseIterable {
        case full
        /// libpg_query's normalize: constants become `$n`.
        case normalized
        case none
    }

    /// Which fields journald entries carry (`audit_journald_fields`; docs/AUDIT.md).
    public enum JournaldFields: String, Sendable, CaseIterable {
        case full
        /// Statement records without what their MESSAGE or their session's other records hold.
        case compact
    }

    /// pgAudit's classes (`pgaudit.log`).
    public static let classNames = ["READ", "WRITE", "FUNCTION", "ROLE", "DDL", "MISC", "MISC_SET"]

    public var enabled = false
    public var sinks: [Sink] = [.journald]
    public var jsonFsync: Fsync = .off
    public var journaldFields: JournaldFields = .full
    public var queueSize = 10_000
    /// `audit_queue_max_bytes`: what each loop's queue may hold in the events' texts and
    /// parameters, besides `queueSize` events (the first event always fits, however large).
    public var queueMaxBytes = 64 << 20
    public var queueFull: QueueFull = .backpressure
    public var statementText: TextMode = .full
    /// Upper-case class names logged; statements of other classes are not recorded. An
    /// identity's or a database entry's own `audit_classes` takes precedence (identity first),
    /// as `ALTER ROLE … SET pgaudit.log` wins over `ALTER DATABASE … SET pgaudit.log`.
    public var classes: Set<String> = Set(Self.classNames)
    /// pgAudit `log_relation`: one record per relation a READ or WRITE statement names.
    public var logRelation = false
    /// pgAudit `log_statement_once`: statement text and parameters only in the first record
    /// of a statement/substatement, `<previously logged>` in the others.
    public var logStatementOnce = false
    /// pgAudit `log_parameter`: extended-protocol Bind values in PARAMETER (text mode `full` only).
    public var logParameter = false
    /// pgAudit `log_parameter_max_size`: values longer than this many bytes are logged as
    /// `<long param suppressed>`; 0 means no limit. Default 1 MiB, not pgAudit's 0: the loop
    /// turns each kept value into text (binary ones into hex, twice their size) and the event
    /// carries it to the writer, so without a bound one Bind of a 1 GB value costs the loop and
    /// the queue that much; 1 MiB is also how much of a Query string a record keeps
    /// (StatementLifecycle.maxTextBytes).
    public var logParameterMaxSize = AuditSettings.defaultLogParameterMaxSize
    public static let defaultLogParameterMaxSize = 1 << 20

    public init() {}
}

extension ConfigBuilder {
    /// `audit`, `audit_sinks`, `audit_json_fsync`, `audit_journald_fields`, `audit_queue_size`, `audit_queue_max_bytes`,
    /// `audit_queue_full`,
    /// `audit_statement_text`, `audit_classes`, `audit_log_relation`, `audit_log_statement_once`,
    /// `audit_log_parameter`, `audit_log_parameter_max_size`.
    mutating func applyAudit(_ entry: IniDocument.Entry) throws(SettingError) -> Bool {
        let value = entry.value
        switch entry.key {
        case "audit":
            config.general.audit.enabled = try SettingValue.boolean(value)
        case "audit_sinks":
            var sinks: [AuditSettings.Sink] = []
            for item in try SettingValue.list(value) {
                if item == "journald" {
                    sinks.append(.journald)
                } else if item == "json:stdout" {
                    sinks.append(.json(path: nil))
                } else if item.hasPrefix("json:"), item.count > 5, item.dropFirst(5).hasPrefix("/") {
                    sinks.append(.json(path: String(item.dropFirst(5))))
                } else {
                    throw SettingError("\"\(item)\" is not a valid audit sink; expected journald, json:stdout or json:/absolute/path")
                }
            }
            guard !sinks.isEmpty else { throw SettingError("at least one audit sink is needed") }
            config.general.audit.sinks = sinks
        case "audit_json_fsync":
            switch value.lowercased() {
            case "off": config.general.audit.jsonFsync = .off
            case "batch": config.general.audit.jsonFsync = .batch
            default:
                let every = try SettingValue.duration(value)
                guard every > .zero else { throw SettingError("must be off, batch or a positive duration") }
                config.general.audit.jsonFsync = .interval(every)
            }
        case "audit_journald_fields":
            config.general.audit.journaldFields = try SettingValue.choice(value, of: AuditSettings.JournaldFields.self)
        case "audit_queue_size":
            config.general.audit.queueSize = try SettingValue.integer(value, in: 16...10_000_000)
        case "audit_queue_max_bytes":
            config.general.audit.queueMaxBytes = try SettingValue.size(value, in: (1 << 20)...(1 << 40))
        case "audit_queue_full":
            config.general.audit.queueFull = try SettingValue.choice(value, of: AuditSettings.QueueFull.self)
        case "audit_statement_text":
            config.general.audit.statementText = try SettingValue.choice(value, of: AuditSettings.TextMode.self)
        case "audit_classes":
            config.general.audit.classes = try Self.auditClasses(value)
        case "audit_log_relation":
            config.general.audit.logRelation = try SettingValue.boolean(value)
        case "audit_log_statement_once":
            config.general.audit.logStatementOnce = try SettingValue.boolean(value)
        case "audit_log_parameter":
            config.general.audit.logParameter = try SettingValue.boolean(value)
        case "audit_log_parameter_max_size":
            config.general.audit.logParameterMaxSize = try SettingValue.integer(value, in: 0...1_073_741_823)
        default:
            return false
        }
        return true
    }

    /// pgAudit-style: `all`, or a list of class names (case-insensitive).
    static func auditClasses(_ value: String) throws(SettingError) -> Set<String> {
        var classes: Set<String> = []
        for item in try SettingValue.list(value) {
            let upper = item.uppercased()
            if upper == "ALL" {
                classes.formUnion(AuditSettings.classNames)
            } else if AuditSettings.classNames.contains(upper) {
                classes.insert(upper)
            } else {
                throw SettingError("\"\(item)\" is not an audit class; expected all or any of "
                    + AuditSettings.classNames.joined(separator: ", "))
            }
        }
        return classes
    }
}
