import AliyunDrive
import FUSE
import Glibc

/// Carrying out a writer's lifecycle: uploads on its queue, retries through `WriteBack`,
/// dropping what is done, and the drain at unmount.
extension DriveFileSystem {
    /// Does what the lifecycle asked for. Throws an upload's failure (or EFBIG for content
    /// the drive refused for good). `cause`: why a retry is needed.
    func perform(_ actions: [FileLifecycle.Action], _ writer: FileWriter, cause: String = "upload failed") async throws {
        for action in actions {
            switch action {
            case .upload: try await upload(writer)
            case .uploadLater: try await uploadLater(writer)
            case .refuse: throw refused(writer)
            case .retryLater: scheduleRetry(writer, cause: cause)
            case .forgetUpload:
                journal.remove(id: writer.id)
                uploads.dropped(writer.id)
                writeBack.cancel(writer.id)
            case .drop: writers.drop(writer)
            // Only `uploadStarted` asks to send, and the queue's upload handles it.
            case .send: break
            }
        }
    }

    /// Write-back: the content and its journal entry are made durable now (a crash loses
    /// nothing), and the upload waits `write_back` seconds in `WriteBack` — unless already queued.
    private func uploadLater(_ writer: FileWriter) async throws {
        try await uploader.stage(writer)
        queue(writer, cause: "written back", attempts: 0, after: configuration.writeBackDelay)
    }

    private func refused(_ writer: FileWriter) -> DriveFSError {
        DriveFSError(errno: EFBIG, "\(path(of: writer)) exceeds the drive's per-file size limit")
    }

    /// Uploads the writer's content if the drive does not have it, after any earlier work
    /// on the file. Content that changes while it is being sent (a writer on another
    /// descriptor, a truncate) fails the upload or its final check: it starts over with the
    /// new content a few times before the failure counts.
    func upload(_ writer: FileWriter) async throws {
        try await writer.queue.run {
            for attempt in 1... {
                let started = writer.handle(.uploadStarted)
                if started.contains(.refuse) { throw self.refused(writer) }
                guard case .send(let version)? = started.first else { return }
                do {
                    try await self.uploader.send(writer, version: version)
                } catch {
                    let mapped = DriveFSError(error)
                    let after = writer.handle(.uploadFailed(version: version, refused: mapped.errno == EFBIG))
                    if writer.state.version != version, attempt < 4 {
                        self.logger.debug("upload: \(self.path(of: writer)) changed while being sent; starting over")
                        continue
                    }
                    self.logFailure(writer, mapped, refused: writer.state.state == .refused)
                    try await self.perform(after, writer, cause: mapped.description)
                    throw error
                }
                let after = writer.handle(.uploadSucceeded(version: version))
                // Changed meanwhile and no writer left to upload it: once more.
                if after.contains(.upload), attempt < 4 { continue }
                try await self.perform(after.filter { $0 != .upload }, writer)
                if after.contains(.upload) { self.scheduleRetry(writer, cause: "changed while being sent") }
                return
            }
        }
    }

    private func logFailure(_ writer: FileWriter, _ error: DriveFSError, refused: Bool) {
        let path = path(of: writer)
        if refused {
            // Retrying cannot help until the content changes (or the account's limit does: next mount).
            logger.error("upload: \(path) failed: \(error.description); content kept, not retried until it changes")
        } else {
            logger.error("upload: \(path) failed: \(error.description); content kept, will retry")
        }
    }

    func path(of writer: FileWriter) -> String { inodes.record(writer.inode).map { uploader.path($0.item) } ?? "?" }

    /// Hands a failed upload to `WriteBack`: tried again on its schedule until the drive has
    /// the content or it no longer needs it (unlinked, refused, uploaded by a later flush).
    func scheduleRetry(_ writer: FileWriter, cause: String) { queue(writer, cause: cause) }

    /// Puts the writer's upload in `WriteBack`: after the policy's delay for a failure, or `after` seconds.
    private func queue(_ writer: FileWriter, cause: String, attempts: Int = 1, after delay: Double? = nil) {
        writeBack.schedule(writer.id, path: path(of: writer), error: cause, attempts: attempts, after: delay) { [weak self, weak writer] _ in
            guard let self, let writer else { return .done }
            return await self.retry(writer)
        }
    }

    /// One try at a queued upload: done once the drive has the content or it no longer needs it.
    private func retry(_ writer: FileWriter) async -> WriteBack.Outcome {
        guard writers.writer(writer.inode) === writer else { return .done }
        // After whatever runs on the file now (an upload by its last release, say).
        try? await writer.queue.run {}
        do {
            try await perform(writer.handle(.retryDue), writer)
        } catch {
            return writer.state.isRetryable ? .retry(error: DriveFSError(error).description) : .done
        }
        return writer.state.isRetryable ? .retry(error: "still pending") : .done
    }

    /// The paths of files whose content the drive does not have yet, sorted.
    public func pendingUploadPaths() -> [String] {
        writers.all.filter(\.state.isDirty).map { path(of: $0) }.sorted()
    }

    /// Waits up to `timeout` seconds for every pending upload (at unmount) and returns the
    /// paths of those still pending; a cancelled caller gets them at once. Content the
    /// drive refused for good is not waited for.
    public func drain(timeout: Double) async -> [String] {
        // Anything dirty not queued yet (its last release is still uploading, or was
        // interrupted) joins the queue, behind whatever runs on its file now.
        for writer in writers.all where writer.state.isRetryable && !writeBack.isPending(writer.id) {
            scheduleRetry(writer, cause: "pending at unmount")
        }
        await writeBack.drain(until: writeBack.now + timeout)
        return pendingUploadPaths()
    }
}
