import Foundation
import GraphIR
import GraphRuntime
@testable import StegaStamp
import TestSupport
import XCTest

/// Runs the built `stegastamp` executable as a user would.
final class CommandLineTests: XCTestCase {
    var binary: URL {
        // Tests run from the build products directory, where the executable also lives.
        var dir = Bundle(for: CommandLineTests.self).bundleURL
        if dir.pathExtension == "xctest" { dir.deleteLastPathComponent() }
        return dir.appendingPathComponent("stegastamp")
    }

    @discardableResult
    func run(_ args: [String], expect status: Int32, environment: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws -> (out: String, err: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let result = (String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        XCTAssertEqual(p.terminationStatus, status, "stegastamp \(args.joined(separator: " ")): \(result.1)", file: file, line: line)
        return result
    }

    var tmp: URL { FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(getpid())") }

    override func setUpWithError() throws {
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    func graphFiles() throws -> [String] {
        let dir = repositoryRoot.appendingPathComponent("Graphs")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".graph") }.sorted()
            .map { dir.appendingPathComponent($0).path }
    }

    /// Every shipped graph checks, round-trips through `print`, and differentiates.
    func testShippedGraphsCheckPrintAndGrad() throws {
        let files = try graphFiles()
        XCTAssertGreaterThanOrEqual(files.count, 12)
        for f in files {
            try run(["graph", "check", f], expect: 0)
            let printed = try run(["graph", "print", f], expect: 0).out
            XCTAssertEqual(printed, try String(contentsOfFile: f, encoding: .utf8), "\(f) does not round-trip")
            let gradText = try run(["graph", "grad", f], expect: 0).out
            let grad = try TextFormat.parse(gradText)
            XCTAssertTrue(grad.outputs.contains { $0.name.hasPrefix("grad.") }, f)
            let stats = try run(["graph", "stats", "--summary", f], expect: 0).out
            XCTAssertTrue(stats.contains("GFLOP per call"), f)
            let optimised = try run(["graph", "optimize", f], expect: 0)
            XCTAssertTrue(optimised.err.contains("fusion"), f)
            XCTAssertNoThrow(try TextFormat.parse(optimised.out), f)
            let plan = try run(["graph", "plan", f, "--top", "3"], expect: 0).out
            XCTAssertTrue(plan.contains("lower bound") && plan.contains("checker: no live buffers overlap"), f)
            let dot = try run(["graph", "dot", f], expect: 0).out
            XCTAssertTrue(dot.hasPrefix("digraph") && dot.hasSuffix("}\n"), f)
        }
    }

    /// Graphs/ is kept current: exporting with the arguments of Graphs/MANIFEST gives the same text.
    func testShippedGraphsAreCurrent() throws {
        let manifest = try String(contentsOfFile: repositoryRoot.appendingPathComponent("Graphs/MANIFEST").path, encoding: .utf8)
        var checked = 0
        for line in manifest.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ").map(String.init)
            guard let file = parts.first else { continue }
            let exported = try run(["graph", "export"] + parts.dropFirst(), expect: 0).out
            let shipped = try String(contentsOfFile: repositoryRoot.appendingPathComponent("Graphs/\(file)").path, encoding: .utf8)
            XCTAssertEqual(exported, shipped, "Graphs/\(file) is stale: run scripts/export-graphs.sh")
            checked += 1
        }
        XCTAssertEqual(checked, try graphFiles().count, "every graph file is in Graphs/MANIFEST")
    }

    /// `graph run` with the fixture files as they are, on the shipped graphs of the fixtures' sizes.
    func testShippedGraphsReproduceTheFixtures() throws {
        let out = tmp.appendingPathComponent("o.safetensors").path
        func compare(_ graph: String, _ fixture: String, _ pairs: [(String, String)], tolerance: Double, extra: [String] = []) throws {
            try run(["graph", "run", repositoryRoot.appendingPathComponent("Graphs/\(graph)").path,
                     repositoryRoot.appendingPathComponent("Tests/Fixtures/\(fixture).safetensors").path, "--out", out] + extra, expect: 0)
            let result = try SafetensorsFile.read(path: out), fx = try Fixture(fixture)
            for (o, e) in pairs {
                let err = relativeErrors(result.tensors["output." + o]!, fx[e])
                XCTAssertLessThan(err.max, tolerance, "\(graph): \(o) vs \(e)")
            }
        }
        try compare("paper_encoder.graph", "stegastamp_encoder", [("residual", "expected.residual")], tolerance: 1e-4)
        try compare("s64_decoder.graph", "stegastamp_decoder",
                    [("logits", "expected.logits"), ("theta", "expected.theta"), ("transformed_image", "expected.transformed_image")], tolerance: 1e-4)
        try compare("s64_critic.graph", "critic", [("output", "expected.output"), ("heatmap", "expected.heatmap")], tolerance: 1e-4)
        try compare("s64_plain_train_step.graph", "train_step",
                    [("loss", "expected.loss"), ("secret_loss", "expected.secret_loss"), ("image_loss", "expected.image_loss"),
                     ("yuv_loss", "expected.yuv_loss"), ("logits", "expected.logits"), ("grad.encoder.conv1.kernel", "grad.encoder.conv1.kernel"),
                     ("grad.decoder.dec.fc2.kernel", "grad.decoder.dec.fc2.kernel"), ("grad.encoder.secret_dense.kernel", "grad.encoder.secret_dense.kernel")],
                    tolerance: 1e-3,
                    extra: ["--scalar", "l2_edge_gain=10", "--scalar", "l2_loss_scale=2", "--scalar", "secret_loss_scale=1.5",
                            "--scalar", "learning_rate=0.0001", "--scalar", "step=1"])
    }

    func testRunOnAShippedGraphAndAWrongShape() throws {
        let graphPath = repositoryRoot.appendingPathComponent("Graphs/small_forward.graph").path
        let g = try TextFormat.parse(try String(contentsOfFile: graphPath, encoding: .utf8))
        var file = SafetensorsFile()
        for id in g.inputs { file.tensors["input." + g[id].name] = randomTensor(g[id].shape, seed: 1, lo: 0, hi: 1) }
        let inPath = tmp.appendingPathComponent("in.safetensors").path, outPath = tmp.appendingPathComponent("out.safetensors").path
        try file.write(path: inPath)
        try run(["graph", "run", graphPath, inPath, "--out", outPath], expect: 0)
        let out = try SafetensorsFile.read(path: outPath)
        XCTAssertEqual(Set(out.tensors.keys), Set(g.outputs.map { "output." + $0.name }))
        // The same through the interpreter gives the same numbers.
        let ref = try evaluate(g, Dictionary(uniqueKeysWithValues: g.inputs.map { (g[$0].name, file.tensors["input." + g[$0].name]!) }))
        XCTAssertLessThan(relativeErrors(out.tensors["output.logits"]!, ref["logits"]!).max, 1e-4)

        file.tensors["input.image"] = Tensor.zeros([16, 32, 30, 3])
        try file.write(path: inPath)
        let err = try run(["graph", "run", graphPath, inPath, "--out", outPath], expect: 1).err
        XCTAssertTrue(err.contains("expected f32[16,32,32,3], got f32[16,32,30,3]"), err)
        XCTAssertFalse(err.contains("Fatal") || err.contains("Backtrac"), err)
    }

    func testFixtureFileRunsAsItIs() throws {
        let graphPath = tmp.appendingPathComponent("conv.graph").path
        try """
        graph conv_same
        input %x : f32[2,9,7,5]
        param %k3 : f32[3,3,5,4] = zeros
        param %bias : f32[4] = zeros
        %y = conv2d(%x, %k3) {strides=[2,2], padding=[1,1,1,1]} : f32[2,5,4,4]
        %z = add(%y, %bias) : f32[2,5,4,4]
        output k3_s2 = %z

        """.write(toFile: graphPath, atomically: true, encoding: .utf8)
        let outPath = tmp.appendingPathComponent("o.safetensors").path
        let fixture = repositoryRoot.appendingPathComponent("Tests/Fixtures/conv2d_same.safetensors").path
        try run(["graph", "run", graphPath, fixture, "--out", outPath, "--backend", "interpreter"], expect: 0)
        let out = try SafetensorsFile.read(path: outPath)
        XCTAssertLessThan(relativeErrors(out.tensors["output.k3_s2"]!, try Fixture("conv2d_same")["expected.k3_s2"]).max, 1e-5)
    }

    func testSecretEncodeDecode() throws {
        let bits = try run(["secret", "encode", "Stega!!"], expect: 0).out.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(bits.count, 100)
        var flipped = Array(bits)
        for i in [3, 40, 70] { flipped[i] = flipped[i] == "0" ? "1" : "0" }
        let out = try run(["secret", "decode", String(flipped)], expect: 0).out
        XCTAssertEqual(out, "Stega!!\ncorrected bits: 3\n")
        for i in [5, 11, 17, 23, 29, 35, 41, 47] { flipped[i] = flipped[i] == "0" ? "1" : "0" }
        let err = try run(["secret", "decode", String(flipped)], expect: 1).err
        XCTAssertTrue(err.contains("no message could be recovered"), err)
        XCTAssertTrue(try run(["secret", "encode", "much too long"], expect: 1).err.contains("at most 7"))
        XCTAssertTrue(try run(["secret", "decode", "0101x"], expect: 1).err.contains("only 0, 1"))
        XCTAssertTrue(try run(["secret", "decode", "0101"], expect: 1).err.contains("at least 96"))
    }

    /// encode/decode plumbing with an untrained 100-bit model: outputs keep each input's size, a
    /// directory is processed in batches, and decoding says honestly that nothing was recovered.
    func testEncodeDecodeCommandsWithAnUntrainedModel() throws {
        var c = SmallModelConfig()
        (c.bits, c.secretUpsample) = (100, 4)
        let g = try SmallModel.forward(c)
        let ckpt = tmp.appendingPathComponent("m.safetensors").path
        try ParameterStore(initializing: g).save(path: ckpt, metadata: WatermarkModel.metadata(c))
        let photos = tmp.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        for (i, (w, h)) in [(64, 48), (40, 90), (33, 33)].enumerated() {
            let img = RGBImage(SyntheticImages.batch(count: 1, height: h, width: w, seed: UInt64(i)))
            try ImageIO.write(img, path: photos.appendingPathComponent("p\(i).\(i == 1 ? "jpg" : "png")").path)
        }
        let out = tmp.appendingPathComponent("encoded")
        let log = try run(["encode", "--model", ckpt, "--image", photos.path, "--secret", "Hi!", "--out", out.path,
                           "--residual", tmp.appendingPathComponent("res").path], expect: 0).out
        XCTAssertEqual(log.split(separator: "\n").count, 3, log)
        XCTAssertEqual(try ImageIO.read(path: out.appendingPathComponent("p1.png").path).width, 40)
        XCTAssertEqual(try ImageIO.read(path: out.appendingPathComponent("p1.png").path).height, 90)
        let single = tmp.appendingPathComponent("one.jpg").path
        try run(["encode", "--model", ckpt, "--image", photos.appendingPathComponent("p0.png").path, "--secret", "Hi!", "--out", single], expect: 0)
        XCTAssertEqual(try ImageIO.read(path: single).width, 64)
        let decoded = try run(["decode", "--model", ckpt, "--image", out.path], expect: 1).out
        XCTAssertEqual(decoded.components(separatedBy: "no message could be recovered").count - 1, 3, decoded)
        // eval: every distortion of the suite, a table and a JSON file.
        let json = tmp.appendingPathComponent("eval.json").path
        let table = try run(["eval", "--model", ckpt, "--images", photos.path, "--out", json], expect: 0).out
        for d in Distortion.suite { XCTAssertTrue(table.contains(d.name), "\(d.name) missing from\n\(table)") }
        let parsed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        XCTAssertEqual(parsed["images"] as? Int, 3)
        XCTAssertEqual((parsed["summary"] as? [Any])?.count, Distortion.suite.count)
        XCTAssertEqual((parsed["per_image"] as? [Any])?.count, 3)
        // A sweep: a row per strength, the plot, and the sweep in the JSON.
        let plot = tmp.appendingPathComponent("sweep.png").path
        let swept = try run(["eval", "--model", ckpt, "--images", photos.path, "--out", json, "--secrets", "1", "--limit", "1",
                             "--sweep", "0.5,2", "--plot", plot], expect: 0).out
        XCTAssertTrue(swept.contains("strength sweep"), swept)
        XCTAssertGreaterThan(try ImageIO.read(path: plot).width, 100)
        let sweptJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        XCTAssertEqual((sweptJSON["sweep"] as? [Any])?.count, 3)
        XCTAssertTrue(try run(["eval", "--model", ckpt, "--images", photos.path, "--sweep", "1,x"], expect: 1).err.contains("--sweep: 'x'"))
        // eval --strength auto: the search per message (this untrained model survives nothing, so
        // each message gets the lowest strength tried and counts as not surviving).
        let autoTable = try run(["eval", "--model", ckpt, "--images", photos.path, "--out", json, "--secrets", "1", "--limit", "2",
                                 "--strength", "auto", "--survive", "jpeg90,blur+noise", "--sweep", "0.5", "--plot", plot], expect: 0).out
        XCTAssertTrue(autoTable.contains("strength auto (mean"), autoTable)
        XCTAssertTrue(autoTable.contains("2 surviving no strength"), autoTable)
        let autoJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        let autoInfo = try XCTUnwrap(autoJSON["auto"] as? [String: Any], "\(autoJSON.keys)")
        XCTAssertEqual(autoInfo["unsurvived"] as? Int, 2)
        XCTAssertEqual(autoInfo["survive"] as? String, "jpeg90,blur+noise")
        XCTAssertEqual((autoJSON["sweep"] as? [Any])?.count, 2)
        XCTAssertTrue(try run(["eval", "--model", ckpt, "--images", photos.path, "--strength", "auto", "--survive", "jpeg90,,blur"],
                              expect: 1).err.contains("empty damage chain"))
        for (flag, value) in [("--auto-seeds", "0"), ("--refine-at", "-1"), ("--auto-margin", "0.5")] {
            XCTAssertTrue(try run(["eval", "--model", ckpt, "--images", photos.path, "--strength", "auto", "\(flag)=\(value)"], expect: 1).err.contains(flag), flag)
        }
        // --strength auto runs its search (an untrained model never decodes: it says so) and
        // --survive is checked.
        let auto = try run(["encode", "--model", ckpt, "--image", photos.appendingPathComponent("p2.png").path, "--secret", "Hi!",
                            "--out", tmp.appendingPathComponent("auto.png").path, "--strength", "auto", "--survive", "jpeg90"], expect: 0).out
        XCTAssertTrue(auto.contains("did not survive jpeg90 at any strength"), auto)
        XCTAssertTrue(try run(["encode", "--model", ckpt, "--image", single, "--secret", "Hi", "--out", single, "--strength", "auto",
                               "--survive", "nope"], expect: 1).err.contains("unknown damage 'nope'"))
        XCTAssertTrue(try run(["encode", "--model", ckpt, "--image", single, "--secret", "Hi", "--out", single, "--strength", "-1"], expect: 64).err.contains("strength"))
        // --refine: the small demo model cannot be refined (a clear error), a negative count is
        // refused, the shipped model refines.
        let refineOut = tmp.appendingPathComponent("refined.png").path
        XCTAssertTrue(try run(["encode", "--model", ckpt, "--image", single, "--secret", "Hi", "--out", refineOut, "--refine", "2"], expect: 1)
            .err.contains("refinement needs a StegaStamp model"))
        XCTAssertTrue(try run(["encode", "--image", single, "--secret", "Hi", "--out", refineOut, "--refine=-1"], expect: 1).err.contains("--refine"))
        let refined = try run(["encode", "--image", photos.appendingPathComponent("p0.png").path, "--secret", "Hi", "--out", refineOut,
                               "--strength", "0.5", "--refine", "2"], expect: 0).out
        XCTAssertTrue(refined.contains("strength 0.5"), refined)
        XCTAssertEqual(try ImageIO.read(path: refineOut).width, 64)
        // A JPEG large enough for a reduced DCT decode: the residual is made from the half-scale
        // decode while the full photo is read, goes into the full photo, and decodes.
        let dir = tmp.appendingPathComponent("large").path
        let large = try SyntheticImages.writePhotos(directory: dir, count: 1, width: 720, height: 560, seed: 11)[0]
        let largeJPEG = tmp.appendingPathComponent("large.jpg").path
        try ImageIO.write(try ImageIO.read(path: large), path: largeJPEG, jpegQuality: 95)
        let largeOut = tmp.appendingPathComponent("large-out.png").path
        let encodedLarge = try run(["encode", "--image", largeJPEG, "--secret", "Big", "--out", largeOut, "--refine", "4"], expect: 0).out
        XCTAssertTrue(encodedLarge.contains("(720x560, PSNR"), encodedLarge)
        let largeImage = try ImageIO.read(path: largeOut)
        XCTAssertEqual([largeImage.width, largeImage.height], [720, 560])
        XCTAssertTrue(try run(["decode", "--image", largeOut], expect: 0).out.hasPrefix("Big\t"))
        // Without --model, the shipped model; a missing one is a clear error.
        let missing = try run(["decode", "--image", single], expect: 1, environment: ["STEGASTAMP_MODEL": "/no/such/model.safetensors"]).err
        XCTAssertTrue(missing.contains("STEGASTAMP_MODEL=/no/such/model.safetensors: no such file"), missing)
        // Bad inputs: a too-long secret, a corrupt checkpoint, a non-image.
        XCTAssertTrue(try run(["encode", "--model", ckpt, "--image", single, "--secret", "12345678", "--out", single], expect: 1).err.contains("at most 7"))
        let bad = tmp.appendingPathComponent("bad.safetensors").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        XCTAssertTrue(try run(["decode", "--model", bad, "--image", single], expect: 1).err.contains("bad.safetensors: truncated"))
        let text = tmp.appendingPathComponent("x.png").path
        try "not an image".write(toFile: text, atomically: true, encoding: .utf8)
        XCTAssertTrue(try run(["decode", "--model", ckpt, "--image", text], expect: 1).err.contains("not a PNG or JPEG"))
    }

    func testMalformedInputsGiveCleanErrors() throws {
        let bad = tmp.appendingPathComponent("bad.graph").path
        try "graph g\ninput %x : f32[2,3]\n%y = add(%x, %nope) : f32[2,3]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        var err = try run(["graph", "check", bad], expect: 1).err
        XCTAssertTrue(err.contains("bad.graph:3:14: use of undefined value %nope"), err)
        try Data([0xFF, 0xFE, 0x00]).write(to: URL(fileURLWithPath: bad))
        err = try run(["graph", "print", bad], expect: 1).err
        XCTAssertTrue(err.contains("not UTF-8") || err.contains("graph NAME"), err)
        let corrupt = tmp.appendingPathComponent("c.safetensors").path
        try Data([1, 2, 3, 4, 5, 6, 7, 8, 9]).write(to: URL(fileURLWithPath: corrupt))
        let graphPath = repositoryRoot.appendingPathComponent("Graphs/small_forward.graph").path
        err = try run(["graph", "run", graphPath, corrupt, "--out", tmp.appendingPathComponent("o").path], expect: 1).err
        XCTAssertTrue(err.contains("truncated or corrupt"), err)
        err = try run(["graph", "check", "/no/such/file.graph"], expect: 1).err
        XCTAssertTrue(err.contains("cannot read"), err)
        err = try run(["graph", "grad", graphPath, "--of", "nothing"], expect: 1).err
        XCTAssertTrue(err.contains("no output 'nothing'"), err)
        err = try run(["graph", "export", "small-forward", "--height", "20"], expect: 1).err
        XCTAssertTrue(err.contains("multiple of 8"), err)
    }

    func trainingPhotos() throws -> String {
        let dir = tmp.appendingPathComponent("train-photos").path
        _ = try SyntheticImages.writePhotos(directory: dir, count: 12, width: 96, height: 72)
        return dir
    }

    /// `stegastamp train` rejects bad flags and folders with a clear message and exit status 1.
    func testTrainRejectsBadFlagsAndFolders() throws {
        let photos = try trainingPhotos()
        let runDir = tmp.appendingPathComponent("run").path
        var err = try run(["train", "--preset", "huge", "--images", photos, "--run", runDir], expect: 1).err
        XCTAssertTrue(err.contains("unknown preset 'huge'"), err)
        err = try run(["train", "--preset", "tiny", "--size", "20", "--images", photos, "--run", runDir], expect: 1).err
        XCTAssertTrue(err.contains("--size 20"), err)
        err = try run(["train", "--preset", "tiny", "--steps", "0", "--images", photos, "--run", runDir], expect: 1).err
        XCTAssertTrue(err.contains("--steps 0"), err)
        let empty = tmp.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        err = try run(["train", "--preset", "tiny", "--images", empty, "--run", runDir], expect: 1).err
        XCTAssertTrue(err.contains("no .png, .jpg or .jpeg"), err)
        err = try run(["train", "--preset", "tiny", "--images", photos, "--run", runDir, "--resume"], expect: 1).err
        XCTAssertTrue(err.contains("no checkpoint to resume"), err)
        err = try run(["train", "--preset", "tiny", "--images", photos, "--yuv-scales", "1,2", "--run", runDir], expect: 1).err
        XCTAssertTrue(err.contains("--yuv-scales"), err)
    }

    /// A run killed with SIGKILL leaves a checkpoint (written atomically) that resumes, with the
    /// run's own configuration when `--resume` is given no other flag; SIGTERM stops a run with a
    /// checkpoint at the step it reached.
    func testKilledRunResumesFromItsCheckpoint() throws {
        let photos = try trainingPhotos()
        let runDir = tmp.appendingPathComponent("killed").path
        let ckpt = runDir + "/checkpoint.safetensors"
        func start(_ extra: [String]) throws -> Process {
            let p = Process()
            p.executableURL = binary
            p.arguments = ["train", "--preset", "tiny", "--images", photos, "--run", runDir, "--steps", "100000", "--checkpoint-every", "3",
                           "--eval-every", "100000", "--no-progress", "--no-gan", "--l2-loss-scale", "3.5"] + extra
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        func waitForCheckpoint(past step: Int) throws -> Int {
            let deadline = Date().addingTimeInterval(300)
            while Date() < deadline {
                if let c = try? RunCheckpoint.read(path: ckpt), c.step > step { return c.step }
                Thread.sleep(forTimeInterval: 0.2)
            }
            XCTFail("no checkpoint past step \(step) within 300 s")
            return -1
        }
        let p = try start([])
        let reached = try waitForCheckpoint(past: 5)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let survived = try RunCheckpoint.read(path: ckpt)
        XCTAssertGreaterThanOrEqual(survived.step, reached)
        let target = survived.step + 4
        // Another preset is refused; no flags but --steps resume the run as it was configured
        // (no critic, L2 scale 3.5: the defaults of the tiny preset would want a critic's slots).
        let wrongPreset = try run(["train", "--preset", "cpu", "--images", photos, "--run", runDir, "--resume"], expect: 1).err
        XCTAssertTrue(wrongPreset.contains("'tiny' run"), wrongPreset)
        let out = try run(["train", "--images", photos, "--run", runDir, "--steps", "\(target)", "--resume", "--no-progress"], expect: 0).out
        XCTAssertTrue(out.contains("resuming \(runDir) from step \(survived.step)"), out)
        let resumed = try RunCheckpoint.read(path: ckpt)
        XCTAssertEqual(resumed.step, target)
        XCTAssertEqual(resumed.config.gan, false)
        XCTAssertEqual(resumed.config.l2LossScale, 3.5)
        XCTAssertEqual(resumed.config.checkpointEvery, 3)
        XCTAssertEqual(resumed.config.steps, target)
        // SIGTERM: the run writes a checkpoint at the step it reached and exits 130.
        let q = try start(["--resume"])
        _ = try waitForCheckpoint(past: target)
        kill(q.processIdentifier, SIGTERM)
        q.waitUntilExit()
        XCTAssertEqual(q.terminationStatus, 130)
        XCTAssertGreaterThan(try RunCheckpoint.read(path: ckpt).step, target)
    }

    /// `graph plan --kernels`: a kernel per step; tuning measures once, then reads its cache back (a
    /// new process); `--no-tune` plans by the rules; bad compiler flags are clear errors.
    func testKernelPlanAndTuningCacheThroughTheCLI() throws {
        let graph = repositoryRoot.appendingPathComponent("Graphs/s64_decoder.graph").path
        let cache = tmp.appendingPathComponent("tuning.json").path, objects = tmp.appendingPathComponent(".cache/stegastamp/jit").path
        // --tuning-load-limit 1: cached even if something else keeps the machine busy meanwhile.
        let first = try run(["graph", "plan", "--kernels", graph, "--tuning-cache", cache, "--tuning-load-limit", "1"], expect: 0, environment: ["HOME": tmp.path])
        XCTAssertTrue(first.err.contains("measured (no cache file yet)"), first.err)
        XCTAssertTrue(first.out.contains("winograd") || first.out.contains("direct") || first.out.contains("im2col"), first.out)
        let steps = first.out.split(separator: "\n").filter { $0.hasPrefix(" ") }
        XCTAssertGreaterThan(steps.count, 10)
        XCTAssertTrue(first.out.contains("* chosen by timing"), first.out)
        let second = try run(["graph", "plan", "--kernels", graph, "--tuning-cache", cache], expect: 0, environment: ["HOME": tmp.path])
        XCTAssertFalse(second.err.contains("measured"), second.err)
        XCTAssertTrue(second.err.contains("from \(cache)"), second.err)
        XCTAssertEqual(second.out, first.out, "the same plan from the cache")
        XCTAssertTrue(FileManager.default.fileExists(atPath: objects), "the JIT's objects under $HOME/.cache/stegastamp/jit")
        let rules = try run(["graph", "plan", "--kernels", graph, "--no-tune"], expect: 0, environment: ["HOME": tmp.path])
        XCTAssertFalse(rules.out.contains(" *\n"), rules.out)
        XCTAssertFalse(rules.err.contains("kernel tuning"), rules.err)
        let bad = try run(["graph", "plan", "--kernels", graph, "--conv", "fft"], expect: 64)
        XCTAssertTrue(bad.err.contains("--conv"), bad.err)
        let limit = try run(["graph", "plan", "--kernels", graph, "--tuning-load-limit", "2"], expect: 64)
        XCTAssertTrue(limit.err.contains("--tuning-load-limit 2.0: give a share of the cores between 0 and 1"), limit.err)
    }

    /// `mpirun -np 2 stegastamp train`: 2 ranks with a global batch of 8 log the losses of one
    /// process with batch 8, hold identical parameters, write a checkpoint one process resumes;
    /// a killed rank ends the run with an error (no hang).
    func testDataParallelTrainingOnTwoRanksMatchesOneProcess() throws {
        guard let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("Open MPI's mpirun is not installed (scripts/setup.sh installs openmpi-bin)")
        }
        let photos = try trainingPhotos()
        let common = ["train", "--preset", "tiny", "--images", photos, "--steps", "20", "--batch", "8", "--log-every", "5",
                      "--no-image-loss-steps", "5", "--eval-every", "1000", "--no-progress"]
        let one = tmp.appendingPathComponent("one").path, two = tmp.appendingPathComponent("two").path
        try run(common + ["--run", one], expect: 0)
        func mpi(_ args: [String]) throws -> (status: Int32, err: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: mpirun)
            p.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "2", binary.path] + args
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: e, as: UTF8.self))
        }
        // Small buckets (many collectives a step) change only the summation order.
        let r = try mpi(common + ["--run", two, "--threads", "1", "--bucket-mb", "0.05"])
        XCTAssertEqual(r.status, 0, r.err)
        func losses(_ dir: String) throws -> [Double] {
            try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
                ((try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["loss"] as! NSNumber).doubleValue
            }
        }
        let (a, b) = (try losses(one), try losses(two))
        XCTAssertEqual(a.count, 4)
        XCTAssertEqual(a.count, b.count)
        for (x, y) in zip(a, b) { XCTAssertLessThanOrEqual(abs(x - y) / abs(x), 1e-3, "\(a) vs \(b)") }
        let sums = r.err.split(separator: "\n").filter { $0.contains("parameters checksum") }.map { $0.split(separator: " ").last! }
        XCTAssertEqual(sums.count, 2, r.err)
        XCTAssertEqual(Set(sums).count, 1, "ranks disagree: \(r.err)")
        // The 2-rank checkpoint resumes in one process.
        let resumed = try run(common.map { $0 == "20" ? "24" : $0 } + ["--run", two, "--resume"], expect: 0).out
        XCTAssertTrue(resumed.contains("resuming \(two) from step 20"), resumed)
        // A rank that hangs (SIGSTOP): the other stops the run after --collective-timeout. A rank
        // that dies (SIGKILL): mpirun ends the job. Neither hangs; the last checkpoint stays intact.
        for (name, signal) in [("hang", SIGSTOP), ("die", SIGKILL)] {
            let dir = tmp.appendingPathComponent(name).path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: mpirun)
            p.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "2", binary.path] + common.map { $0 == "20" ? "100000" : $0 }
                + ["--run", dir, "--threads", "1", "--collective-timeout", "5", "--checkpoint-every", "2"]
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            let deadline = Date().addingTimeInterval(300)
            while (try? RunCheckpoint.read(path: dir + "/checkpoint.safetensors")) == nil && p.isRunning && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.2)
            }
            guard p.isRunning else {
                XCTFail("\(name): the 2-rank run ended before its first checkpoint: " + String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
                continue
            }
            // The ranks are the two stegastamp processes mpirun started; rank 1 the later one.
            let ps = Process()
            ps.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
            ps.arguments = ["-f", "--", "--run \(dir) "]
            let out = Pipe()
            ps.standardOutput = out
            try ps.run()
            ps.waitUntilExit()
            let pids = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
                .filter { $0 != p.processIdentifier }.sorted()
            XCTAssertEqual(pids.count, 2, "\(name): \(pids)")
            guard let victim = pids.last else { p.terminate(); continue }
            let hit = Date()
            kill(victim, signal)
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            let text = String(decoding: e, as: UTF8.self)
            XCTAssertNotEqual(p.terminationStatus, 0, name)
            XCTAssertLessThan(Date().timeIntervalSince(hit), 60, "\(name): the run should stop within seconds")
            XCTAssertTrue(text.contains(signal == SIGSTOP ? "died or hangs" : "exited on signal 9"), "\(name): \(text)")
            XCTAssertNoThrow(try RunCheckpoint.read(path: dir + "/checkpoint.safetensors"), "\(name): the last checkpoint stays intact")
            for pid in pids { kill(pid, SIGKILL) }
        }
    }
}
