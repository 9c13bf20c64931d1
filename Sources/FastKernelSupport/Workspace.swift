/// Scratch memory that kernels reuse from call to call (packed weights, im2col columns, per-core
/// partial sums, tiles of fused loops): each slot grows to the largest size asked of it and is then
/// kept, so an executable's steady state allocates nothing. One workspace per executable; not
/// thread-safe: a kernel takes its slots on the calling thread, before it spreads over the cores.
public final class Workspace: @unchecked Sendable {
    public enum Slot: Int, CaseIterable {
        case packedWeights, bias, partials, rows0, rows1, grads0, grads1, flippedKernel, columns, loopScratch, loopStaging, sums, prologue, reductionInput
    }

    private var buffers: [UnsafeMutableRawPointer?] = Array(repeating: nil, count: Slot.allCases.count)
    private var capacities = [Int](repeating: 0, count: Slot.allCases.count)
    /// How many times a slot had to grow (constant once every kernel has run once).
    public private(set) var allocations = 0

    public init() {}

    deinit { for b in buffers { b?.deallocate() } }

    /// At least `count` elements of `T` in `slot`; the contents are whatever the last user left.
    public func buffer<T>(_ slot: Slot, _ count: Int, of _: T.Type = T.self) -> UnsafeMutablePointer<T> {
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        let i = slot.rawValue
        if capacities[i] < bytes {
            buffers[i]?.deallocate()
            buffers[i] = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            capacities[i] = bytes
            allocations += 1
        }
        return buffers[i]!.bindMemory(to: T.self, capacity: max(count, 1))
    }
}
