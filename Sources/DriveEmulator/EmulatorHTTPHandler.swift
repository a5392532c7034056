import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 connection: reads requests, streams part uploads to disk, and answers
/// downloads with sendfile (NIO file regions), so the emulator is never the bottleneck.
final class EmulatorHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase {
        case idle
        case buffering(APIRequest, HTTPRequestHead)
        case uploading(APIRequest, HTTPRequestHead, PartWriter, dropAfter: Int64?)
        case discarding(HTTPRequestHead, EmulatorResponse)
        case dropped
    }

    private static let maxBufferedBody = 64 << 20
    private let emulator: DriveEmulator
    private let isInternal: Bool
    private var phase = Phase.idle
    /// Upload pacing: when this connection's part started, the bytes received since, and
    /// whether reading is paused until the link would have carried them.
    private var uploadStarted = 0.0
    private var uploadReceived: Int64 = 0
    private var paused = false

    init(emulator: DriveEmulator, isInternal: Bool) {
        self.emulator = emulator
        self.isInternal = isInternal
    }

    func channelActive(context: ChannelHandlerContext) {
        emulator.connectionOpened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .uploading(let request, _, let writer, _) = phase {
            _ = emulator.finishPart(writer, success: false, request: request)
        }
        phase = .idle
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if emulator.isOffline {
            // A server that went away: the connection just drops.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            let request = Self.request(from: head, isInternal: isInternal)
            if head.method == .PUT && request.path.hasPrefix("/oss/u/") {
                let (result, misbehaviour) = emulator.beginPart(request)
                switch result {
                case .success(let writer):
                    (uploadStarted, uploadReceived) = (LinkShaper.now(), 0)
                    var dropAfter: Int64?
                    if case .dropAfter(let bytes)? = misbehaviour { dropAfter = bytes }
                    if case .stallAfter(let bytes)? = misbehaviour { dropAfter = bytes }
                    phase = .uploading(request, head, writer, dropAfter: dropAfter)
                case .failure(let response):
                    phase = .discarding(head, response)
                }
            } else {
                phase = .buffering(request, head)
            }
        case .body(var buffer):
            switch phase {
            case .buffering(var request, let head):
                if request.body.count + buffer.readableBytes > Self.maxBufferedBody {
                    phase = .discarding(head, APIError(413, "PayloadTooLarge", "Payload Too Large").response)
                    return
                }
                request.body += buffer.readBytes(length: buffer.readableBytes) ?? []
                phase = .buffering(request, head)
            case .uploading(let request, let head, let writer, let dropAfter):
                let count = buffer.readableBytes
                buffer.withUnsafeReadableBytes { writer.write($0) }
                pace(received: count, context: context)
                if let dropAfter, writer.written >= dropAfter {
                    _ = emulator.finishPart(writer, success: false, request: request)
                    phase = .dropped
                    context.close(promise: nil)
                    return
                }
                phase = .uploading(request, head, writer, dropAfter: dropAfter)
            default:
                break
            }
        case .end:
            let current = phase
            phase = .idle
            switch current {
            case .buffering(let request, let head):
                let arrived = NIODeadline.now()
                let response = emulator.handle(request)
                let latency = emulator.link.model.apiLatency
                if latency > 0, !request.path.hasPrefix("/__emulator/"), !request.path.hasPrefix("/oss/") {
                    // A distant service: the answer comes a round trip after the request
                    // arrived (the emulator's own work on it is not the link's, and a
                    // listing page costs it more than the real service).
                    let loop = context.eventLoop
                    let bound = NIOLoopBound((self, context), eventLoop: loop)
                    loop.scheduleTask(deadline: arrived + .nanoseconds(Int64(latency * 1e9))) {
                        let (handler, context) = bound.value
                        guard context.channel.isActive else { return }
                        handler.respond(response, to: head, context: context)
                    }
                } else {
                    respond(response, to: head, context: context)
                }
            case .uploading(let request, let head, let writer, _):
                respond(emulator.finishPart(writer, success: true, request: request), to: head, context: context)
            case .discarding(let head, let response):
                respond(response, to: head, context: context)
            case .idle, .dropped:
                break
            }
        }
    }

    /// An upload on a slow link: once the bytes received are ahead of what the connection's
    /// rate (and the link's total cap) would have carried, stop reading until then — TCP's
    /// own flow control then holds the sender back, as a real slow uplink does.
    private func pace(received count: Int, context: ChannelHandlerContext) {
        let link = emulator.link
        let rate = link.model.uploadRate
        guard rate > 0 || link.model.totalUploadRate > 0 else { return }
        uploadReceived += Int64(count)
        let ready = rate > 0 ? uploadStarted + Double(uploadReceived) / rate : LinkShaper.now()
        let start = link.reserve(count, upload: true, ready: ready)
        let delay = start - LinkShaper.now()
        guard delay > 0.001, !paused else { return }
        paused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        loop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) {
            let (handler, context) = bound.value
            handler.paused = false
            guard context.channel.isActive else { return }
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
    }

    static func request(from head: HTTPRequestHead, isInternal: Bool) -> APIRequest {
        var uri = head.uri
        // Absolute-form request targets (as sent to a proxy) are accepted too.
        if let schemeEnd = uri.range(of: "://"), let pathStart = uri[schemeEnd.upperBound...].firstIndex(of: "/") {
            uri = String(uri[pathStart...])
        }
        let pieces = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(pieces.first ?? "/")
        var query: [String: String] = [:]
        if pieces.count > 1 {
            for pair in pieces[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                    String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
                }
                query[kv[0]] = kv.count > 1 ? kv[1] : ""
            }
        }
        var headers: [String: String] = [:]
        for (name, value) in head.headers { headers[name.lowercased()] = value }
        return APIRequest(
            method: head.method.rawValue, path: path.removingPercentEncoding ?? path, query: query, headers: headers, body: [],
            internalListener: isInternal)
    }

    private func respond(_ response: EmulatorResponse, to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = head.isKeepAlive && response.misbehaviour == nil
        var headers = HTTPHeaders(response.headers)
        headers.replaceOrAdd(name: "Server", value: "AliyunOSS")
        headers.replaceOrAdd(name: "Date", value: Self.httpDate())
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let status = HTTPResponseStatus(statusCode: response.status)
        let channel = context.channel
        if response.misbehaviour == .dropResponse {
            channel.close(promise: nil)
            return
        }

        switch response.body {
        case .bytes(let bytes):
            if !headers.contains(name: "Content-Length") { headers.replaceOrAdd(name: "Content-Length", value: String(bytes.count)) }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            if !bytes.isEmpty && head.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }

        case .file(let path, let offset, let length):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                respond(.ossError(500, code: "InternalError", message: "blob missing"), to: head, context: context)
                return
            }
            let file = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
            headers.replaceOrAdd(name: "Content-Length", value: String(length))
            let link = emulator.link.model
            if response.misbehaviour == nil, link.dataLatency > 0 || link.downloadRate > 0 || link.totalDownloadRate > 0 {
                let head = HTTPResponseHead(version: head.version, status: status, headers: headers)
                let loop = context.eventLoop
                let bound = NIOLoopBound((self, context), eventLoop: loop)
                loop.scheduleTask(in: .nanoseconds(Int64(link.dataLatency * 1e9))) {
                    let (handler, context) = bound.value
                    guard context.channel.isActive else {
                        try? file.close()
                        handler.emulator.unsent(length, of: response)
                        return
                    }
                    context.write(handler.wrapOutboundOut(.head(head)), promise: nil)
                    handler.sendPaced(
                        file, range: offset..<(offset + length), keepAlive: keepAlive, context: context, started: LinkShaper.now(), sent: 0,
                        response: response)
                }
                return
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            var sendLength = length
            switch response.misbehaviour {
            case .dropAfter(let limit)?, .stallAfter(let limit)?: sendLength = min(length, max(0, limit))
            case .dropResponse?, nil: break
            }
            let sent: EventLoopFuture<Void>
            if sendLength > 0 {
                let region = FileRegion(fileHandle: file, readerIndex: Int(offset), endIndex: Int(offset + sendLength))
                sent = context.writeAndFlush(wrapOutboundOut(.body(.fileRegion(region))))
            } else {
                sent = context.eventLoop.makeSucceededFuture(())
            }
            sent.whenComplete { _ in try? file.close() }
            switch response.misbehaviour {
            case .dropAfter?:
                sent.whenComplete { _ in channel.close(promise: nil) }
            case .stallAfter?:
                // Go silent; give up on the connection long after any sane client timeout.
                let eventLoop = context.eventLoop
                sent.whenComplete { _ in _ = eventLoop.scheduleTask(in: .seconds(120)) { channel.close(promise: nil) } }
            case .dropResponse?, nil:
                let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
                if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
            }
        }
    }

    /// Sends `range` of `file` in slices, each when the connection's rate and the link's
    /// total cap allow it (timers on the event loop; no thread sleeps), then ends the response.
    /// A client that goes away stops the sending; what was not sent is not counted.
    private func sendPaced(
        _ file: NIOFileHandle, range: Range<Int64>, keepAlive: Bool, context: ChannelHandlerContext, started: Double, sent: Int64,
        response: EmulatorResponse
    ) {
        let channel = context.channel
        guard channel.isActive else {
            try? file.close()
            emulator.unsent(range.upperBound - range.lowerBound, of: response)
            return
        }
        guard !range.isEmpty else {
            try? file.close()
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
            return
        }
        let link = emulator.link
        let rate = link.model.downloadRate
        let slice = min(Int64(256 << 10), range.upperBound - range.lowerBound)
        let ready = rate > 0 ? started + Double(sent) / rate : LinkShaper.now()
        let start = link.reserve(Int(slice), upload: false, ready: ready)
        let delay = max(0, start - LinkShaper.now())
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        loop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) {
            let (handler, context) = bound.value
            guard context.channel.isActive else {
                try? file.close()
                handler.emulator.unsent(range.upperBound - range.lowerBound, of: response)
                return
            }
            let region = FileRegion(fileHandle: file, readerIndex: Int(range.lowerBound), endIndex: Int(range.lowerBound + slice))
            context.writeAndFlush(handler.wrapOutboundOut(.body(.fileRegion(region)))).whenComplete { result in
                let (handler, context) = bound.value
                guard case .success = result else {
                    try? file.close()
                    handler.emulator.unsent(range.upperBound - range.lowerBound, of: response)
                    return
                }
                handler.sendPaced(
                    file, range: (range.lowerBound + slice)..<range.upperBound, keepAlive: keepAlive, context: context, started: started,
                    sent: sent + slice, response: response)
            }
        }
    }

    private static func httpDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
