import CMPI
import Foundation
import GraphIR
import GraphKernels

/// The ranks of `mpirun -np N stegastamp train ...` through Open MPI. A watchdog thread ends the
/// whole job (MPI_Abort) when a collective waits longer than `timeout` seconds: a rank that hangs
/// or died without mpirun noticing must not leave the others blocked forever. (A rank that exits
/// or is killed is noticed by mpirun itself, which then stops the others.)
final class MPICommunicator: Communicator, @unchecked Sendable {
    let rank: Int
    let size: Int
    let timeout: Double
    private let lock = NSLock()
    private var waitingSince: Date?
    private var waitingFor = ""
    /// Extra seconds the next collective may wait (`allowDelay`).
    private var grace = 0.0
    private var currentGrace = 0.0

    /// Whether this process was started by mpirun with more than one rank (Open MPI's variables).
    static var launchedRanks: Int? {
        guard let s = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"], let n = Int(s), n > 1 else { return nil }
        return n
    }

    init(timeout: Double) throws {
        var provided: Int32 = 0
        guard MPI_Init_thread(nil, nil, stegastamp_mpi_thread_multiple(), &provided) == MPI_SUCCESS else {
            throw CLIError("MPI_Init_thread failed")
        }
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(stegastamp_mpi_world(), &r)
        MPI_Comm_size(stegastamp_mpi_world(), &n)
        (rank, size, self.timeout) = (Int(r), Int(n), timeout)
        let watchdog = Thread { [unowned self] in self.watch() }
        watchdog.name = "stegastamp-mpi-watchdog"
        watchdog.start()
    }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: 0.5)
            lock.lock()
            let since = waitingSince, what = waitingFor, limit = timeout + currentGrace
            lock.unlock()
            if let since, Date().timeIntervalSince(since) > limit {
                let text = String(format: "stegastamp: error: rank %d of %d waited %.0f s in %@ for the other ranks: one of them died or hangs; "
                                  + "stopping the run (the last checkpoint is intact: continue with --resume)\n", rank, size, limit, what)
                FileHandle.standardError.write(text.data(using: .utf8)!)
                MPI_Abort(stegastamp_mpi_world(), 70)
                exit(70)
            }
        }
    }

    private func waiting(_ what: String?) {
        lock.lock()
        (waitingSince, waitingFor) = what.map { (Date(), $0) } ?? (nil, "")
        if what != nil { (currentGrace, grace) = (grace, 0) }
        lock.unlock()
    }

    func allowDelay(seconds: Double) {
        lock.lock()
        grace = max(grace, seconds)
        lock.unlock()
    }

    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int, op: AllReduceOp) throws {
        waiting("all_reduce of \(count) floats")
        defer { waiting(nil) }
        guard MPI_Allreduce(stegastamp_mpi_in_place(), buffer, Int32(count), stegastamp_mpi_float(), stegastamp_mpi_sum(), stegastamp_mpi_world()) == MPI_SUCCESS else {
            throw CLIError("MPI_Allreduce failed on rank \(rank)")
        }
        if op == .mean {
            let scale = 1 / Float(size)
            for i in 0..<count { buffer[i] *= scale }
        }
    }

    func barrier() throws {
        waiting("barrier")
        defer { waiting(nil) }
        guard MPI_Barrier(stegastamp_mpi_world()) == MPI_SUCCESS else { throw CLIError("MPI_Barrier failed on rank \(rank)") }
    }

    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        waiting("broadcast of \(count) floats")
        defer { waiting(nil) }
        guard MPI_Bcast(buffer, Int32(count), stegastamp_mpi_float(), Int32(root), stegastamp_mpi_world()) == MPI_SUCCESS else {
            throw CLIError("MPI_Bcast failed on rank \(rank)")
        }
    }

    func finish() { MPI_Finalize() }
}
