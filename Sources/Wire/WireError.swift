/// A protocol error found while decoding, with the SQLSTATE and text PostgreSQL uses for it
/// (src/backend/tcop/postgres.c, src/backend/postmaster/postmaster.c ProcessStartupPacket).
public enum WireError: Error, Equatable, Sendable {
    case startupPacketTooLarge(Int)
    case startupPacketTooSmall(Int)
    /// A CancelRequest of another length than PostgreSQL 15's 16 bytes.
    case invalidCancelRequestLength(Int)
    case invalidStartupPacket(String)
    case unsupportedProtocol(major: UInt16, minor: UInt16)
    case messageTooLarge(type: UInt8, length: Int)
    case invalidLength(type: UInt8, length: Int)
    case malformedMessage(type: UInt8, reason: String)
    case unknownMessageType(UInt8)

    public var sqlState: String {
        switch self {
        case .startupPacketTooLarge, .startupPacketTooSmall, .invalidCancelRequestLength, .invalidStartupPacket, .invalidLength,
             .malformedMessage, .unknownMessageType:
            SQLState.protocolViolation
        case .unsupportedProtocol:
            SQLState.featureNotSupported
        case .messageTooLarge:
            SQLState.programLimitExceeded
        }
    }

    public var message: String {
        switch self {
        case .startupPacketTooLarge, .startupPacketTooSmall:
            "invalid length of startup packet"
        case .invalidCancelRequestLength:
            "invalid length of cancel request packet"
        case .invalidStartupPacket(let reason):
            reason
        case .unsupportedProtocol(let major, let minor):
            "unsupported frontend protocol \(major).\(minor): server supports 3.0 to 3.0"
        case .messageTooLarge(let type, let length):
            "message of type \(Self.describe(type)) with length \(length) exceeds max_message_size"
        case .invalidLength(let type, let length):
            "invalid message length \(length) for message type \(Self.describe(type))"
        case .malformedMessage(let type, let reason):
            "invalid message format for message type \(Self.describe(type)): \(reason)"
        case .unknownMessageType(let type):
            "invalid frontend message type \(type)"
        }
    }

    static func describe(_ type: UInt8) -> String {
        (0x20..<0x7f).contains(type) ? "\"\(Character(UnicodeScalar(type)))\"" : "\(type)"
    }
}

/// SQLSTATE codes the proxy sends (PostgreSQL docs Appendix A).
public enum SQLState {
    public static let protocolViolation = "08P01"
    public static let connectionException = "08000"
    public static let connectionFailure = "08006"
    public static let sqlclientUnableToEstablishSqlconnection = "08001"
    public static let invalidAuthorizationSpecification = "28000"
    public static let invalidPassword = "28P01"
    public static let tooManyConnections = "53300"
    public static let configurationLimitExceeded = "53400"
    public static let adminShutdown = "57P01"
    public static let idleSessionTimeout = "57P05"
    public static let cannotConnectNow = "57P03"
    public static let queryCanceled = "57014"
    public static let featureNotSupported = "0A000"
    public static let programLimitExceeded = "54000"
    public static let outOfMemory = "53200"
    public static let readOnlySQLTransaction = "25006"
    public static let inFailedSQLTransaction = "25P02"
    public static let invalidParameterValue = "22023"
    public static let invalidTextRepresentation = "22P02"
    public static let characterNotInRepertoire = "22021"
    public static let syntaxError = "42601"
    public static let insufficientPrivilege = "42501"
    public static let internalError = "XX000"
    public static let undefinedDatabase = "3D000"
}
