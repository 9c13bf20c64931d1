import Dispatch
import FastKernelSupport
import XCTest

/// The kernels' parallel loop: every iteration exactly once, nested loops and loops started from
/// several threads at once run (serially) instead of waiting on each other, and loops after the
/// helpers have gone to sleep still complete.
final class ParallelTests: XCTestCase {
    func testEveryIterationRunsOnce() {
        for n in [0, 1, 2, 3, 17, 1000] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
            counts.initialize(repeating: 0, count: max(n, 1))
            defer { counts.deallocate() }
            nonisolated(unsafe) let c = counts
            Parallel.forEach(n) { i in c[i] += 1 }
            XCTAssertEqual((0..<n).filter { counts[$0] != 1 }, [], "n = \(n)")
        }
    }

    /// `serially`: a loop inside it runs every iteration on the calling thread (a kernel planned
    /// on one thread), and the pool is free again afterwards.
    func testLoopsInsideSeriallyRunOnTheCaller() {
        let n = 256
        let threads = UnsafeMutablePointer<pthread_t?>.allocate(capacity: n)
        threads.initialize(repeating: nil, count: n)
        defer { threads.deallocate() }
        nonisolated(unsafe) let t = threads
        let me = pthread_self()
        Parallel.serially {
            Parallel.forEach(n) { i in
                t[i] = pthread_self()
                for _ in 0..<2000 { _ = i &* 3 }  // long enough that a helper would join if it could
            }
        }
        XCTAssertTrue((0..<n).allSatisfy { pthread_equal(threads[$0]!, me) != 0 }, "an iteration ran on a helper inside serially")
        // Afterwards the helpers take part again (on a 2-core machine at least one iteration
        // of a long loop lands on the helper).
        threads.update(repeating: nil, count: n)
        Parallel.forEach(n) { i in
            t[i] = pthread_self()
            usleep(500)  // 128 ms in all: time for the helper to wake and join
        }
        XCTAssertTrue((0..<n).allSatisfy { threads[$0] != nil })
        if ProcessInfo.processInfo.activeProcessorCount > 1 && Parallel.threads ?? 2 > 1 {
            XCTAssertTrue((0..<n).contains { pthread_equal(threads[$0]!, me) == 0 }, "no helper took part after serially")
        }
    }

    func testJobsRunOnceOnTheirWorkersSlots() {
        for (jobs, slots) in [(0, 2), (1, 2), (5, 2), (100, 2), (7, 1)] {
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(jobs, 1))
            seen.initialize(repeating: -1, count: max(jobs, 1))
            defer { seen.deallocate() }
            nonisolated(unsafe) let s = seen
            Parallel.forEachJob(jobs, slots: slots) { slot, job in s[job] = s[job] == -1 ? slot : -2 }
            XCTAssertTrue((0..<jobs).allSatisfy { seen[$0] >= 0 && seen[$0] < slots }, "\(jobs) jobs, \(slots) slots")
        }
    }

    func testNestedAndConcurrentLoopsComplete() {
        let total = UnsafeMutablePointer<Int>.allocate(capacity: 4 * 8 * 8)
        total.initialize(repeating: 0, count: 4 * 8 * 8)
        defer { total.deallocate() }
        nonisolated(unsafe) let t = total
        // Four threads, each running a loop whose iterations run loops of their own.
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for _ in 0..<50 {
                Parallel.forEach(8) { i in
                    Parallel.forEach(8) { j in t[(thread * 8 + i) * 8 + j] += 1 }
                }
            }
        }
        XCTAssertEqual((0..<(4 * 8 * 8)).filter { total[$0] != 50 }, [])
    }

    func testLoopsAfterTheHelpersSleep() {
        var sums: [Int] = []
        for _ in 0..<3 {
            usleep(5_000)  // longer than the helpers spin
            let partial = UnsafeMutablePointer<Int>.allocate(capacity: 2)
            partial.initialize(repeating: 0, count: 2)
            nonisolated(unsafe) let p = partial
            Parallel.forEach(2) { part in p[part] = (part + 1) * 10 }
            sums.append(partial[0] + partial[1])
            partial.deallocate()
        }
        XCTAssertEqual(sums, [30, 30, 30])
    }
}
