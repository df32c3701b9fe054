import Foundation

/// Fixture files hold statements separated by a line "-- ----".
enum Fixtures {
    static func statements(_ name: String) -> [String] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "sql", subdirectory: "Fixtures"),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            return []
        }
        return text.components(separatedBy: "\n-- ----\n")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }
    }
}
