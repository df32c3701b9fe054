/// The fields of ErrorResponse and NoticeResponse (PostgreSQL docs 55.8 Error and Notice Message Fields).
public struct ErrorFields: Equatable, Sendable {
    public struct Field: Equatable, Sendable {
        public var code: UInt8
        public var value: String
        public init(code: UInt8, value: String) {
            self.code = code
            self.value = value
        }
    }

    public var fields: [Field]

    public init(fields: [Field]) { self.fields = fields }

    public subscript(code: Character) -> String? {
        let byte = code.asciiValue!
        return fields.first { $0.code == byte }?.value
    }

    public var severity: String? { self["S"] }
    public var severityNonLocalized: String? { self["V"] }
    public var sqlState: String? { self["C"] }
    public var message: String? { self["M"] }
    public var detail: String? { self["D"] }
    public var hint: String? { self["H"] }

    /// Fields in the order PostgreSQL's backend writes them: S, V, C, M, D, H.
    public static func error(sqlState: String, message: String, detail: String? = nil, hint: String? = nil, severity: String = "ERROR") -> ErrorFields {
        var fields: [Field] = [
            Field(code: UInt8(ascii: "S"), value: severity),
            Field(code: UInt8(ascii: "V"), value: severity),
            Field(code: UInt8(ascii: "C"), value: sqlState),
            Field(code: UInt8(ascii: "M"), value: message),
        ]
        if let detail { fields.append(Field(code: UInt8(ascii: "D"), value: detail)) }
        if let hint { fields.append(Field(code: UInt8(ascii: "H"), value: hint)) }
        return ErrorFields(fields: fields)
    }

    func encodePayload(into buffer: inout ByteBuffer) {
        for field in fields {
            buffer.writeInteger(field.code)
            buffer.writeCString(field.value)
        }
        buffer.writeInteger(UInt8(0))
    }

    static func decode(_ reader: inout PayloadReader) throws(WireError) -> ErrorFields {
        var fields: [Field] = []
        while true {
            let code = try reader.byte()
            if code == 0 { break }
            fields.append(Field(code: code, value: try reader.string()))
        }
        try reader.finish()
        return ErrorFields(fields: fields)
    }
}
