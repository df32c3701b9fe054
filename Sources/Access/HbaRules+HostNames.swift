extension HbaRules {
    /// Whether check_hba() could reach a host-name line for a TCP connection from `client`,
    /// whatever its database, user and SSL state turn out to be. False when a line that
    /// matches every such connection from this address (type `host`/`hostnogssenc`, database
    /// and user `all`, an address column decided without DNS) comes first: PostgreSQL then
    /// never resolves the client's name (hba.c check_hba resolves only on reaching a
    /// host-name line), and neither do we. (Replication connections, which `all` does not
    /// match, are refused before pg_hba.conf is consulted.)
    public func mayConsultHostNames(client: IPAddress, localInterfaces: [LocalInterface]) -> Bool {
        let environment = HbaEnvironment(localInterfaces: localInterfaces)
        var unused = HostnameState.unresolved
        for rule in rules {
            guard let address = rule.address else { continue }
            if case .hostname = address {
                if rule.connectionType != .hostGSSEnc { return true }
                continue
            }
            guard rule.connectionType == .host || rule.connectionType == .hostNoGSSEnc else { continue }
            let allDatabases = rule.databases.count == 1 && rule.databases[0].token.isKeyword("all")
            let allUsers = rule.users.count == 1 && rule.users[0].token.isKeyword("all")
            if allDatabases && allUsers && addressMatches(address, client, environment, &unused) { return false }
        }
        return false
    }
}
