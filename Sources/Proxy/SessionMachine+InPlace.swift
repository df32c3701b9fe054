import Session

extension SessionMachine {
    /// ``isHoldingClientMessages``, asked through a mutating (in-place) access: a plain read of
    /// `session?.isHoldingClientMessages` from the class property copies the whole machine
    /// (three memcpys and a retain of every field, then the releases) on every client read and
    /// drained report (docs/PERFORMANCE.md).
    mutating func holdsClientMessagesInPlace() -> Bool { isHoldingClientMessages }
}
