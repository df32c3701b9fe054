// swift-tools-version: 6.0
import PackageDescription

// libFuzzer targets for Portcullis's pure decoders and parsers (docs/FUZZING.md).
//
// A package of its own so that the main package's `swift build` / `swift test` never sees an
// executable without `main`: libFuzzer supplies `main` only when linking with
// `-sanitize=fuzzer`, which scripts/fuzz.sh passes. The modules under test are the main
// package's own sources, reached through the symlinks in Linked/ (SwiftPM does not allow a
// target's path outside its package, and a `path: ".."` dependency would need library
// products and the main package's remote dependencies, which none of these modules use).

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, swiftSettings: strict)
}

let package = Package(
    name: "PortcullisFuzz",
    targets: [
        .target(name: "CPortcullisShims", path: "Linked/CPortcullisShims",
                linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto"), .linkedLibrary("systemd")]),
        .target(name: "CPgQuery", path: "Linked/CPgQuery",
                linkerSettings: [.linkedLibrary(":libpg_query.a"), .linkedLibrary("pthread")]),
        .target(name: "Wire", path: "Linked/Wire", swiftSettings: strict),
        .target(name: "EventLoop", dependencies: ["CPortcullisShims"], path: "Linked/EventLoop", swiftSettings: strict),
        .target(name: "Auth", dependencies: ["CPortcullisShims", "EventLoop"], path: "Linked/Auth", swiftSettings: strict),
        .target(name: "Config", dependencies: ["EventLoop"], path: "Linked/Config", swiftSettings: strict),
        .target(name: "Access", dependencies: ["Config"], path: "Linked/Access", swiftSettings: strict),
        .target(name: "Policy", dependencies: ["CPgQuery"], path: "Linked/Policy", swiftSettings: strict),
        .target(name: "FuzzSupport", swiftSettings: strict),
        fuzzTarget("FuzzStartup", ["Wire"]),
        fuzzTarget("FuzzFrames", ["Wire"]),
        fuzzTarget("FuzzSCRAM", ["Auth"]),
        fuzzTarget("FuzzAccess", ["Access", "Config"]),
        fuzzTarget("FuzzConfig", ["Config"]),
        fuzzTarget("FuzzClassifier", ["Policy"]),
    ]
)
