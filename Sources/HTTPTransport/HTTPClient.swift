/// The transport seam: everything above this layer talks HTTP only through it.
///
/// Implementations are safe for concurrent use; many requests may be in flight at once.
/// Cancelling the calling task cancels the transfer (it is removed from the wire) and the
/// call throws `HTTPTransportError` with `isCancelled == true`.
public protocol HTTPClient: Sendable {
    /// Sends the request and collects the whole response body (at most `maxBodyBytes`).
    func execute(_ request: HTTPRequest, maxBodyBytes: Int) async throws -> HTTPResponse

    /// Sends the request and streams a 2xx response body to `onBody` as it arrives, chunk by
    /// chunk, with the response's status (a ranged request may get 206 or a whole-body 200),
    /// on the transport's thread (copy what you need; do not block). Throwing from `onBody`
    /// aborts the transfer and the call rethrows that error. Non-2xx bodies are collected
    /// into the returned response instead (≤ 64 KiB) and never reach `onBody`.
    func stream(
        _ request: HTTPRequest, onBody: @escaping @Sendable (_ status: Int, _ bytes: UnsafeRawBufferPointer) throws -> Void
    ) async throws -> HTTPResponse
}

extension HTTPClient {
    /// `execute` with a 64 MiB body limit.
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await execute(request, maxBodyBytes: 64 << 20)
    }
}
