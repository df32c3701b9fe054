import CPgQuery

/// `lo_open(loid, mode)` at SQL level (docs 35.4 Server-Side Functions). Opening for reading
/// is a read; opening with INV_WRITE lets `lowrite`/`lo_truncate` follow (be-fsstubs.c refuses
/// INV_WRITE in a read-only transaction). The mode must be an integer constant in the call
/// itself — an expression or parameter could carry INV_WRITE — without the INV_WRITE bit
/// (libpq-fs.h: INV_WRITE 0x00020000, INV_READ 0x00040000).
extension TreeScan {
    static let inventoryWrite = 0x0002_0000

    mutating func checkLargeObjectOpen(_ call: UnsafePointer<PgQuery__FuncCall>) {
        // The mode is a literal normalization erases.
        decision.dependsOnLiterals = true
        guard call.pointee.n_args == 2, let mode = call.pointee.args[1],
              mode.pointee.node_case == PG_QUERY__NODE__NODE_A_CONST,
              case .integer(let value) = NodeValue.constant(mode) else {
            decision.refuse(.policy("lo_open() with a mode that is not an integer constant"))
            return
        }
        if value & Self.inventoryWrite != 0 || value < 0 {
            decision.refuse(.readOnly("lo_open(INV_WRITE)"))
        }
    }
}
