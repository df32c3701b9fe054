import Config
import Admin
import Logging

/// The client-access rules of one configuration generation: built at start-up and at each
/// reload, immutable afterwards, shared by every loop.
public struct AccessFiles: Sendable {
    public let rules: any ClientAccessRules
    /// Role membership read from the upstream catalog for `+group`/`samerole`; nil when the
    /// rules need none.
    public let membership: RoleMembership?

    public init(rules: any ClientAccessRules, membership: RoleMembership?) {
        self.rules = rules
        self.membership = membership
    }

    /// Without `hba_file`: the per-transport methods of [portcullis].
    static func load(_ config: PortcullisConfig, logger: Logger, previous: AccessFiles?) throws -> AccessFiles {
        guard config.general.hbaFile != nil else {
            return AccessFiles(rules: MethodPerTransportRules(localMethod: config.general.localAuthMethod,
                                                              hostMethod: config.general.hostAuthMethod),
                               membership: nil)
        }
        throw ProxyStartupError(description: "hba_file is not supported yet")
    }
}
