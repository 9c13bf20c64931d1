import Foundation

/// The model committed under `Models/`, which `encode`, `decode`, `eval` and the demo use when no
/// `--model` is given.
public enum ShippedModel {
    public static let relativePath = "Models/stegastamp.safetensors"
    /// The variable the command line reads to override where the shipped model is looked for
    /// (the library itself reads no environment).
    public static let environmentVariable = "STEGASTAMP_MODEL"

    /// Where the shipped model is: `override` (the command line passes `$STEGASTAMP_MODEL`), else
    /// `Models/` in a folder above the running executable (a build inside the checkout), else in
    /// the checkout this library was built from.
    public static func path(override: String? = nil) throws -> String {
        if let p = override, !p.isEmpty {
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
