import Config
import Access
import FuzzSupport

/// pg_hba.conf and pg_ident.conf: the tokenizer (quoting, continuation lines, comments,
/// `@file`, include / include_if_exists / include_dir), the line parsers (addresses, masks,
/// options, regular expressions), check_hba and check_usermap, all on the input as a file.
///
/// The input is the file itself, stored in memory next to a few files it may include —
/// including itself, so include loops reach the depth limit. Property, besides not crashing:
/// each line is also tried as an IP address, whose printed form must parse back to it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAccess(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    let text = input.text
    var files = companions
    files.files[path] = text
    let hba = HbaRules.parse(text: text, fileName: path, files: files)
    if case .success(let rules) = hba {
        let environment = makeEnvironment()
        for attempt in attempts { _ = rules.firstMatch(attempt, environment: environment) }
    }
    let ident = IdentMaps.parse(text: text, fileName: path, files: files)
    if case .success(let maps) = ident {
        let mapNames = Set(maps.lines.prefix(8).map(\.mapName)).union(["", "certmap"])
        for map in mapNames {
            for (systemUser, databaseUser) in identities {
                _ = maps.evaluate(map: map, systemUser: systemUser, databaseUser: databaseUser, isMember: isMember)
                _ = maps.evaluate(map: map, systemUser: systemUser, databaseUser: databaseUser,
                                  caseInsensitive: true, isMember: isMember)
            }
        }
    }
    for line in text.split(separator: "\n").prefix(16) {
        if let address = IPAddress(parsing: String(line)) {
            fuzzCheck(IPAddress(parsing: address.description) == address, "\(address) does not parse back")
        }
    }
    return 0
}

private let path = "/etc/portcullis/pg_hba.conf"

private let companions = InMemoryConfigFiles([
    "/etc/portcullis/users.list": "alice, bob\n\"bob smith\" @nested.list\n",
    "/etc/portcullis/nested.list": "carol /^svc_ +admins\n@users.list\n",
    "/etc/portcullis/conf.d/10-extra.conf": "host all all 192.168.0.0/16 scram-sha-256\n",
    "/etc/portcullis/conf.d/20-ident.conf": "certmap /^(.*)@example\\.com$ \\1\n",
    "/etc/portcullis/conf.d/sub/ignored.conf": "garbage\n",
    "/etc/portcullis/loop.conf": "include loop.conf\n",
])

private func isMember(_ user: String, _ role: String) -> Bool {
    (role == "admins" && (user == "alice" || user == "gina")) || (role == "operators" && user == "jim")
}

/// A function, since HbaEnvironment (holding closures) is not Sendable.
private func makeEnvironment() -> HbaEnvironment {
    HbaEnvironment(
    localInterfaces: [
        LocalInterface(address: IPAddress(parsing: "127.0.0.1")!, netmask: IPAddress(parsing: "255.0.0.0")!),
        LocalInterface(address: IPAddress(parsing: "192.168.1.10")!, netmask: IPAddress(parsing: "255.255.255.0")!),
        LocalInterface(address: IPAddress(parsing: "::1")!,
                       netmask: IPAddress(parsing: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")!),
    ],
    isMember: isMember,
    hostnameResolver: HostnameResolver(
        reverseLookup: { address in
            switch address.description {
            case "10.9.9.9": "db1.example.com"
            case "10.9.9.8": "evil.example.com"
            case "::1": "localhost"
            default: nil
            }
        },
        forwardLookup: { name in
            switch name {
            case "db1.example.com": [IPAddress(parsing: "10.9.9.9")!]
            case "evil.example.com": [IPAddress(parsing: "1.1.1.1")!]
            case "localhost": [IPAddress(parsing: "::1")!, IPAddress(parsing: "127.0.0.1")!]
            default: nil
            }
        }))
}

private let attempts: [ConnectionAttempt] = [
    ConnectionAttempt(kind: .local, clientAddress: nil, database: "app", user: "alice"),
    ConnectionAttempt(kind: .local, clientAddress: nil, database: "replication", user: "rep", isReplication: true),
    ConnectionAttempt(kind: .host(ssl: true), clientAddress: IPAddress(parsing: "127.0.0.1"), database: "app", user: "bob"),
    ConnectionAttempt(kind: .host(ssl: false), clientAddress: IPAddress(parsing: "192.168.1.77"), database: "test_12", user: "svc_x"),
    ConnectionAttempt(kind: .host(ssl: true), clientAddress: IPAddress(parsing: "::1"), database: "postgres", user: "gina"),
    ConnectionAttempt(kind: .host(ssl: true), clientAddress: IPAddress(parsing: "10.9.9.9"), database: "x y", user: "bob smith"),
    ConnectionAttempt(kind: .host(ssl: false), clientAddress: IPAddress(parsing: "10.9.9.8"), database: "app", user: "carol"),
]

private let identities: [(String, String)] = [
    ("alice@example.com", "alice"), ("root", "postgres"), ("ops-jim", "jim"), ("postgres", "pg_monitor"),
    ("John Smith", "john"), ("", ""), ("CN=Admin One", "admin"),
]
