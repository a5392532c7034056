import AliyunDrive
public import FUSE
import Glibc

/// A filesystem error with its errno: the one mapping from domain errors to errno for
/// this layer (`DriveFSError(error)`), applied to every operation by `errno(for:operation:)`.
public struct DriveFSError: ErrnoConvertible, CustomStringConvertible, Sendable {
    public let errno: Int32
    public let description: String

    public init(errno: Int32, _ description: String) {
        self.errno = errno
        self.description = description
    }

    public static let notFound = DriveFSError(errno: ENOENT, "no such file or directory")
    public static let notDirectory = DriveFSError(errno: ENOTDIR, "not a directory")
    public static let isDirectory = DriveFSError(errno: EISDIR, "is a directory")
    public static let readOnly = DriveFSError(errno: EROFS, "read-only file system")
    public static let noAttribute = DriveFSError(errno: ENODATA, "no such attribute")
    public static let badHandle = DriveFSError(errno: EBADF, "bad file handle")
    public static let exists = DriveFSError(errno: EEXIST, "file exists")
    public static let notEmpty = DriveFSError(errno: ENOTEMPTY, "directory not empty")
    public static let nameTooLong = DriveFSError(errno: ENAMETOOLONG, "file name too long")
    public static let invalid = DriveFSError(errno: EINVAL, "invalid argument")
    public static let noSpace = DriveFSError(errno: ENOSPC, "no space left on the drive")

    /// Maps any error from the layers below: the client's classification of an answer
    /// (`DriveError.condition`) decides, never its wire code.
    public init(_ error: any Error) {
        switch error {
        case let error as DriveFSError:
            self = error
        case let error as any ErrnoConvertible:
            self.init(errno: error.errno, "\(error)")
        case let error as DriveError:
            self.init(errno: Self.errno(for: error), error.description)
        case is CancellationError:
            self.init(errno: EINTR, "interrupted")
        default:
            self.init(errno: EIO, "\(error)")
        }
    }

    static func errno(for error: DriveError) -> Int32 {
        switch error.kind {
        case .cancelled: return EINTR
        case .authentication: return EACCES
        case .service: break
        case .unreachable, .protocolViolation, .stateDirectory, .invalidState: return EIO
        }
        switch error.condition {
        case .notFound, .shareGone: return ENOENT
        case .exists: return EEXIST
        case .noSpace: return ENOSPC
        case .fileTooLarge: return EFBIG
        case .permissionDenied, .shareDenied: return EACCES
        case .isFolder: return EISDIR
        case .invalidTarget: return EINVAL
        case .busy, nil: return EIO
        }
    }
}
