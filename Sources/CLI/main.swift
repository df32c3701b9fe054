import ArgumentParser
import Logging
import Config
import Proxy
import Auth
import Admin
import BackupCommands
import Glibc
import EventLoop

/// `portcullis` — a TLS-terminating PostgreSQL proxy. (Started by the last line: main.swift
/// is top-level code once the target has more than one file.)
struct Portcullis: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "portcullis",
        abstract: "A TLS-terminating PostgreSQL wire-protocol proxy with read-only identities and audit.",
        version: version,
        subcommands: [Run.self, CheckConfig.self, Reload.self, ScramVerifier.self, Keygen.self, SecretCommand.self, CheckRole.self,
                      CreateReadonlyRole.self, BackupCommand.self]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: [.short, .long], help: "Path of the configuration file (see conf/portcullis.ini).")
    var config: String = "/etc/portcullis/portcullis.ini"
}

func makeLogger(level: LogLevelSetting) -> Logger {
    LoggingSystem.bootstrap { label in
        // Every message and metadata value is escaped (control characters, ANSI escapes):
        // client- and server-supplied text cannot forge or garble log lines.
        // Lines go to standard error through the log writer thread, never written on the
        // thread that logs (an event loop must not block on a slow stderr).
        var handler = EscapingLogHandler(StreamLogHandler(label: label, stream: QueuedStandardError()))
        handler.logLevel = {
            switch level {
            case .debug: .debug
            case .info: .info
            case .notice: .notice
            case .warning: .warning
            case .error: .error
            }
        }()
        return handler
    }
    // Whatever way the process ends (return from main, exit()), queued lines are written.
    atexit { LogWriter.shared.flush() }
    return Logger(label: "portcullis")
}

extension Portcullis {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the proxy in the foreground (logs to stderr).")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let level: LogLevelSetting
            do {
                level = try ConfigLoader.load(path: options.config).general.logLevel
            } catch {
                printError(error.description)
                throw ExitCode(2)
            }
            let logger = makeLogger(level: level)
            do {
                try ProxyServer(configPath: options.config, logger: logger).run()
            } catch {
                logger.critical("\(error)")
                throw ExitCode(1)
            }
        }
    }

    struct CheckConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-config",
            abstract: "Validate a configuration file; print file:line errors and exit non-zero on any.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let logger = Logger(label: "portcullis-check", factory: { _ in SwiftLogNoOpLogHandler() })
            let runtime: RuntimeConfig
            do {
                runtime = try ProxyServer.loadRuntime(path: options.config, logger: logger, mockSeed: [])
            } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
            // Warnings (file:line: warning: ...) do not change the exit status.
            for warning in runtime.accessFiles.warnings { printError(warning) }
            // The process would start without these (PostgreSQL starts without a broken
            // pg_ident.conf), but they are errors all the same.
            let refused = runtime.accessFiles.refusedFiles
            for file in refused { for line in file.errors { printError(line) } }
            if !refused.isEmpty { throw ExitCode(1) }
            print("\(options.config): configuration is valid")
        }
    }

    struct ScramVerifier: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "scram-verifier",
            abstract: "Read a password from standard input and print its SCRAM-SHA-256 verifier for [identities] password=.")
        @Option(help: "PBKDF2 iteration count (PostgreSQL's scram_iterations default is 4096).")
        var iterations: Int = 4096

        func run() throws {
            guard iterations >= 4096 else {
                printError("iterations must be at least 4096")
                throw ExitCode(2)
            }
            guard let password = readSecretFromStandardInput(prompt: "Password: ") else {
                printError("no password on standard input")
                throw ExitCode(2)
            }
            print(SCRAMVerifier.make(password: password, iterations: iterations).text)
        }
    }
}

extension Portcullis {
    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new 32-byte secret key (mode 0600) for secret_key_file. Refuses to overwrite.")
        @Option(name: [.short, .long], help: "Where to write the key.")
        var output: String = "/etc/portcullis/secret.key"

        func run() throws {
            let fd: Int32
            do throws(Errno) {
                fd = try syscallValue { open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
            } catch {
                printError("could not create \"\(output)\": \(error)")
                throw ExitCode(1)
            }
            defer { closeDescriptor(fd) }
            do throws(Errno) {
                try Descriptor.writeAll(fd, SecretKey.generateBytes())
                _ = try syscallValue { fsync(fd) }
            } catch {
                printError("could not write \"\(output)\": \(error)")
                throw ExitCode(1)
            }
            print("wrote \(output) (keep it outside the configuration; back it up: without it enc: values are lost)")
        }
    }

    struct SecretCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "secret", abstract: "Encrypt secrets for the configuration.", subcommands: [Encrypt.self])

        struct Encrypt: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Read a secret from standard input and print its enc: value (AES-256-GCM) for server_password= or password=.")
            @Option(name: [.short, .long], help: "The secret key file (portcullis keygen).")
            var key: String = "/etc/portcullis/secret.key"

            func run() throws {
                let secretKey: SecretKey
                do { secretKey = try SecretKey.load(path: key) } catch {
                    printError(error.description)
                    throw ExitCode(1)
                }
                guard let secret = readSecretFromStandardInput(prompt: "Secret: ") else {
                    printError("no secret on standard input")
                    throw ExitCode(2)
                }
                print(secretKey.encrypt(secret))
            }
        }
    }
}

extension Portcullis {
    struct CheckRole: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-role",
            abstract: "Connect as the upstream role of every read-only identity and report any privilege beyond reading; exit 1 if any.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let config: PortcullisConfig
            do { config = try ProxyServer.loadConfiguration(path: options.config) } catch {
                printError("\(error)")
                throw ExitCode(2)
            }
            var failed = false
            let readOnly = config.identities.values.filter { $0.mode == .readOnly }.sorted { $0.name < $1.name }
            if readOnly.isEmpty { print("no read-only identities configured") }
            for identity in readOnly {
                for target in config.databases.values.sorted(by: { $0.name < $1.name }) where target.name != "*" {
                    let check = RoleCheck.plan(identity: identity, target: target, config: config)
                    let user = check.role
                    do {
                        let findings = try check.findings()
                        if findings.isEmpty {
                            print("ok: identity \"\(identity.name)\" → role \"\(user)\" on database \"\(target.name)\" can only read\(check.via)")
                        } else {
                            failed = true
                            print("FAIL: identity \"\(identity.name)\" → role \"\(user)\" on database \"\(target.name)\"\(check.via):")
                            for finding in findings { print("  \(finding)") }
                        }
                    } catch {
                        failed = true
                        print("ERROR: identity \"\(identity.name)\" on database \"\(target.name)\": \(error)")
                    }
                }
            }
            if failed {
                print("see `portcullis create-readonly-role` for SQL that creates a role with read access only")
                throw ExitCode(1)
            }
        }
    }

    struct CreateReadonlyRole: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-readonly-role",
            abstract: "Print SQL that creates a least-privilege role for read-only identities (run it per database).")
        @Argument(help: "Name of the role to create.") var name: String
        @Option(help: "Database the role reads.") var database: String = "postgres"
        @Option(name: .customLong("schema"), help: "Schema to grant read access on (repeatable).") var schemas: [String] = ["public"]
        @Option(name: .customLong("owner"), help: "Role whose future tables the role may read (ALTER DEFAULT PRIVILEGES FOR ROLE; repeatable).")
        var owners: [String] = []

        func run() throws {
            print(ReadOnlyRoleSQL.make(role: name, database: database, schemas: schemas, owners: owners), terminator: "")
        }
    }
}

/// The terminal settings to restore if the user interrupts while echo is off.
nonisolated(unsafe) var terminalBeforeSecret = termios()

/// A secret from standard input: from a terminal, one line typed with echo off (termios, as
/// psql's simple_prompt does); otherwise the whole input (SecretInput).
func readSecretFromStandardInput(prompt: String) -> String? {
    guard isatty(0) == 1 else {
        guard let bytes = (try? Descriptor.readAll(0, limit: 1 << 20)) ?? nil else { return nil }
        return SecretInput.fromWholeInput(bytes)
    }
    var saved = termios()
    let echoOff = tcgetattr(0, &saved) == 0
    if echoOff {
        terminalBeforeSecret = saved
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        signal(SIGINT) { _ in
            tcsetattr(0, TCSAFLUSH, &terminalBeforeSecret)
            _exit(130)
        }
        tcsetattr(0, TCSAFLUSH, &quiet)
    }
    // The prompt only once echo is off: TCSAFLUSH discards typed-ahead input, so a line typed
    // in answer to an earlier prompt would be lost (and the caller left waiting).
    _ = prompt.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    let line = readLine(strippingNewline: true)
    if echoOff {
        tcsetattr(0, TCSAFLUSH, &saved)
        signal(SIGINT, SIG_DFL)
        printError("")
    }
    guard let line, !line.isEmpty else { return nil }
    return line
}

func printError(_ message: String) {
    var text = message
    if !text.hasSuffix("\n") { text += "\n" }
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

Portcullis.main()
