import AliyunDrive
public import FUSE
import Glibc
import HTTPTransport

/// A filesystem error with its errno: the one mapping from domain errors to errno for
/// this layer (`DriveFSError(error)`).
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

    /// Maps any error from the layers below.
    public init(_ error: any Error) {
        switch error {
        case let error as DriveFSError:
            self = error
        case let error as DriveError:
            switch error.kind {
            case .cancelled: self.init(errno: EINTR, error.description)
            case .authentication: self.init(errno: EACCES, error.description)
            case .service where error.isNotFound: self.init(errno: ENOENT, error.description)
            case .service where error.code == "InvalidResource.FileTypeFolder": self.init(errno: EISDIR, error.description)
            case .service where error.code.hasPrefix("ForbiddenNoPermission"): self.init(errno: EACCES, error.description)
            case .service where error.code.hasPrefix("AlreadyExist"): self.init(errno: EEXIST, error.description)
            case .service where error.code.hasPrefix("QuotaExhausted"): self.init(errno: ENOSPC, error.description)
            case .service where error.code.hasPrefix("FileSizeExceed") || error.message.contains("file size is exceed"):
                self.init(errno: EFBIG, error.description)
            case .service where error.code == "InvalidParameter.ToParentFileId": self.init(errno: EINVAL, error.description)
            // A share cancelled or expired since it was mounted: its entries are gone.
            case .service where error.code == "ShareLink.Cancelled" || error.code == "ShareLink.Expired": self.init(errno: ENOENT, error.description)
            case .service where error.code == "ShareLink.Forbidden" || error.code.hasSuffix(".SharePwd") || error.code == "ShareLinkTokenInvalid":
                self.init(errno: EACCES, error.description)
            default: self.init(errno: EIO, error.description)
            }
        case let error as HTTPTransportError:
            self.init(errno: error.isCancelled ? EINTR : EIO, error.description)
        case is CancellationError:
            self.init(errno: EINTR, "interrupted")
        default:
            self.init(errno: EIO, "\(error)")
        }
    }
}
