import Foundation
import Synchronization
import CThreadAffinity

/// The kernels' parallel loop: the calling thread and one persistent helper per further core share
/// the iterations. The helpers spin for a while after each loop before they sleep, as OpenMP's and
/// Eigen's workers do: a training step runs hundreds of short parallel kernels back to back, and
/// DispatchQueue.concurrentPerform cost about 40 us a call on these machines (two 20 us halves
/// took 60 us; 21 us here), which added up to 10-15 % of a step at 128x128.
public enum Parallel {
    /// Runs `body(i)` for every i in 0..<n, spread over the cores; returns when all are done. A
    /// loop started while another is running (a nested loop, or another thread's) runs serially
    /// on its caller, so loops never wait on each other.
    public static func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { for i in 0..<n { body(i) }; return }
        WorkerPool.shared.forEach(n, body)
    }

    /// Runs `body` with every parallel loop started meanwhile run serially on its caller (it holds
    /// the pool, as a running loop does): a kernel on one thread, for steps too small to gain from
    /// the split. Inside a running loop it changes nothing (nested loops are serial already).
    public static func serially<T>(_ body: () throws -> T) rethrows -> T {
        try WorkerPool.shared.holding(body)
    }

    /// Threads the loops use (the caller included): every core unless set before the first loop
    /// (`--threads`; several data-parallel ranks on one machine share its cores).
    nonisolated(unsafe) public static var threads: Int? = nil
}

final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(helpers: max(0, (Parallel.threads ?? ProcessInfo.processInfo.activeProcessorCount) - 1))

    private let helpers: Int
    /// One loop at a time; others run serially.
    private let busy = Mutex<Bool>(false)
    /// The current loop: generation << 32 | closed bit | helpers that joined it. A helper joins
    /// while the loop is open; the caller closes it when it runs out of iterations and then waits
    /// only for the helpers that joined, never for one the OS has not scheduled yet.
    private let state = Atomic<Int>(0)
    private static let closed = 1 << 31
    private static let joinedMask = (1 << 31) - 1
    /// Helpers done with the current loop.
    private let finished = Atomic<Int>(0)
    /// The next iteration to hand out.
    private let next = Atomic<Int>(0)
    nonisolated(unsafe) private var body: ((Int) -> Void)?
    nonisolated(unsafe) private var count = 0
    private let wake = NSCondition()
    nonisolated(unsafe) private var sleepers = 0
    /// How long a helper spins for the next loop before it sleeps.
    private static let spinNanoseconds: UInt64 = 2_000_000

    #if os(Linux)
    /// The helpers' pthreads, and the CPU they are currently kept off (the caller's, last seen).
    nonisolated(unsafe) private var helperThreads: [pthread_t] = []
    nonisolated(unsafe) private var keptOff = -1
    private let registered = NSCondition()
    #endif

    private init(helpers: Int) {
        self.helpers = helpers
        for _ in 0..<helpers {
            let thread = Thread { [unowned self] in
                #if os(Linux)
                self.registered.lock()
                self.helperThreads.append(pthread_self())
                self.registered.signal()
                self.registered.unlock()
                #endif
                self.helperLoop()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        #if os(Linux)
        registered.lock()
        while helperThreads.count < helpers { registered.wait() }
        registered.unlock()
        #endif
    }

    #if os(Linux)
    /// Keeps the helpers off the CPU the caller runs on. Linux wakes a sleeping thread on the
    /// waker's CPU when it can: after a pause, the helper then queued behind the caller, which was
    /// busy with the loop's work, and whole calls ran at one core's speed (W2 at 128: 9-12 ms
    /// against 5.5 in half the calls after a 100 ms pause). Re-pinned only when the caller moves.
    private func keepHelpersOffCallerCPU() {
        let cpu = Int(stegastamp_current_cpu())
        if cpu < 0 || cpu == keptOff { return }
        var pinned = true
        for thread in helperThreads where stegastamp_keep_thread_off_cpu(thread, Int32(cpu)) != 0 { pinned = false }
        keptOff = pinned ? cpu : -1
    }
    #endif

    func holding<T>(_ body: () throws -> T) rethrows -> T {
        let claimed = busy.withLock { taken in
            if taken { return false }
            taken = true
            return true
        }
        defer { if claimed { busy.withLock { $0 = false } } }
        return try body()
    }

    func forEach(_ n: Int, _ body: (Int) -> Void) {
        let claimed = busy.withLock { taken in
            if taken { return false }
            taken = true
            return true
        }
        guard helpers > 0, claimed else {
            if claimed { busy.withLock { $0 = false } }
            for i in 0..<n { body(i) }
            return
        }
        #if os(Linux)
        keepHelpersOffCallerCPU()
        #endif
        withoutActuallyEscaping(body) { body in
            self.body = body
            count = n
            next.store(0, ordering: .relaxed)
            finished.store(0, ordering: .relaxed)
            let generation = (state.load(ordering: .relaxed) >> 32) + 1
            wake.lock()
            state.store(generation << 32, ordering: .releasing)
            if sleepers > 0 { wake.broadcast() }
            wake.unlock()
            work(body, n)
            let joined = state.bitwiseOr(Self.closed, ordering: .acquiringAndReleasing).oldValue & Self.joinedMask
            // A helper woken from sleep may have been put on this thread's CPU: yield now and then
            // so that it can run instead of waiting out this thread's time slice.
            var spins = 0
            while finished.load(ordering: .acquiring) < joined {
                spins += 1
                if spins & 255 == 0 { sched_yield() }
            }
            self.body = nil
        }
        busy.withLock { $0 = false }
    }

    private func work(_ body: (Int) -> Void, _ n: Int) {
        while true {
            let i = next.add(1, ordering: .relaxed).oldValue
            if i >= n { return }
            body(i)
        }
    }

    /// Not inlined: its reference to the loop's body is released when it returns, before the
    /// helper reports the loop finished (the caller's `withoutActuallyEscaping` checks that no
    /// reference outlives the loop).
    @inline(never)
    private func runCurrentLoop() {
        guard let body else { return }
        work(body, count)
    }

    private func helperLoop() {
        var seen = 0
        while true {
            var spins = 0
            var started = DispatchTime.now().uptimeNanoseconds
            while state.load(ordering: .acquiring) >> 32 == seen {
                spins += 1
                if spins & 1023 != 0 { continue }
                sched_yield()  // if the scheduler put us on a busy CPU, let its other thread run
                let now = DispatchTime.now().uptimeNanoseconds
                if now - started < Self.spinNanoseconds { continue }
                wake.lock()
                sleepers += 1
                while state.load(ordering: .acquiring) >> 32 == seen { wake.wait() }
                sleepers -= 1
                wake.unlock()
                started = DispatchTime.now().uptimeNanoseconds
            }
            // Join the loop if it is still open (otherwise the caller has finished it alone).
            while true {
                let s = state.load(ordering: .acquiring)
                seen = s >> 32
                if s & Self.closed != 0 { break }
                if state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing).exchanged {
                    runCurrentLoop()
                    finished.add(1, ordering: .releasing)
                    break
                }
            }
        }
    }
}

extension Parallel {
    /// Jobs 0..<jobs handed out one at a time to at most `slots` workers; `slot` (0..<slots) is the
    /// worker's own index for per-worker scratch and partial sums. A worker that starts late or
    /// runs slow (a vCPU the host is sharing) takes fewer jobs, where fixed halves made the loop
    /// wait for the slower one.
    public static func forEachJob(_ jobs: Int, slots: Int, _ body: (_ slot: Int, _ job: Int) -> Void) {
        let next = Atomic<Int>(0)
        forEach(min(slots, jobs)) { slot in
            while true {
                let job = next.add(1, ordering: .relaxed).oldValue
                if job >= jobs { return }
                body(slot, job)
            }
        }
    }
}
