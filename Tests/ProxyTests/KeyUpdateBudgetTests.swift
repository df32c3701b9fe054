import Testing
@testable import Proxy

/// The KeyUpdate bound is a rate: a burst, then one per MiB received and one per minute open.
@Suite struct KeyUpdateBudgetTests {
    @Test func aBurstIsAllowedAtOnceAndNoMore() {
        #expect(KeyUpdateBudget.allows(256, bytesReceived: 0, age: .zero))
        #expect(!KeyUpdateBudget.allows(257, bytesReceived: 0, age: .zero))
        // A flood's records carry no application data; seconds do not buy a burst.
        #expect(!KeyUpdateBudget.allows(300, bytesReceived: 1000, age: .seconds(59)))
    }

    @Test func dataAndTimeEarnMore() {
        #expect(KeyUpdateBudget.allows(257, bytesReceived: 1 << 20, age: .zero))
        #expect(!KeyUpdateBudget.allows(258, bytesReceived: 1 << 20, age: .zero))
        #expect(KeyUpdateBudget.allows(257, bytesReceived: 0, age: .seconds(60)))
        // A connection a month old that rotated its keys every five minutes, reading little.
        let month = Duration.seconds(30 * 24 * 3600)
        #expect(KeyUpdateBudget.allows(30 * 24 * 12, bytesReceived: 10 << 20, age: month))
        // One that sent 1 TB and rotated at AES-GCM's record limit (~2^24.5 records of 16 KiB, ~380 GB).
        #expect(KeyUpdateBudget.allows(3, bytesReceived: 1 << 40, age: .seconds(3600)))
        #expect(KeyUpdateBudget.allows(256 + (1 << 20), bytesReceived: 1 << 40, age: .zero))
    }
}
