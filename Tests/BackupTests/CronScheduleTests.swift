import Config
import Glibc
import XCTest
@testable import Backup

final class CronScheduleTests: XCTestCase {
    /// Unix seconds of a UTC time.
    private func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0) -> Int64 {
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        return Int64(timegm(&parts))
    }

    private func cron(_ text: String) throws -> CronSchedule { try CronSchedule(parsing: text) }

    func testFieldsRangesStepsListsAndNames() throws {
        let schedule = try cron("*/15 1-5/2,22 * jan,jul mon-fri")
        XCTAssertEqual(schedule.minutes, [0, 15, 30, 45])
        XCTAssertEqual(schedule.hours, [1, 3, 5, 22])
        XCTAssertEqual(schedule.months, [1, 7])
        XCTAssertEqual(schedule.daysOfWeek, [1, 2, 3, 4, 5])
        XCTAssertEqual(try cron("0 0 * * 7").daysOfWeek, [0], "7 is Sunday too")
        XCTAssertEqual(try cron("5/20 * * * *").minutes, [5, 25, 45], "a/n runs to the end of the range")
        XCTAssertEqual(try cron("0 0 * * *").description, "0 0 * * *")
    }

    func testErrorsSayWhatIsWrong() {
        for (text, expected) in [
            ("* * * *", "five fields"),
            ("60 * * * *", "minute: \"60\" is not in 0–59"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("a * * * *", "minute"),
            ("1,,2 * * * *", "minute"),
        ] {
            XCTAssertThrowsError(try cron(text), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text): \(error)")
            }
        }
    }

    func testNextFireTimesInUTC() throws {
        let start = utc(2026, 12, 5, 7, 14)  // a Saturday
        XCTAssertEqual(try cron("* * * * *").next(after: start), utc(2026, 12, 5, 7, 15), "strictly after, next whole minute")
        XCTAssertEqual(try cron("* * * * *").next(after: start + 59), utc(2026, 12, 5, 7, 15))
        XCTAssertEqual(try cron("30 2 * * *").next(after: start), utc(2026, 12, 6, 2, 30))
        XCTAssertEqual(try cron("0 */6 * * *").next(after: start), utc(2026, 12, 5, 12, 0))
        XCTAssertEqual(try cron("0 3 * * mon").next(after: start), utc(2026, 12, 7, 3, 0))
        XCTAssertEqual(try cron("0 0 1 1 *").next(after: start), utc(2027, 1, 1, 0, 0), "across a year")
        XCTAssertEqual(try cron("0 12 29 2 *").next(after: start), utc(2028, 2, 29, 12, 0), "the next leap day")
        XCTAssertNil(try cron("0 0 30 2 *").next(after: start), "never")
        // Both day fields restricted: either matches (the 1st, or any Monday).
        XCTAssertEqual(try cron("0 0 1 * mon").next(after: start), utc(2026, 12, 7, 0, 0))
        XCTAssertEqual(try cron("0 0 1 * mon").next(after: utc(2026, 12, 28, 1)), utc(2027, 1, 1, 0, 0))
        // Only one restricted: it alone decides.
        XCTAssertEqual(try cron("0 0 * * sun").next(after: start), utc(2026, 12, 6, 0, 0))
    }

    func testScheduleKeysInTheBackupSection() throws {
        let base = BackupTestConfig.ini(database: "App", backupDirectory: "/b") + "\n"
        let config = try ConfigLoader.parse(base + "schedule.App = 15 3 * * *\nprogress_interval = 10s", fileName: "t.ini")
        XCTAssertEqual(config.backup?.schedules["App"], try cron("15 3 * * *"), "the database name keeps its case")
        XCTAssertEqual(config.backup?.progressInterval, .seconds(10))
        for (line, expected) in [
            ("schedule.app = 15 3 * * *", "\"app\" is not an entry of [databases]"),
            ("schedule.App = 15 3 * *", "five fields"),
            ("schedule. = * * * * *", "database name is missing"),
            ("progress_interval = 0", "at least 1s"),
        ] {
            XCTAssertThrowsError(try ConfigLoader.parse(base + line, fileName: "t.ini"), line) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(line): \(error)")
            }
        }
    }

    func testProgressLineWithAnEstimate() {
        let report = ProgressReport(bytes: 50 << 20, elapsedNanoseconds: 5_000_000_000, totalBytes: 100 << 20, totalIsEstimate: true)
        XCTAssertEqual(report.line, "50.0 MiB of ~100.0 MiB, 10.0 MiB/s, ETA 0m5s")
        let beyond = ProgressReport(bytes: 150 << 20, elapsedNanoseconds: 5_000_000_000, totalBytes: 100 << 20, totalIsEstimate: true)
        XCTAssertEqual(beyond.line, "150.0 MiB, 30.0 MiB/s", "past the estimate: no total, no ETA")
    }
}
