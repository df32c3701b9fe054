import Session

extension SessionMachine {
    /// Reads the machine through a mutating (in-place) access. A plain read such as
    /// `session?.isAtRest` from the class property copies the whole machine (three memcpys, a
    /// retain of every field, then the releases): its getters live in another module and the
    /// compiler cannot prove they leave the property alone. On the per-transaction path
    /// (release, rest checks, message holding) that was ~2 % of the proxy's instructions
    /// (docs/PERFORMANCE.md). Use it as `session?.inPlace { $0.isAtRest }`.
    @inline(__always)
    mutating func inPlace<Result>(_ read: (inout SessionMachine) -> Result) -> Result { read(&self) }
}
