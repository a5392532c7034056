import Glibc
import Synchronization

/// Recycles chunk memory. Fresh memory costs a page fault per 4 KiB on first touch, and
/// chunks freed on one thread and allocated on another made glibc's per-thread arenas keep
/// hundreds of MiB; a few recycled buffers of the common sizes avoid both.
/// One per filesystem (its `ChunkCache` holds it).
final class StoragePool: Sendable {
    /// Addresses and sizes of idle buffers (raw pointers are not Sendable; addresses are).
    private let idle = Mutex<[(address: UInt, byteCount: Int)]>([])
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func take(byteCount: Int) -> UnsafeMutableRawBufferPointer {
        let reused = idle.withLock { idle -> UInt? in
            guard let index = idle.firstIndex(where: { $0.byteCount == byteCount }) else { return nil }
            return idle.remove(at: index).address
        }
        if let reused, let pointer = UnsafeMutableRawPointer(bitPattern: reused) {
            return UnsafeMutableRawBufferPointer(start: pointer, count: byteCount)
        }
        if byteCount >= Self.hugePage, let mapped = Self.mapHuge(byteCount) {
            self.mapped.withLock { _ = $0.insert(UInt(bitPattern: mapped)) }
            return UnsafeMutableRawBufferPointer(start: mapped, count: byteCount)
        }
        return .allocate(byteCount: byteCount, alignment: 64)
    }

    static let hugePage = 2 << 20
    /// Addresses of buffers mapped by `mapHuge` (the rest came from the allocator).
    private let mapped = Mutex<Set<UInt>>([])

    /// Anonymous memory aligned to 2 MiB and marked for transparent huge pages: the
    /// kernel's FUSE reply copy pins the pages of every reply, and a huge page is pinned
    /// at once instead of 512 times (as are the TLB entries of the copies in and out).
    private static func mapHuge(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        let length = roundedUp(byteCount)
        guard let raw = mmap(nil, length + hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            return nil
        }
        let start = UInt(bitPattern: raw)
        let aligned = (start + UInt(hugePage) - 1) & ~UInt(hugePage - 1)
        let end = start + UInt(length + hugePage)
        if aligned > start { munmap(raw, Int(aligned - start)) }
        if end > aligned + UInt(length), let tail = UnsafeMutableRawPointer(bitPattern: aligned + UInt(length)) {
            munmap(tail, Int(end - aligned - UInt(length)))
        }
        guard let pointer = UnsafeMutableRawPointer(bitPattern: aligned) else { return nil }
        madvise(pointer, length, MADV_HUGEPAGE)
        return pointer
    }

    private static func roundedUp(_ byteCount: Int) -> Int { (byteCount + hugePage - 1) / hugePage * hugePage }

    private func release(_ storage: UnsafeMutableRawBufferPointer) {
        guard let base = storage.baseAddress else { return }
        if mapped.withLock({ $0.remove(UInt(bitPattern: base)) }) != nil {
            munmap(base, Self.roundedUp(storage.count))
        } else {
            storage.deallocate()
        }
    }

    func give(_ storage: UnsafeMutableRawBufferPointer) {
        guard let base = storage.baseAddress else { return }
        let kept = idle.withLock { idle in
            guard idle.count < limit else { return false }
            idle.append((UInt(bitPattern: base), storage.count))
            return true
        }
        if !kept { release(storage) }
    }
}
