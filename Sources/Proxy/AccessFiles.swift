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

    public init(rules: any ClientAccessRules, membership: RoleMembership?) {
        self.rules = rules
        self.membership = membership
    }

    /// With `hba_file`: pg_hba.conf and pg_ident.conf as PostgreSQL reads them; a file with
    /// any error is refused whole (every error reported as file:line). Without: the
    /// per-transport methods of [portcullis].
    static func load(_ config: PortcullisConfig, logger: Logger, previous: AccessFiles?) throws -> AccessFiles {
        let general = config.general
        guard let hbaPath = general.hbaFile else {
            if general.identFile != nil {
                throw ProxyStartupError(description: "ident_file is set but hba_file is not; maps are used only by pg_hba.conf rules")
            }
            return AccessFiles(rules: MethodPerTransportRules(general), membership: nil)
        }
        let files = FileSystemConfigFiles()
        var errors: [String] = []
        var hba: HbaRules?
        switch HbaRules.load(path: hbaPath, files: files) {
        case .success(let rules): hba = rules
        case .failure(let failure): errors.append(failure.description)
        }
        var ident: IdentMaps?
        if let identPath = general.identFile {
            switch IdentMaps.load(path: identPath, files: files) {
            case .success(let maps): ident = maps
            case .failure(let failure): errors.append(failure.description)
            }
        }
        guard let hba, errors.isEmpty else {
            throw ProxyStartupError(description: errors.joined(separator: "\n"))
        }
        let needsMembership = HbaAccessRules.usesMembership(hba, ident)
        var membership: RoleMembership?
        if needsMembership {
            membership = try loadMembership(config, logger: logger, previous: previous?.membership)
        }
        let rules = HbaAccessRules(hba: hba, ident: ident, membership: membership ?? .empty,
                                   interfaces: LocalInterface.systemInterfaces())
        return AccessFiles(rules: rules, membership: membership)
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

    static func usesMembership(_ hba: HbaRules, _ ident: IdentMaps?) -> Bool {
        let groupInHba = hba.rules.contains { rule in
            rule.users.contains { !$0.token.isQuoted && $0.token.text.hasPrefix("+") }
                || rule.databases.contains { !$0.token.isQuoted && $0.token.text == "samerole" }
        }
        let groupInIdent = (ident?.lines ?? []).contains { !$0.databaseUser.token.isQuoted && $0.databaseUser.token.text.hasPrefix("+") }
        return groupInHba || groupInIdent
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
