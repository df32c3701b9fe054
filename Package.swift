// swift-tools-version: 6.0
import PackageDescription

// Release builds drop the run-time exclusivity checks (the compile-time ones stay, and debug
// builds, which `make test` runs, keep both): the per-access bookkeeping was 11 % of the
// proxy's instructions per pgbench transaction (docs/PERFORMANCE.md, "Exclusivity checks").
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Portcullis",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "portcullis", targets: ["CLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // Linux headers Glibc's module lacks (epoll, eventfd, timerfd, signalfd) and
        // OpenSSL function-like macros, exposed as small inline C functions.
        .target(
            name: "CPortcullisShims",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto"), .linkedLibrary("systemd"), .linkedLibrary("zstd")]
        ),
        // libpq, for administrative one-shot connections (check-role); the proxy's own
        // connections never use it.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // libcurl (with its AWS SigV4 signing) for the S3-compatible backup store.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "Wire", swiftSettings: strict),
        .target(name: "EventLoop", dependencies: ["CPortcullisShims"], swiftSettings: strict),
        .target(name: "TLS", dependencies: ["CPortcullisShims"], swiftSettings: strict),
        .target(name: "Auth", dependencies: ["CPortcullisShims", "EventLoop"], swiftSettings: strict),
        .target(name: "Config", dependencies: ["EventLoop"], swiftSettings: strict),
        .target(name: "Pool", dependencies: ["Wire"], swiftSettings: strict),
        // pg_hba.conf / pg_ident.conf as PostgreSQL 15–17 parse and apply them (pure, Glibc only).
        // Shares Config's file:line diagnostics (ConfigError) and file reader (FileSystemConfigFiles).
        .target(name: "Access", dependencies: ["Config"], swiftSettings: strict),
        // libpg_query: PostgreSQL 15's parser as a static library (Debian libpg-query-dev).
        // ":libpg_query.a" makes the linker take the archive, so no runtime .so is needed;
        // the archive already contains the protobuf-c runtime it uses.
        .target(
            name: "CPgQuery",
            linkerSettings: [.linkedLibrary(":libpg_query.a"), .linkedLibrary("pthread")]
        ),
        .target(name: "Policy", dependencies: ["CPgQuery"], swiftSettings: strict),
        // The established phase of a session as a pure machine (trackers, read-only gate,
        // statement lifecycle, catalog-change detection, reuse at rest): no TLS, EventLoop or libpq.
        .target(name: "Session", dependencies: ["Wire", "Policy"], swiftSettings: strict),
        .target(
            name: "Proxy",
            dependencies: ["Wire", "EventLoop", "TLS", "Auth", "Config", "Pool", "Admin", "Policy", "Access", "Audit", "AuditSink", "Session", "Backup",
                           "CPortcullisShims", "CPgQuery", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(name: "Admin", dependencies: ["CLibPQ", "Config", "Policy"], swiftSettings: strict),
        // Audit events and their renderings (pgAudit line, journald fields, JSON lines): pure.
        .target(name: "Audit", swiftSettings: strict),
        // The audit writer thread, its per-loop queues and sinks (journald, JSON lines).
        .target(name: "AuditSink", dependencies: ["Audit", "CPortcullisShims", "EventLoop"], swiftSettings: strict),
        // Backup files: zstd streaming and the chunked AES-256-GCM format (pure on libzstd/libcrypto).
        .target(name: "BackupFormat", dependencies: ["Auth", "CPortcullisShims"], swiftSettings: strict),
        // The backup sidecar's shell (pg_dump/pg_restore children, the local-directory store)
        // and its pure parts (manifest, retention, progress).
        .target(name: "Backup", dependencies: ["BackupFormat", "Auth", "Config", "EventLoop", "CPortcullisShims", "CCurl"],
                swiftSettings: strict),
        // `portcullis backup ...` (a library: the CLI target is its main.swift alone).
        .target(name: "BackupCommands",
                dependencies: ["Backup", "BackupFormat", "Auth", "Config", "Proxy",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: strict),
        .executableTarget(name: "portcullis-classifier-bench", dependencies: ["Policy", "CPgQuery"],
                          path: "Sources/ClassifierBench", swiftSettings: strict),
        .executableTarget(name: "portcullis-audit-bench", dependencies: ["Audit", "AuditSink", "EventLoop"],
                          path: "Sources/AuditBench", swiftSettings: strict),
        .executableTarget(
            name: "CLI",
            dependencies: ["Proxy", "Config", "Auth", "Admin", "BackupCommands", "EventLoop",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(name: "WireTests", dependencies: ["Wire"], swiftSettings: strict),
        .testTarget(name: "ConfigTests", dependencies: ["Config"],
                    resources: [.copy("Fixtures")], swiftSettings: strict),
        .testTarget(name: "AuthTests", dependencies: ["Auth"], swiftSettings: strict),
        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop"], swiftSettings: strict),
        .testTarget(name: "AccessTests", dependencies: ["Access", "Config"],
                    resources: [.copy("Fixtures")], swiftSettings: strict),
        .testTarget(name: "PoolTests", dependencies: ["Pool"], swiftSettings: strict),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "Wire", "Config", "Auth", "Policy", "TLS", "Access", "Admin", "Audit", "Session", "EventLoop", "CPortcullisShims",
                                                    .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "AdminTests", dependencies: ["Admin", "Config"], swiftSettings: strict),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "Admin", "CPgQuery"],
                    resources: [.copy("Fixtures")], swiftSettings: strict),
        .testTarget(name: "SessionTests", dependencies: ["Session", "Wire", "Policy", "Proxy"], swiftSettings: strict),
        .testTarget(name: "BackupFormatTests", dependencies: ["BackupFormat"], swiftSettings: strict),
        .testTarget(name: "BackupTests", dependencies: ["Backup", "BackupFormat", "Config"], swiftSettings: strict),
        .testTarget(name: "AuditTests", dependencies: ["Audit", "AuditSink", "EventLoop"], swiftSettings: strict),
        .testTarget(name: "IntegrationTests", dependencies: ["CLibPQ", "CPgQuery", "CPortcullisShims"], swiftSettings: strict),
    ]
)
