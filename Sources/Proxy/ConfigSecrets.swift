import Config
import Auth

/// Turns `enc:` values into plaintext, in memory only, with the key in `secret_key_file`.
/// Errors name the entry but never the value.
enum ConfigSecrets {
    static func decrypted(_ config: PortcullisConfig) throws(SecretKeyError) -> PortcullisConfig {
        let encrypted = config.databases.values.contains { $0.password?.isEncrypted == true || $0.authPassword?.isEncrypted == true }
            || config.general.authQuery.password?.isEncrypted == true
            || config.identities.values.contains { $0.serverPassword?.isEncrypted == true }
            || config.general.servicePassword?.isEncrypted == true
        guard encrypted else { return config }
        guard let path = config.general.secretKeyFile, !path.isEmpty else {
            throw SecretKeyError("the configuration holds enc: values but no secret_key_file is set")
        }
        let key = try SecretKey.load(path: path)
        var result = config
        for (name, var target) in config.databases {
            if let secret = target.password, secret.isEncrypted {
                do { target.password = Secret(try key.decrypt(secret.reveal())) } catch {
                    throw SecretKeyError("password of database \"\(name)\": \(error.description)")
                }
                result.databases[name] = target
            }
            if let secret = target.authPassword, secret.isEncrypted {
                do { target.authPassword = Secret(try key.decrypt(secret.reveal())) } catch {
                    throw SecretKeyError("auth_password of database \"\(name)\": \(error.description)")
                }
                result.databases[name] = target
            }
        }
        if let secret = config.general.authQuery.password, secret.isEncrypted {
            do { result.general.authQuery.password = Secret(try key.decrypt(secret.reveal())) } catch {
                throw SecretKeyError("auth_password: \(error.description)")
            }
        }
        for (name, var identity) in config.identities {
            if let secret = identity.serverPassword, secret.isEncrypted {
                do { identity.serverPassword = Secret(try key.decrypt(secret.reveal())) } catch {
                    throw SecretKeyError("server_password of identity \"\(name)\": \(error.description)")
                }
                result.identities[name] = identity
            }
        }
        if let secret = config.general.servicePassword, secret.isEncrypted {
            do { result.general.servicePassword = Secret(try key.decrypt(secret.reveal())) } catch {
                throw SecretKeyError("service_password: \(error.description)")
            }
        }
        return result
    }
}
