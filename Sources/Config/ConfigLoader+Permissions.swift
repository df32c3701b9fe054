import Glibc

/// A configuration file that others may read must not hold plaintext secrets: they would be
/// readable by every local user. Refused, as libpq ignores a ~/.pgpass with group or world
/// access and PostgreSQL refuses a server key others can read (be-secure-common.c). Only the
/// "others" bit counts: root:portcullis 0640 is the usual way to share a configuration with
/// the service's group. `enc:` values (and the client verifiers, which are hashes) are fine.
extension ConfigLoader {
    /// The names (never the values) of the plaintext secrets in `config`.
    public static func plaintextSecrets(in config: PortcullisConfig) -> [String] {
        var names: [String] = []
        for (name, target) in config.databases.sorted(by: { $0.key < $1.key }) where target.password.map({ !$0.isEncrypted }) == true {
            names.append("password of database \"\(name)\"")
        }
        for (name, identity) in config.identities.sorted(by: { $0.key < $1.key }) where identity.serverPassword.map({ !$0.isEncrypted }) == true {
            names.append("server_password of identity \"\(name)\"")
        }
        if config.general.servicePassword.map({ !$0.isEncrypted }) == true { names.append("service_password") }
        if config.backup?.password.map({ !$0.isEncrypted }) == true { names.append("[backup] password") }
        if config.backup?.s3.secretKey.map({ !$0.isEncrypted }) == true { names.append("[backup] s3_secret_key") }
        return names
    }

    /// The pure rule: an error when `mode` lets others read and there are plaintext secrets.
    public static func exposureError(path: String, mode: mode_t, secrets: [String]) -> ConfigError? {
        guard mode & 0o004 != 0, !secrets.isEmpty else { return nil }
        let shown = secrets.prefix(3).joined(separator: ", ") + (secrets.count > 3 ? ", ..." : "")
        let octal = String(mode & 0o777, radix: 8)
        return ConfigError(file: path, line: 0, message:
            "configuration file is readable by others (mode 0\(octal)) and holds plaintext secrets (\(shown)); "
            + "remove read access for others (chmod o-r) or encrypt them (portcullis secret encrypt)")
    }

    /// Refuses `path` when others may read it and `config` (as loaded from it) holds plaintext
    /// secrets.
    public static func checkSecretsNotExposed(path: String, config: PortcullisConfig) throws(ConfigErrors) {
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        if let error = exposureError(path: path, mode: st.st_mode, secrets: plaintextSecrets(in: config)) {
            throw ConfigErrors(errors: [error])
        }
    }
}
