import ArgumentParser
import Proxy
import Glibc

extension Portcullis {
    /// `portcullis reload`: what `pg_ctl reload` is for PostgreSQL, but it also waits for the
    /// answer. Exit status: 0 the new configuration is in force; 1 it has errors (printed as
    /// file:line; nothing was applied — the running process keeps its configuration); 2 it is
    /// in force except pg_hba.conf or pg_ident.conf, which had errors (printed, naming the
    /// file) and kept their previous rules, as PostgreSQL reloads them; 3 no running process;
    /// 4 no answer within --timeout (or not confirmed by every loop).
    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the configuration, make the running process (pid_file) reload it, and wait until it is in force.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Seconds to wait for the running process to answer.")
        var timeout: Double = 60

        func run() throws {
            let path = options.config
            let pidFile: String
            do {
                guard let configured = try ProxyServer.loadConfiguration(path: path).general.pidFile else {
                    printError("\(path): pid_file is not set: cannot find the running process")
                    throw ExitCode(3)
                }
                pidFile = configured
            } catch let exit as ExitCode {
                throw exit
            } catch {
                printError("\(error)")
                printError("configuration not reloaded")
                throw ExitCode(1)
            }
            // The ini was validated above (errors stop there, before any signal). pg_hba.conf,
            // pg_ident.conf and the TLS files are judged by the process itself, which may keep
            // one access file and take the rest (PostgreSQL reloads them independently); its
            // answer carries their file:line errors.
            let pid = try runningProcess(pidFile: pidFile)
            let statusPath = ReloadStatus.path(pidFile: pidFile)
            let sentAt = ReloadStatus.now()
            guard kill(pid, SIGHUP) == 0 else {
                printError("could not signal process \(pid): \(String(cString: strerror(errno)))")
                throw ExitCode(3)
            }
            let deadline = sentAt + UInt64(max(0, timeout) * 1e9)
            while ReloadStatus.now() < deadline {
                if let text = AtomicFile.read(statusPath), let status = ReloadStatus(text: text),
                   status.pid == pid, status.startedAt >= sentAt {
                    switch status.outcome {
                    case .applied, .started:
                        print("\(path): configuration reloaded (process \(pid), reload \(status.generation))")
                        return
                    case .partial:
                        for line in status.errors { printError(line) }
                        printError("configuration reloaded (process \(pid), reload \(status.generation)) except the files above, which keep their previous rules")
                        throw ExitCode(2)
                    case .refused:
                        for line in status.errors { printError(line) }
                        printError("configuration not reloaded: the running process (pid \(pid)) keeps its configuration")
                        throw ExitCode(1)
                    case .unconfirmed:
                        printError("process \(pid) accepted the configuration but not every event loop confirmed it (see its log)")
                        throw ExitCode(4)
                    }
                }
                guard kill(pid, 0) == 0 || errno == EPERM else {
                    printError("process \(pid) exited before answering")
                    throw ExitCode(3)
                }
                usleep(20_000)
            }
            printError("process \(pid) did not report the reload within \(timeout) s (see its log; \(statusPath))")
            throw ExitCode(4)
        }

        private func runningProcess(pidFile: String) throws -> Int32 {
            guard let text = AtomicFile.read(pidFile) else {
                printError("no running portcullis process: could not read pid_file \"\(pidFile)\": \(String(cString: strerror(errno)))")
                throw ExitCode(3)
            }
            guard let pid = Int32(String(text.filter { !$0.isWhitespace })), pid > 0 else {
                printError("pid_file \"\(pidFile)\" does not contain a process id")
                throw ExitCode(3)
            }
            guard kill(pid, 0) == 0 || errno == EPERM else {
                printError("no running portcullis process: pid \(pid) from \"\(pidFile)\" is not running (stale pid_file)")
                throw ExitCode(3)
            }
            // The status file is the process's own: a recycled pid belongs to someone else.
            guard let status = AtomicFile.read(ReloadStatus.path(pidFile: pidFile)).flatMap(ReloadStatus.init(text:)), status.pid == pid else {
                printError("no running portcullis process: pid \(pid) from \"\(pidFile)\" has no \(ReloadStatus.path(pidFile: pidFile)) of its own (stale pid_file?)")
                throw ExitCode(3)
            }
            return pid
        }
    }
}
