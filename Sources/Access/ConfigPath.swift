/// Path arithmetic of src/port/path.c and AbsoluteConfigLocation (src/backend/utils/misc/conffiles.c).
enum ConfigPath {
    /// `location` if absolute, else `location` relative to the directory of `callingFile`.
    static func absolute(_ location: String, relativeTo callingFile: String) -> String {
        if location.hasPrefix("/") { return canonical(location) }
        return canonical(join(parentDirectory(of: callingFile), location))
    }

    static func parentDirectory(of path: String) -> String {
        let trimmed = canonical(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    static func join(_ head: String, _ tail: String) -> String {
        if head.isEmpty { return tail }
        return head.hasSuffix("/") ? head + tail : head + "/" + tail
    }

    /// canonicalize_path: no doubled or trailing slashes, no "." components, ".." folded.
    static func canonical(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." {
                parts.removeLast()
                continue
            }
            if part == "..", absolute, parts.isEmpty { continue }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if absolute { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }
}
