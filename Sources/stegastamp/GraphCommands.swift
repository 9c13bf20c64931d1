import ArgumentParser
import Foundation
import GraphAutodiff
import GraphIR
import GraphPasses
import GraphRuntime
import StegaStamp

/// `stegastamp graph ...`: the text IR, its passes, plans, gradients and runs.
struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "Work with graph files (the text IR).",
        subcommands: [Check.self, Print.self, Run.self, Grad.self, Export.self, Stats.self, Optimize.self, Plan.self, Dot.self, LLVM.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse and verify a graph file; print a summary.")
        @Argument(help: "Graph file.") var file: String

        func run() throws {
            let g = try readGraph(file)
            let params = g.parameters.reduce(0) { $0 + Shape.count(g[$1].shape) }
            let ops = g.values.filter { $0.op != nil }.count
            print("\(file): ok: graph \(g.name), \(g.values.count) values (\(ops) ops), \(g.inputs.count) inputs, "
                  + "\(g.parameters.count) parameters (\(params) scalars), \(g.outputs.count) outputs, \(g.updates.count) updates")
            for id in g.inputs { print("  input  \(g[id].name) f32\(Shape.describe(g[id].shape))") }
            for o in g.outputs { print("  output \(o.name) f32\(Shape.describe(g[o.value].shape))") }
        }
    }

    struct Print: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a graph file in canonical form.")
        @Argument(help: "Graph file.") var file: String
        func run() throws { Swift.print(TextFormat.print(try readGraph(file)), terminator: "") }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a graph on the tensors of a safetensors file.",
            discussion: """
                Tensors named input.X feed graph input X; tensors named param.Y set parameter Y (parameters \
                not in the file start at their initializer). Every graph output Z is written as output.Z to \
                --out. Other tensors (expected.*, grad.*, ...) are ignored, so a fixture file works as it is.
                """)
        @Argument(help: "Graph file.") var file: String
        @Argument(help: "safetensors file with input.* and param.* tensors.") var tensors: String
        @Option(help: "Where to write the outputs (safetensors).") var out: String
        @Flag(help: "Also write the parameters after the graph's updates as param.*.") var writeParameters = false
        @OptionGroup(title: "Compiler") var compile: CompileFlags
        @Option(name: .customLong("scalar"), help: "Feed a scalar input: NAME=VALUE (repeatable); overrides the file.")
        var scalars: [String] = []

        func run() throws {
            let g = try readGraph(file)
            let file = try SafetensorsFile.read(path: tensors)
            var feeds: [String: Tensor] = [:]
            for s in scalars {
                let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let v = Float(parts[1]) else { throw CLIError("--scalar expects NAME=VALUE, got '\(s)'") }
                feeds[parts[0]] = Tensor(v)
            }
            var store = ParameterStore(initializing: g)
            var ignored: [String] = []
            let inputNames = Set(g.inputs.map { g[$0].name }), paramNames = Set(g.parameters.map { g[$0].name })
            for (name, t) in file.tensors {
                if name.hasPrefix("input."), inputNames.contains(String(name.dropFirst(6))) {
                    if feeds[String(name.dropFirst(6))] == nil { feeds[String(name.dropFirst(6))] = t }
                } else if name.hasPrefix("param."), paramNames.contains(String(name.dropFirst(6))) {
                    store[String(name.dropFirst(6))] = t
                } else {
                    ignored.append(name)
                }
            }
            if !ignored.isEmpty {
                FileHandle.standardError.write("note: ignoring \(ignored.count) tensor(s) the graph does not use\n".data(using: .utf8)!)
            }
            let exe = try Compiler.compile(g, for: Signature.of(g), options: compile.options(tune: false))
            let t0 = Date()
            let outputs: [String: Tensor]
            do { outputs = try exe.run(feeds, parameters: &store) } catch let e as ExecutionError {
                throw CLIError("\(tensors): \(e)")
            }
            var result = SafetensorsFile(metadata: ["graph": g.name])
            for (k, v) in outputs { result.tensors["output." + k] = v }
            if writeParameters { for (k, v) in store.values { result.tensors["param." + k] = v } }
            try result.write(path: out)
            Swift.print(String(format: "ran %@ on %@ (%@) in %.3f s; wrote %d output(s) to %@",
                               g.name, tensors, compile.backend.rawValue, Date().timeIntervalSince(t0), outputs.count, out))
        }
    }

    struct LLVM: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the optimised LLVM IR that GraphJIT compiles for a graph's elementwise kernels.",
            discussion: "One function k<N> per fused loop or standalone elementwise op (N: the value's index in the optimised graph).")
        @Argument(help: "Graph file.") var file: String
        @Option(help: "Output file (default: standard output).") var out: String?

        func run() throws {
            let g = try readGraph(file)
            let exe = try Compiler.compile(g, for: Signature.of(g), options: CompileOptions(backend: .cpu, jit: true))
            let ir = exe.llvmIR ?? ""
            if let out { try ir.write(toFile: out, atomically: true, encoding: .utf8) } else { Swift.print(ir, terminator: "") }
            FileHandle.standardError.write("\(exe.jitKernelCount) kernel(s) compiled\n".data(using: .utf8)!)
        }
    }

    struct Grad: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the gradient graph of an output.",
            discussion: """
                The result is the input graph plus outputs grad.<name> for each value differentiated against. \
                A non-scalar output is summed first (the gradient of sum(output)).
                """)
        @Argument(help: "Graph file.") var file: String
        @Option(help: "The scalar output to differentiate (default: the first output).") var of: String?
        @Option(parsing: .upToNextOption, help: "Inputs or parameters to differentiate against (default: all parameters, or all inputs if there are none).")
        var wrt: [String] = []

        func run() throws {
            let g = try readGraph(file)
            guard let outName = of ?? g.outputs.first?.name else { throw CLIError("\(file): the graph has no outputs") }
            let names = wrt.isEmpty ? (g.parameters.isEmpty ? g.inputs : g.parameters).map { g[$0].name } : wrt
            let dg: Graph
            do { dg = try Autodiff.gradientGraph(of: g, output: outName, wrt: names) } catch let e as AutodiffError { throw CLIError("\(file): \(e)") }
            Swift.print(TextFormat.print(dg), terminator: "")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the text IR of a built-in model.",
            discussion: """
                encoder, decoder, critic, transform: one network (StegaStamp, exact to the original). \
                train-step: the generator step (warp, encoder, transform net, decoder, losses, Adam); \
                critic-step: the WGAN critic step (RMSProp, clipping); plain-train-step: the train_step \
                fixture's graph (encoder + decoder + losses, gradients as outputs, Adam). \
                small-forward, small-train-step: the small demo model.
                """)
        enum Model: String, CaseIterable, ExpressibleByArgument {
            case encoder, decoder, critic, transform
            case trainStep = "train-step", criticStep = "critic-step", plainTrainStep = "plain-train-step"
            case smallForward = "small-forward", smallTrainStep = "small-train-step"
        }
        @Argument(help: "The model: \(Model.allCases.map(\.rawValue).joined(separator: ", ")).") var model: Model
        @Option(help: "Image height (StegaStamp default 400, small model 32).") var height: Int?
        @Option(help: "Image width (StegaStamp default 400, small model 32).") var width: Int?
        @Option(help: "Secret bits (StegaStamp default 100, small model 16).") var bits: Int?
        @Option(help: "Batch size (StegaStamp default 4, small model 16).") var batch: Int?
        @Option(help: "Border mode of the warp: \(BorderMode.allCases.map(\.rawValue).joined(separator: ", ")).") var borders = "white"
        @Flag(help: "Train the STN's W_fc1 / b_fc1 (the original did not).") var trainStn = false
        @Flag(help: "Leave out the original's unused conv10 and second conv9.") var noDeadCode = false
        @Option(help: "Perceptual loss: ssim, lpips (weights loaded into parameters lpips.*) or none.") var perceptual = "ssim"
        @Option(help: "Output file (default: standard output).") var out: String?

        func run() throws {
            let g: Graph
            switch model {
            case .smallForward, .smallTrainStep:
                var c = SmallModelConfig()
                (c.height, c.width, c.bits, c.batch) = (height ?? 32, width ?? 32, bits ?? 16, batch ?? 16)
                do { try c.validate() } catch { throw CLIError("\(error)") }
                g = model == .smallForward ? try SmallModel.forward(c) : try SmallModel.trainingStep(c)
            default:
                var c = StegaStampConfig()
                (c.height, c.width, c.bits, c.batch) = (height ?? 400, width ?? 400, bits ?? 100, batch ?? 4)
                guard let mode = BorderMode(rawValue: borders) else {
                    throw CLIError("--borders must be one of \(BorderMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                guard let p = StegaStampConfig.PerceptualLoss(rawValue: perceptual) else { throw CLIError("--perceptual must be ssim, lpips or none") }
                (c.borders, c.trainSTN, c.includeDeadCode, c.perceptual) = (mode, trainStn, !noDeadCode, p)
                do { try c.validate() } catch { throw CLIError("\(error)") }
                switch model {
                case .encoder: g = try StegaStampGraphs.encoder(c)
                case .decoder: g = try StegaStampGraphs.decoder(c)
                case .critic: g = try StegaStampGraphs.critic(c)
                case .transform: g = try StegaStampGraphs.transform(c)
                case .trainStep: g = try StegaStampGraphs.generatorStep(c)
                case .criticStep: g = try StegaStampGraphs.criticStep(c)
                default: g = try StegaStampGraphs.plainStep(c)
                }
            }
            let text = TextFormat.print(g)
            if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) } else { Swift.print(text, terminator: "") }
        }
    }

    struct Optimize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the pass pipeline: the optimised IR on standard output, a per-pass table on standard error.")
        @Argument(help: "Graph file.") var file: String
        @Option(parsing: .upToNextOption, help: "Passes to switch off (\(PassManager.standard.names.joined(separator: ", "))).")
        var disable: [String] = []
        @Option(help: "Print the IR after this pass (or 'all') to standard error.") var dumpAfter: String?

        func run() throws {
            let g = try readGraph(file)
            var pm = PassManager.standard
            pm.disabled = Set(disable)
            if let d = dumpAfter, d != "all", !pm.names.contains(d) {
                throw CLIError("--dump-after: unknown pass '\(d)'; passes are \(pm.names.joined(separator: ", "))")
            }
            let (out, report) = try pm.run(g) { name, graph in
                if dumpAfter == "all" || dumpAfter == name { stderr("// after \(name)\n" + TextFormat.print(graph)) }
            }
            func row(_ cells: [String]) -> String {
                zip(cells, [10, 11, 10, 7, 13]).map { c, w in
                    String(repeating: " ", count: max(0, w - c.count)) + c
                }.joined(separator: " ") + "\n"
            }
            var table = row(["pass", "ops before", "ops after", "fused", "MiB results"])
            table += row(["(input)", "", String(PassManager.opCount(g)), "", String(format: "%.2f", Double(PassManager.bytes(g)) / 1_048_576)])
            for r in report {
                table += row([r.pass, String(r.opsBefore), String(r.opsAfter), String(r.fusedKernels),
                              String(format: "%.2f", Double(r.intermediateBytes) / 1_048_576)])
            }
            var kinds: [String: Int] = [:]
            for v in out.values { if case .fused(let f)? = v.op { kinds[f.kind.rawValue, default: 0] += 1 } }
            table += "fused kernels by kind: " + (kinds.isEmpty ? "none" : kinds.keys.sorted().map { "\($0) \(kinds[$0]!)" }.joined(separator: ", ")) + "\n"
            stderr(table)
            Swift.print(TextFormat.print(out), terminator: "")
        }
    }

    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The static memory plan of the optimised graph: lower bound, arena, naive size, largest buffers.")
        @Argument(help: "Graph file.") var file: String
        @Flag(help: "Plan the graph as written, without the pass pipeline.") var noOptimize = false
        @Option(help: "How many of the largest buffers to list.") var top = 10
        @Flag(help: "Instead: the kernel plan of the cpu backend, one line per step (value, op, shapes, kernel; * where measured).")
        var kernels = false
        @OptionGroup(title: "Compiler (--kernels)") var compile: CompileFlags

        func run() throws {
            if kernels { return try printKernels() }
            var g = try readGraph(file)
            if !noOptimize { g = try PassManager.standard.run(g).graph }
            let plan = MemoryPlan.plan(g)
            try plan.check()
            func mib(_ b: Int) -> String { String(format: "%.2f MiB", Double(b) / 1_048_576) }
            Swift.print("graph \(g.name): \(plan.schedule.count) kernels, schedule: \(plan.scheduleName)")
            Swift.print("lower bound (most bytes live at once): \(mib(plan.lowerBoundBytes))")
            Swift.print(String(format: "arena: %@ (%.1f %% of the lower bound, %.1f %% of the naive size)", mib(plan.arenaBytes),
                               100 * Double(plan.arenaBytes) / Double(max(plan.lowerBoundBytes, 1)),
                               100 * Double(plan.arenaBytes) / Double(max(plan.naiveBytes, 1))))
            Swift.print("naive (every intermediate in its own buffer): \(mib(plan.naiveBytes))")
            Swift.print("in-place reuses: \(plan.buffers.filter { $0.reuses != nil }.count); checker: no live buffers overlap")
            Swift.print("\nlargest buffers:")
            for b in plan.buffers.sorted(by: { $0.bytes > $1.bytes }).prefix(max(top, 0)) {
                Swift.print("  \(mib(b.bytes).padding(toLength: 12, withPad: " ", startingAt: 0)) offset \(String(b.offset).padding(toLength: 12, withPad: " ", startingAt: 0)) steps \(b.start)...\(b.end)  %\(b.name)")
            }
        }

        func printKernels() throws {
            let g = try readGraph(file)
            var options = compile.options()
            options.optimize = !noOptimize
            guard options.backend == .cpu else { throw CLIError("--kernels: the interpreter runs the reference kernels only; use --backend cpu") }
            let exe = try Compiler.compile(g, for: Signature.of(g), options: options)
            let plan = exe.kernelPlan
            var counts: [String: Int] = [:]
            for (i, p) in plan.enumerated() {
                let shapes = p.operandShapes.map(Shape.describe).joined(separator: " ") + " -> " + Shape.describe(p.shape)
                Swift.print(String(format: "%4d  ", i) + "%\(p.value)  \(p.op)  \(shapes)  \(p.kernel)\(p.tuned ? " *" : "")")
                counts[p.kernel.profileLabel, default: 0] += 1
            }
            Swift.print("graph \(exe.graph.name): \(plan.count) steps; " + counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
            if let cache = options.tuningCache { Swift.print("* chosen by timing the candidates on this machine (cache \(cache))") }
        }
    }

    struct Dot: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Graphviz of the optimised graph, fused kernels as clusters.")
        @Argument(help: "Graph file.") var file: String
        @Flag(help: "The graph as written, without the pass pipeline.") var noOptimize = false

        func run() throws {
            var g = try readGraph(file)
            if !noOptimize { g = try PassManager.standard.run(g).graph }
            Swift.print(GraphDot.render(g), terminator: "")
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parameter count, FLOPs and the size of every tensor of a graph.")
        @Argument(help: "Graph file.") var file: String
        @Flag(help: "Only the summary, not every tensor.") var summary = false

        func run() throws {
            let g = try readGraph(file)
            func mib(_ n: Int) -> String { String(format: "%.2f MiB", Double(n * 4) / 1_048_576) }
            let params = g.parameters.reduce(0) { $0 + Shape.count(g[$1].shape) }
            let activations = g.values.filter { $0.op != nil }.reduce(0) { $0 + Shape.count($1.shape) }
            Swift.print("graph \(g.name): \(g.values.count) values, \(g.values.filter { $0.op != nil }.count) ops")
            Swift.print("parameters: \(g.parameters.count) tensors, \(params) scalars (\(mib(params)))")
            let live = try Passes.deadCodeElimination(g)
            let liveParams = live.parameters.reduce(0) { $0 + Shape.count(live[$1].shape) }
            if liveParams != params || live.values.count != g.values.count {
                Swift.print("after dead-code elimination: \(live.parameters.count) parameter tensors, \(liveParams) scalars; "
                            + "\(live.values.count) values; " + String(format: "%.3f GFLOP per call", Double(live.flops) / 1e9))
            }
            Swift.print(String(format: "flops: %.3f GFLOP per call", Double(g.flops) / 1e9))
            Swift.print("op results: \(activations) scalars (\(mib(activations)) if all were kept)")
            if summary { return }
            Swift.print("")
            Swift.print("kind   name                                       shape                    bytes        flops")
            for v in g.values {
                let kind: String
                var flops = 0
                switch v.definition {
                case .input: kind = "input"
                case .parameter: kind = "param"
                case .constant: kind = "const"
                case .op(let op, let operands):
                    kind = "op"
                    flops = op.flops(operands: operands.map { g[$0].shape }, result: v.shape)
                }
                Swift.print("\(kind.padding(toLength: 6, withPad: " ", startingAt: 0)) \(v.name.padding(toLength: 42, withPad: " ", startingAt: 0)) "
                            + "\(("f32" + Shape.describe(v.shape)).padding(toLength: 24, withPad: " ", startingAt: 0)) "
                            + "\(String(Shape.count(v.shape) * 4).padding(toLength: 12, withPad: " ", startingAt: 0)) \(flops)")
            }
        }
    }
}
