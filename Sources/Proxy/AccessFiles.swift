import Access
import Config
import Admin
import Logging

/// The client-access rules of one configuration generation: built at start-up and at each
/// reload, immutable afterwards, shared by every loop.
public struct AccessFiles: Sendable {
    public let rules: any ClientAccessRules
    /// Role membership read from the upstream catalog for `+group`/`samerole`; nil when not
    /// configured.
    public let membership: RoleMembership?
    /// The parsed files in force (nil: no hba_file / no ident_file, or never loaded), kept so
    /// that the next reload can keep one of them when its new version has errors.
    public let hba: HbaRules?
    public let ident: IdentMaps?
    /// Files of this generation that were not (re)loaded because they have errors, with
    /// their `file:line` diagnostics; the rules of such a file are the previous generation's.
    public let refusedFiles: [RefusedAccessFile]
    /// `file:line: warning: ...` for lines in force that PostgreSQL accepts silently but
    /// that deserve a word (``HbaRules/cleartextPasswordWarnings``); logged at every load and
    /// printed by `check-config`.
    public let warnings: [String]

    public init(rules: any ClientAccessRules, membership: RoleMembership?, hba: HbaRules? = nil, ident: IdentMaps? = nil,
                refusedFiles: [RefusedAccessFile] = [], warnings: [String] = []) {
        self.rules = rules
        self.membership = membership
        self.hba = hba
        self.ident = ident
        self.refusedFiles = refusedFiles
        self.warnings = warnings
    }

    /// With `hba_file`: pg_hba.conf and pg_ident.conf as PostgreSQL reads them. Each file is
    /// loaded on its own, as PostgreSQL's SIGHUP handler calls load_hba() and load_ident()
    /// separately (src/backend/postmaster/postmaster.c SIGHUP_handler, PostgreSQL 15): a file
    /// with any error is refused whole (every error reported as file:line) and its previous
    /// version stays in force, without blocking the other file. At start-up (no previous
    /// pg_hba.conf) a broken pg_hba.conf is fatal, as in PostgreSQL ("could not load
    /// pg_hba.conf"); a broken pg_ident.conf is not: PostgreSQL starts without maps, and so
    /// does Portcullis (the errors are logged and `check-config` fails). Without `hba_file`:
    /// the per-transport methods of [portcullis].
    static func load(_ config: PortcullisConfig, logger: Logger, previous: AccessFiles?) throws -> AccessFiles {
        let general = config.general
        guard let hbaPath = general.hbaFile else {
            if general.identFile != nil {
                throw ProxyStartupError(description: "ident_file is set but hba_file is not; maps are used only by pg_hba.conf rules")
            }
            return AccessFiles(rules: MethodPerTransportRules(general), membership: nil)
        }
        let files = FileSystemConfigFiles()
        let hbaResult = HbaRules.load(path: hbaPath, files: files)
        let identResult = general.identFile.map { IdentMaps.load(path: $0, files: files) }
        var refused: [RefusedAccessFile] = []
        let hba: HbaRules
        switch hbaResult {
        case .success(let rules):
            hba = rules
        case .failure(let failure):
            // Only an earlier pg_hba.conf can stand in; with none (start-up, or the simple
            // per-transport methods until now) the whole load is refused, with every error
            // of both files.
            guard let kept = previous?.hba else {
                var errors = failure.errors
                if case .failure(let identFailure)? = identResult { errors += identFailure.errors }
                throw ProxyStartupError(description: ConfigErrors(errors: errors).description)
            }
            hba = kept
            refused.append(RefusedAccessFile(kind: .hba, path: hbaPath, errors: failure.errors.map(\.description)))
        }
        var ident: IdentMaps?
        switch identResult {
        case nil:
            ident = nil
        case .success(let maps)?:
            ident = maps
        case .failure(let failure)?:
            ident = previous?.ident
            refused.append(RefusedAccessFile(kind: .ident, path: general.identFile ?? "", errors: failure.errors.map(\.description)))
        }
        let needsMembership = HbaAccessRules.usesMembership(hba, ident)
        var membership: RoleMembership?
        if needsMembership {
            membership = try loadMembership(config, logger: logger, previous: previous?.membership)
        }
        let rules = HbaAccessRules(hba: hba, ident: ident, membership: membership ?? .empty,
                                   interfaces: LocalInterface.systemInterfaces())
        let warnings = hba.cleartextPasswordWarnings.map(\.description)
        for warning in warnings { logger.warning("\(warning)") }
        return AccessFiles(rules: rules, membership: membership, hba: hba, ident: ident, refusedFiles: refused, warnings: warnings)
    }

    /// Through a service connection to the first [databases] entry. When the upstream cannot
    /// be read, the previous membership stays (or none: `+group` then matches nobody —
    /// fail closed), with an error in the log.
    private static func loadMembership(_ config: PortcullisConfig, logger: Logger, previous: RoleMembership?) throws -> RoleMembership? {
        guard let user = config.general.serviceUser else {
            throw ProxyStartupError(description: "pg_hba.conf or pg_ident.conf uses +group or samerole: set service_user (and service_password) so Portcullis can read role membership")
        }
        guard let target = config.databases.values.filter({ $0.name != "*" }).min(by: { $0.name < $1.name }) else {
            throw ProxyStartupError(description: "role membership for +group/samerole needs a [databases] entry to connect through")
        }
        do {
            let membership = try RoleMembership.load(target: target, user: user, password: config.general.servicePassword?.reveal())
            logger.info("read role membership for pg_hba.conf/pg_ident.conf", metadata: ["roles": "\(membership.membersByRole.count)"])
            return membership
        } catch {
            logger.error("could not read role membership for +group/samerole (\(previous == nil ? "no group matches until the next reload" : "keeping the previous membership")): \(error)")
            return previous
        }
    }
}

/// A pg_hba.conf or pg_ident.conf that was not (re)loaded, and why.
public struct RefusedAccessFile: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case hba = "pg_hba.conf"
        case ident = "pg_ident.conf"
    }

    public var kind: Kind
    public var path: String
    /// `file:line: message`, one per error.
    public var errors: [String]

    /// PostgreSQL's LOG line for it ("pg_hba.conf was not reloaded"), naming the path.
    public var summary: String {
        "\(kind.rawValue) \"\(path)\" was not reloaded: it has errors; its previous rules stay in force"
    }
}

/// pg_hba.conf and pg_ident.conf as ``ClientAccessRules``.
struct HbaAccessRules: ClientAccessRules {
    let hba: HbaRules
    let ident: IdentMaps?
    let membership: RoleMembership
    let interfaces: [LocalInterface]
    /// Host-name addresses need DNS: done once per connection on a lookup thread
    /// (``SessionPrestart``), never on a loop. Without an answer host-name lines never match.
    let usesHostNames: Bool
    /// `peer` lines need the peer's user name (getpwuid_r, also on a lookup thread).
    let usesPeer: Bool
    /// The connection's host-name lookups, answered before matching.
    private(set) var resolvedClient: ResolvedClientHost?

    init(hba: HbaRules, ident: IdentMaps?, membership: RoleMembership, interfaces: [LocalInterface]) {
        self.hba = hba
        self.ident = ident
        self.membership = membership
        self.interfaces = interfaces
        usesHostNames = hba.rules.contains { if case .hostname = $0.address { true } else { false } }
        usesPeer = hba.rules.contains { $0.method == .peer }
    }

    /// These rules for one connection whose host-name lookups are done.
    func resolving(_ client: ResolvedClientHost) -> HbaAccessRules {
        var copy = self
        copy.resolvedClient = client
        return copy
    }

    /// Every membership spelling PostgreSQL accepts (`+group`, `samerole`, `samegroup`;
    /// see ``HbaRules/usesRoleMembership``).
    static func usesMembership(_ hba: HbaRules, _ ident: IdentMaps?) -> Bool {
        hba.usesRoleMembership || (ident?.usesRoleMembership ?? false)
    }

    func rule(for attempt: ClientAttempt) -> ClientAuthRule? {
        let address = attempt.remoteAddress.flatMap { IPAddress(parsing: $0) }.map(\.unmappingIPv4)
        if !attempt.isLocal && address == nil { return nil }
        let connection = ConnectionAttempt(kind: attempt.isLocal ? .local : .host(ssl: attempt.isTLS), clientAddress: address,
                                           database: attempt.database, user: attempt.user, isReplication: attempt.isReplication)
        let membership = membership
        let environment = HbaEnvironment(localInterfaces: interfaces,
                                         isMember: { membership.isMember($0, of: $1) },
                                         hostnameResolver: resolvedClient?.resolver ?? .none)
        guard let rule = hba.firstMatch(connection, environment: environment) else { return nil }
        let method: ClientAuthRule.Method = switch rule.method {
        case .trust: .trust
        case .reject: .reject
        case .scramSHA256: .scramSHA256
        case .md5: .md5
        case .password: .password
        case .cert: .cert
        case .peer: .peer
        }
        let clientCertificate: ClientAuthRule.ClientCertificateCheck = switch rule.options.clientCert {
        case nil: .none
        case .verifyCA: .verifyCA
        case .verifyFull: .verifyFull
        }
        let name: ClientAuthRule.CertificateName = switch rule.options.clientName {
        case .commonName: .commonName
        case .distinguishedName: .distinguishedName
        }
        return ClientAuthRule(method: method, clientCertificate: clientCertificate, certificateName: name,
                              mapName: rule.options.mapName, origin: "\(rule.fileName):\(rule.lineNumber)")
    }

    func mapAllows(map: String, systemUser: String, databaseUser: String) -> Bool {
        guard let ident else { return false }
        let membership = membership
        return ident.check(map: map, systemUser: systemUser, databaseUser: databaseUser,
                           isMember: { membership.isMember($0, of: $1) })
    }
}
