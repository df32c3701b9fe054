/// A secret read from standard input by `portcullis secret encrypt` and `scram-verifier`.
/// From a pipe or file the WHOLE input is the secret (minus one final line break, which
/// `echo` and editors add): reading only the first line would silently cut a secret that holds
/// a line break. From a terminal it is one line, typed without echo.
public enum SecretInput {
    /// The secret in `bytes` (all of standard input): nil when empty or not UTF-8.
    public static func fromWholeInput(_ bytes: [UInt8]) -> String? {
        var body = bytes[...]
        if body.last == UInt8(ascii: "\n") {
            body = body.dropLast()
            if body.last == UInt8(ascii: "\r") { body = body.dropLast() }
        }
        guard !body.isEmpty, let text = String(validating: body, as: UTF8.self) else { return nil }
        return text
    }
}
