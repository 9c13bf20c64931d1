import Foundation
import GraphIR

/// How a process talks to the other ranks of a data-parallel run (MPI in the `stegastamp`
/// command; a test can plug in its own). Process-global, as MPI_COMM_WORLD is.
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// In place, over every rank; returns only when all have contributed. Throws when a peer is
    /// gone or too slow (the runtime then stops the run: never a hang).
    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: AllReduceOp) throws
    /// Root's buffer to every rank, in place.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    /// The next collective may legitimately wait longer (rank 0 compiles its evaluation graphs,
    /// evaluates or writes a checkpoint while the others wait): a watchdog allows `seconds` more.
    func allowDelay(seconds: Double)
    /// Returns when every rank has called it (`Collectives.measureWaiting`).
    func barrier() throws
}

extension Communicator {
    public func allowDelay(seconds: Double) {}
    public func barrier() throws {}
}

public enum Collectives {
    /// The communicator `all_reduce` kernels use; nil means a single process (the identity).
    nonisolated(unsafe) public static var communicator: Communicator?

    /// Bytes all-reduced so far by this process (for the benchmark's report).
    nonisolated(unsafe) public static var bytesReduced = 0
    /// Seconds spent inside allReduce calls so far (with `measureWaiting`, the barrier included).
    nonisolated(unsafe) public static var secondsReducing = 0.0
    /// A diagnostic: a barrier before every all_reduce splits the time in collectives into
    /// waiting for the slowest rank (`secondsWaiting`: what overlapping communication with the
    /// backward pass cannot remove) and the transfer after it (what it could hide). Off by default:
    /// the barrier costs a round trip per bucket.
    nonisolated(unsafe) public static var measureWaiting = false
    nonisolated(unsafe) public static var secondsWaiting = 0.0

    /// Runs the collective on `buffer` (a no-op without a communicator or with one rank).
    public static func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: AllReduceOp) {
        guard let c = communicator, c.size > 1, count > 0 else { return }
        let t0 = monotonicSeconds()
        do {
            if measureWaiting {
                try c.barrier()
                secondsWaiting += monotonicSeconds() - t0
            }
            try c.allReduce(buffer, count: count, op: op)
        } catch {
            // A kernel cannot throw through the executor; a failed collective ends the process
            // with the reason (the other ranks' watchdogs or MPI end theirs).
            fatalCollective("\(error)")
        }
        bytesReduced += count * 4
        secondsReducing += monotonicSeconds() - t0
    }

    /// Exits with status 70 after printing the reason on standard error.
    public static func fatalCollective(_ message: String) -> Never {
        let text = "stegastamp: error: all_reduce failed: \(message)\n"
        text.withCString { p in _ = write(2, p, strlen(p)) }
        exit(70)
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
