import Foundation
import GraphRuntime

/// `checkpoint.safetensors` of a run folder: every parameter and both optimizers' slots
/// (`param.*`, the ParameterStore as it is), and in the metadata the step reached, the resolved
/// configuration, and the data state. The random draws of a step are a function of (seed, step),
/// so (seed, step) is the whole random state. Written atomically: temporary file, fsync, rename,
/// fsync of the folder.
public struct RunCheckpoint {
    public static let format = "stegastamp-train-checkpoint"
    public static let version = "1"

    public var step: Int
    public var config: TrainingConfig
    public var parameters: ParameterStore
    /// Photos found unreadable so far (for the log; draws do not depend on it).
    public var unreadablePhotos: Int

    public init(step: Int, config: TrainingConfig, parameters: ParameterStore, unreadablePhotos: Int) {
        self.step = step
        self.config = config
        self.parameters = parameters
        self.unreadablePhotos = unreadablePhotos
    }

    public func write(path: String) throws {
        var file = SafetensorsFile(metadata: [
            "format": Self.format, "version": Self.version, "step": "\(step)", "config": config.json(),
            "preset": config.preset, "bits": "\(config.bits)", "size": "\(config.size)",
            "architecture": config.architecture.rawValue, "unreadable_photos": "\(unreadablePhotos)",
            "random_state": "counter-based: draws of step t are a function of (seed \(config.seed), t)",
        ])
        for (k, v) in parameters.values { file.tensors["param." + k] = v }
        try file.write(path: path, sync: true)
    }

    /// The configuration a run folder was trained with (its checkpoint's, which the run's
    /// `config.json` repeats): what `--resume` starts from, so that a resumed run needs no
    /// flags and a flag given with `--resume` changes only that setting.
    public static func configuration(ofRun runDirectory: String) throws -> TrainingConfig {
        let path = runDirectory + "/checkpoint.safetensors"
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError("\(path): no checkpoint to resume from (start the run without --resume)")
        }
        let metadata: [String: String]
        do { metadata = try SafetensorsFile.readMetadata(path: path) } catch {
            throw TrainingError("\(error) (the checkpoint is corrupt or truncated; it was not loaded)")
        }
        guard metadata["format"] == format, let cj = metadata["config"] else {
            throw TrainingError("\(path): not a training checkpoint of `stegastamp train` (format '\(metadata["format"] ?? "none")')")
        }
        return try TrainingConfig.fromJSON(Data(cj.utf8), path: path)
    }

    /// Reads and checks a run checkpoint; every failure names the file and what is wrong.
    public static func read(path: String) throws -> RunCheckpoint {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError("\(path): no checkpoint to resume from (start the run without --resume)")
        }
        let file: SafetensorsFile
        do { file = try SafetensorsFile.read(path: path) } catch {
            throw TrainingError("\(error) (the checkpoint is corrupt or truncated; it was not loaded, nothing was reinitialised)")
        }
        let m = file.metadata
        guard m["format"] == format else {
            throw TrainingError("\(path): not a training checkpoint of `stegastamp train` (format '\(m["format"] ?? "none")')")
        }
        guard m["version"] == version else { throw TrainingError("\(path): checkpoint version \(m["version"] ?? "?"), this build reads \(version)") }
        guard let s = m["step"], let step = Int(s), step >= 0 else { throw TrainingError("\(path): checkpoint metadata has no valid step") }
        guard let cj = m["config"] else { throw TrainingError("\(path): checkpoint metadata has no configuration") }
        let config = try TrainingConfig.fromJSON(Data(cj.utf8), path: path)
        var store = ParameterStore()
        for (k, v) in file.tensors where k.hasPrefix("param.") { store[String(k.dropFirst(6))] = v }
        for v in store.values.values where v.scalars.contains(where: { !$0.isFinite }) {
            throw TrainingError("\(path): the checkpoint holds non-finite parameters (the run diverged before it was written)")
        }
        return RunCheckpoint(step: step, config: config, parameters: store, unreadablePhotos: Int(m["unreadable_photos"] ?? "") ?? 0)
    }
}
