#if canImport(Glibc)
import Glibc
#endif

/// Why a configuration file or directory could not be read: an errno value, so messages can
/// say what PostgreSQL's `%m` says and `include_if_exists` can tell ENOENT from the rest.
public struct FileAccessError: Error, Sendable, Equatable {
    public var errno: Int32

    public init(errno: Int32) {
        self.errno = errno
    }

    public static let notFound = FileAccessError(errno: ENOENT)

    /// strerror(errno), as PostgreSQL's `%m` prints it.
    public var message: String {
        guard let text = strerror(errno) else { return "errno \(errno)" }
        return String(cString: text)
    }
}

/// One entry of a directory listing.
public struct DirectoryEntry: Sendable, Equatable {
    public var name: String
    public var isDirectory: Bool

    public init(name: String, isDirectory: Bool) {
        self.name = name
        self.isDirectory = isDirectory
    }
}

/// File access injected into the pure parsers: reading a whole file and listing a directory.
/// Paths are passed exactly as PostgreSQL would open them (already made absolute relative to
/// the including file when the reference was relative).
public protocol ConfigFileSource {
    func readFile(atPath path: String) -> Result<String, FileAccessError>
    /// Entries of a directory (order irrelevant; "." and ".." may be included).
    func listDirectory(atPath path: String) -> Result<[DirectoryEntry], FileAccessError>
}

/// In-memory files, for tests and for callers that already hold the text.
public struct InMemoryConfigFiles: ConfigFileSource, Sendable {
    public var files: [String: String]

    public init(_ files: [String: String] = [:]) {
        self.files = files
    }

    public func readFile(atPath path: String) -> Result<String, FileAccessError> {
        if let text = files[path] { return .success(text) }
        if files.keys.contains(where: { $0.hasPrefix(path + "/") }) { return .failure(FileAccessError(errno: EISDIR)) }
        return .failure(.notFound)
    }

    public func listDirectory(atPath path: String) -> Result<[DirectoryEntry], FileAccessError> {
        let prefix = path.hasSuffix("/") ? path : path + "/"
        var entries: [String: Bool] = [:]
        for key in files.keys where key.hasPrefix(prefix) {
            let rest = key.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") {
                entries[String(rest[..<slash])] = true
            } else if entries[String(rest)] == nil {
                entries[String(rest)] = false
            }
        }
        if entries.isEmpty {
            return files[path] != nil ? .failure(FileAccessError(errno: ENOTDIR)) : .failure(.notFound)
        }
        return .success(entries.map { DirectoryEntry(name: $0.key, isDirectory: $0.value) })
    }
}

/// The real file system through Glibc open/read/opendir, for the proxy.
public struct FileSystemConfigFiles: ConfigFileSource, Sendable {
    public init() {}

    public func readFile(atPath path: String) -> Result<String, FileAccessError> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(FileAccessError(errno: errno)) }
        defer { close(descriptor) }
        var status = stat()
        if fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR {
            return .failure(FileAccessError(errno: EISDIR))
        }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(FileAccessError(errno: errno))
            }
            if count == 0 { break }
            contents.append(contentsOf: chunk[0..<count])
        }
        return .success(String(decoding: contents, as: UTF8.self))
    }

    public func listDirectory(atPath path: String) -> Result<[DirectoryEntry], FileAccessError> {
        guard let directory = opendir(path) else { return .failure(FileAccessError(errno: errno)) }
        defer { closedir(directory) }
        var entries: [DirectoryEntry] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            // Like get_dirent_type(..., look_through_symlinks: true): stat follows links.
            var status = stat()
            let full = path.hasSuffix("/") ? path + name : path + "/" + name
            let isDirectory = stat(full, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
            entries.append(DirectoryEntry(name: name, isDirectory: isDirectory))
        }
        return .success(entries)
    }
}

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
