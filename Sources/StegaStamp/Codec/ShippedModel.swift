import Foundation

/// The model committed under `Models/`, which `encode`, `decode`, `eval` and the demo use when no
/// `--model` is given.
public enum ShippedModel {
    public static let relativePath = "Models/stegastamp.safetensors"
    /// Overrides where the shipped model is looked for.
    public static let environmentVariable = "STEGASTAMP_MODEL"

    /// Where the shipped model is: `$STEGASTAMP_MODEL`, else `Models/` in a folder above the running
    /// executable (a build inside the checkout), else in the checkout this library was built from.
    public static func path() throws -> String {
        if let p = ProcessInfo.processInfo.environment[environmentVariable], !p.isEmpty {
            guard FileManager.default.fileExists(atPath: p) else { throw ModelError("\(environmentVariable)=\(p): no such file") }
            return p
        }
        var candidates: [URL] = []
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(dir.appendingPathComponent(relativePath))
            dir = dir.deletingLastPathComponent()
        }
        // Sources/StegaStamp/Codec/ShippedModel.swift -> the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(relativePath))
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) { return found.path }
        throw ModelError("no model given and the shipped model \(relativePath) was not found (looked in the folders above the executable and in \(root.path)); pass --model or set \(environmentVariable)")
    }
}
