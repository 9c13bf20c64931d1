import ArgumentParser
import Foundation
import GraphAutodiff
import GraphIR
import GraphPasses
import GraphRuntime
import StegaStamp

@main
struct StegaStampCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stegastamp",
        abstract: "Compile, run, differentiate and train the StegaStamp models on a static-graph IR.",
        subcommands: [GraphCommand.self, SecretCommand.self, EncodeCommand.self, DecodeCommand.self, EvalCommand.self, ExportCommand.self, TrainCommand.self, Demo.self, Bench.self, CodecBench.self])
}

/// An error the user can act on: printed as "Error: <message>", exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension ExpressibleByArgument where Self: RawRepresentable, Self.RawValue == String {
    public init?(argument: String) { self.init(rawValue: argument) }
}
extension Backend: ExpressibleByArgument {}

func stderr(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }

func readGraph(_ path: String) throws -> Graph {
    guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read file") }
    guard let text = String(data: data, encoding: .utf8) else { throw CLIError("\(path): not UTF-8 text") }
    do { return try TextFormat.parse(text) } catch let e as GraphError { throw CLIError("\(path):\(e)") }
}
