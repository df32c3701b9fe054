import EventLoop
#if canImport(Glibc)
import Glibc
#endif

/// Why a configuration file or directory could not be read: an errno value, so messages can
/// say what PostgreSQL's `%m` says and `include_if_exists` can tell ENOENT from the rest.
public struct FileAccessError: Error, Sendable, Equatable {
    public var errno: Int32
    /// False when the file could be opened but reading it failed.
    public var duringOpen: Bool

    public init(errno: Int32, duringOpen: Bool = true) {
        self.errno = errno
        self.duringOpen = duringOpen
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

/// The real file system (open/read through the syscall helper, opendir): the one reader of configuration
/// files (portcullis.ini, pg_hba.conf, pg_ident.conf and what they include).
public struct FileSystemConfigFiles: ConfigFileSource, Sendable {
    public init() {}

    public func readFile(atPath path: String) -> Result<String, FileAccessError> {
        readBytes(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The file's bytes, for callers that validate the encoding themselves.
    public func readBytes(atPath path: String) -> Result<[UInt8], FileAccessError> {
        let descriptor: Int32
        do {
            descriptor = try Descriptor.openForReading(path)
        } catch {
            return .failure(FileAccessError(errno: error.rawValue))
        }
        defer { closeDescriptor(descriptor) }
        var status = stat()
        if fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR {
            return .failure(FileAccessError(errno: EISDIR, duringOpen: false))
        }
        do {
            return .success(try Descriptor.readAll(descriptor, limit: Int.max) ?? [])
        } catch {
            return .failure(FileAccessError(errno: error.rawValue, duringOpen: false))
        }
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
