import Glibc

/// A standard five-field cron expression — minute, hour, day of month, month, day of week —
/// evaluated in UTC, as crontab(5) describes it: `*`, numbers, ranges `a-b`, steps `*/n` and
/// `a-b/n`, lists `a,b-c`; month names `jan`–`dec` and day names `sun`–`sat`; day of week 0–7
/// with both 0 and 7 Sunday. As in cron, when both day of month and day of week are
/// restricted (neither starts with `*`), a day matches when *either* does. Pure.
public struct CronSchedule: Equatable, Sendable, CustomStringConvertible {
    public let minutes: Set<Int>
    public let hours: Set<Int>
    public let daysOfMonth: Set<Int>
    public let months: Set<Int>
    /// 0 = Sunday … 6 = Saturday (7 is folded into 0).
    public let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool
    public let description: String

    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// For callers outside the configuration loader.
    public init(parsing text: String) throws(ParseError) {
        do { try self.init(text) } catch { throw ParseError(description: error.message) }
    }

    init(_ text: String) throws(SettingError) {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw SettingError("a cron schedule has five fields (minute hour day-of-month month day-of-week), \"\(text)\" has \(fields.count)")
        }
        minutes = try Self.field(fields[0], "minute", 0...59, names: [])
        hours = try Self.field(fields[1], "hour", 0...23, names: [])
        daysOfMonth = try Self.field(fields[2], "day of month", 1...31, names: [])
        months = try Self.field(fields[3], "month", 1...12, names: Self.monthNames, nameBase: 1)
        daysOfWeek = Set(try Self.field(fields[4], "day of week", 0...7, names: Self.dayNames).map { $0 % 7 })
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
        description = fields.joined(separator: " ")
    }

    private static func field(_ text: String, _ what: String, _ range: ClosedRange<Int>, names: [String],
                              nameBase: Int = 0) throws(SettingError) -> Set<Int> {
        var result = Set<Int>()
        for item in text.lowercased().split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw SettingError("\(what): \"\(item)\" has more than one \"/\"") }
            var step = 1
            if parts.count == 2 {
                guard let value = Int(parts[1]), value >= 1 else { throw SettingError("\(what): step \"\(parts[1])\" is not a positive number") }
                step = value
            }
            let lower: Int, upper: Int
            if parts[0] == "*" {
                (lower, upper) = (range.lowerBound, range.upperBound)
            } else {
                let bounds = parts[0].split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2 else { throw SettingError("\(what): \"\(parts[0])\" is not a number or range") }
                lower = try value(bounds[0], what, range, names: names, nameBase: nameBase)
                // "a/n" means a, a+n, … up to the end (as Vixie cron and cronie read it).
                upper = bounds.count == 2 ? try value(bounds[1], what, range, names: names, nameBase: nameBase)
                    : (parts.count == 2 ? range.upperBound : lower)
                guard lower <= upper else { throw SettingError("\(what): range \"\(parts[0])\" is backwards") }
            }
            result.formUnion(stride(from: lower, through: upper, by: step))
        }
        return result
    }

    private static func value(_ text: Substring, _ what: String, _ range: ClosedRange<Int>, names: [String],
                              nameBase: Int) throws(SettingError) -> Int {
        if let index = names.firstIndex(of: String(text)) { return index + nameBase }
        guard let number = Int(text), range.contains(number) else {
            throw SettingError("\(what): \"\(text)\" is not in \(range.lowerBound)–\(range.upperBound)")
        }
        return number
    }

    /// Whether the schedule fires on this UTC calendar day.
    func matchesDay(month: Int, day: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        let byMonthDay = daysOfMonth.contains(day), byWeekday = daysOfWeek.contains(weekday)
        if dayOfMonthRestricted && dayOfWeekRestricted { return byMonthDay || byWeekday }
        return byMonthDay && byWeekday
    }

    /// The first minute strictly after `after` (Unix seconds) at which the schedule fires, as
    /// Unix seconds (a whole minute, UTC); nil when it never fires within eight years (e.g.
    /// `0 0 30 2 *`). Skips whole days that cannot match, so it is cheap.
    public func next(after: Int64) -> Int64? {
        var candidate = (after / 60 + 1) * 60
        let limit = after + 8 * 366 * 86_400
        while candidate <= limit {
            var t = time_t(candidate)
            var parts = tm()
            gmtime_r(&t, &parts)
            let dayStart = candidate - Int64(parts.tm_hour) * 3600 - Int64(parts.tm_min) * 60
            if !matchesDay(month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday), weekday: Int(parts.tm_wday)) {
                candidate = dayStart + 86_400
                continue
            }
            if !hours.contains(Int(parts.tm_hour)) {
                candidate = dayStart + Int64(parts.tm_hour + 1) * 3600
                continue
            }
            if minutes.contains(Int(parts.tm_min)) { return candidate }
            candidate += 60
        }
        return nil
    }
}
