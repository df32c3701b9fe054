/// The error text of one line, before it gets its file and line number.
struct LineError: Error, Equatable, ExpressibleByStringInterpolation {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    init(stringLiteral value: String) {
        message = value
    }

    init(stringInterpolation: DefaultStringInterpolation) {
        message = String(stringInterpolation: stringInterpolation)
    }
}
