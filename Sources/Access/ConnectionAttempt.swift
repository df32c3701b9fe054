/// What check_hba() looks at in a connection attempt.
public struct ConnectionAttempt: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A Unix-domain socket.
        case local
        /// TCP; `ssl` is whether TLS is in use.
        case host(ssl: Bool)
    }

    public var kind: Kind
    /// The client's address; nil for `.local`.
    public var clientAddress: IPAddress?
    public var database: String
    public var user: String
    /// A physical replication connection (`replication=true`), which pg_hba.conf matches
    /// only through the `replication` keyword. A logical replication connection
    /// (`replication=database`) is matched like an ordinary one: pass false.
    public var isReplication: Bool

    public init(kind: Kind, clientAddress: IPAddress?, database: String, user: String, isReplication: Bool = false) {
        self.kind = kind
        self.clientAddress = clientAddress
        self.database = database
        self.user = user
        self.isReplication = isReplication
    }
}

/// A local network interface, for `samehost` / `samenet` (pg_foreach_ifaddr).
public struct LocalInterface: Sendable, Equatable {
    public var address: IPAddress
    public var netmask: IPAddress

    public init(address: IPAddress, netmask: IPAddress) {
        self.address = address
        self.netmask = netmask
    }
}

/// Host-name lookups for pg_hba.conf host-name addresses, injected so matching stays pure.
/// PostgreSQL uses getnameinfo(NI_NAMEREQD) then getaddrinfo on the result.
public struct HostnameResolver {
    /// The client's host name, or nil when the reverse lookup fails.
    public var reverseLookup: (IPAddress) -> String?
    /// The addresses of a host name, or nil when the lookup fails.
    public var forwardLookup: (String) -> [IPAddress]?

    public init(reverseLookup: @escaping (IPAddress) -> String?, forwardLookup: @escaping (String) -> [IPAddress]?) {
        self.reverseLookup = reverseLookup
        self.forwardLookup = forwardLookup
    }

    /// Resolves nothing: host-name lines never match.
    public static var none: HostnameResolver {
        HostnameResolver(reverseLookup: { _ in nil }, forwardLookup: { _ in nil })
    }
}

/// The facts about the world that check_hba() consults besides the attempt itself.
public struct HbaEnvironment {
    public var localInterfaces: [LocalInterface]
    /// `isMember(user, role)`: whether `user` is a member of `role`, directly or
    /// indirectly, with is_member_of_role_nosuper semantics — superuser status does not
    /// count, and a role that does not exist is not a member of anything (and vice versa).
    public var isMember: (String, String) -> Bool
    public var hostnameResolver: HostnameResolver

    public init(localInterfaces: [LocalInterface] = [],
                isMember: @escaping (String, String) -> Bool = { _, _ in false },
                hostnameResolver: HostnameResolver = .none) {
        self.localInterfaces = localInterfaces
        self.isMember = isMember
        self.hostnameResolver = hostnameResolver
    }
}

/// The FATAL messages PostgreSQL 15 sends when pg_hba.conf refuses a connection
/// (src/backend/libpq/auth.c ClientAuthentication, uaReject and uaImplicitReject),
/// all with SQLSTATE 28000 (invalid_authorization_specification).
public enum HbaRejection {
    public static let sqlState = "28000"

    /// No line matched.
    public static func noEntryMessage(_ attempt: ConnectionAttempt) -> String {
        if attempt.isReplication {
            return "no pg_hba.conf entry for replication connection from host \"\(hostInfo(attempt))\", user \"\(attempt.user)\", \(encryptionState(attempt))"
        }
        return "no pg_hba.conf entry for host \"\(hostInfo(attempt))\", user \"\(attempt.user)\", database \"\(attempt.database)\", \(encryptionState(attempt))"
    }

    /// The first matching line has method `reject`.
    public static func rejectMessage(_ attempt: ConnectionAttempt) -> String {
        if attempt.isReplication {
            return "pg_hba.conf rejects replication connection for host \"\(hostInfo(attempt))\", user \"\(attempt.user)\", \(encryptionState(attempt))"
        }
        return "pg_hba.conf rejects connection for host \"\(hostInfo(attempt))\", user \"\(attempt.user)\", database \"\(attempt.database)\", \(encryptionState(attempt))"
    }

    /// The client address as getnameinfo(NI_NUMERICHOST) prints it; "[local]" for sockets.
    public static func hostInfo(_ attempt: ConnectionAttempt) -> String {
        switch attempt.kind {
        case .local: "[local]"
        case .host: attempt.clientAddress?.description ?? "???"
        }
    }

    static func encryptionState(_ attempt: ConnectionAttempt) -> String {
        switch attempt.kind {
        case .local, .host(ssl: false): "no encryption"
        case .host(ssl: true): "SSL encryption"
        }
    }
}
