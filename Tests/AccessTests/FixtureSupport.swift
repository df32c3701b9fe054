import Config
import Foundation
import XCTest

@testable import Access

/// Fixture files live next to the tests; they are read through `FileSystemConfigFiles`, so
/// the real-file-system implementation is exercised too.
enum Fixtures {
    static var directory: String {
        let file = "\(#filePath)"
        let parent = file[..<file.lastIndex(of: "/")!]
        return "\(parent)/Fixtures"
    }

    static func path(_ name: String) -> String { "\(directory)/\(name)" }

    static func text(_ name: String) throws -> String {
        switch FileSystemConfigFiles().readFile(atPath: path(name)) {
        case .success(let text): return text
        case .failure(let error): throw error
        }
    }

    /// Non-comment, non-blank lines split on "|" and trimmed.
    static func table(_ name: String) throws -> [[String]] {
        try text(name).split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { return nil }
            return trimmed.split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    /// "line|message" expectations keyed by line number.
    static func expectedErrors(_ name: String) throws -> [String] {
        try text(name).split(separator: "\n").compactMap { line in
            if line.hasPrefix("#") || line.isEmpty { return nil }
            let parts = line.split(separator: "|", maxSplits: 1)
            return "\(parts[0])|\(parts[1])"
        }
    }
}

func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(parsing: text) else {
        XCTFail("bad address \(text)")
        return IPAddress(bytes: [0, 0, 0, 0])!
    }
    return address
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }

    var successValue: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}
