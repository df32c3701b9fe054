import Policy

/// Loads a ``CatalogSnapshot`` of one upstream database over a one-shot libpq connection.
///
/// Connect as the upstream role the read-only identity maps to, or as a superuser: the query
/// reads only catalogs every role may read, but a role sees the relations of every schema in
/// pg_class regardless of its privileges, so either gives the full picture.
public enum CatalogSnapshotLoader {
    /// `conninfo`: a libpq connection string (PostgreSQL docs 34.1.1), e.g. from
    /// ``Conninfo/make(target:user:password:)``.
    public static func load(conninfo: String) throws(AdminError) -> CatalogSnapshot {
        let connection = try ServiceConnection(conninfo: conninfo, purpose: "to load the catalog snapshot")
        // The recursive query's estimates would trigger JIT compilation costing far more than
        // the query; search_path empty so nothing the session inherits shadows a catalog.
        try connection.execute("SET jit = off")
        try connection.execute("SET search_path = ''")
        let rows = try connection.rows(CatalogSnapshot.query, columns: 8, what: "catalog snapshot query").map { value in
            CatalogSnapshot.Row(schema: value[0] ?? "", name: value[1] ?? "", relkind: value[2] ?? "",
                                cause: value[3] ?? "", detail: value[4] ?? "",
                                viaSchema: value[5], viaName: value[6], viaRelkind: value[7])
        }
        return CatalogSnapshot(rows: rows)
    }
}
