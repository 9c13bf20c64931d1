import FastKernelSupport
import GraphIR

/// A stride-1 convolution over a nearest upsampling (the U-Net's up-convolutions), which
/// `Passes.fusion` puts into one output kernel. Output row Y = f*y + p reads upsampled rows
/// Y - pt + i, that is source rows y + floor((p - pt + i) / f): for each phase p the kernel's taps
/// fall into a few groups that read the same source row, so the phase is a small stride-1
/// convolution of the source image with the taps of each group summed (for a 2x2 kernel over a
/// 2x upsampling: taps 1x1, 1x2, 2x1 and 2x2, 9/16 of the multiply-adds), stored into every f-th
/// row and column of the output. Zero padding of the upsampled image is exactly zero padding of
/// the source, and the upsampled tensor is never written.
extension CPUKernels {
    struct UpsamplingPhase {
        /// The phase's first output pixel.
        var py, px: Int
        /// Source-tap groups: `rowTaps[a]` are the kernel rows summed into the phase's row a.
        var rowTaps, colTaps: [[Int]]
        var geometry: DirectConvGeometry
    }

    /// Kernel taps 0..<k at phase p of factor f with padding `pad`, grouped by the source offset
    /// floor((p - pad + i) / f) they read; the first group's offset (<= 0).
    static func tapGroups(_ k: Int, phase p: Int, factor f: Int, pad: Int) -> (groups: [[Int]], first: Int) {
        func offset(_ i: Int) -> Int { let v = p - pad + i; return v >= 0 ? v / f : -((f - 1 - v) / f) }
        let first = offset(0)
        var groups = [[Int]](repeating: [], count: offset(k - 1) - first + 1)
        for i in 0..<k { groups[offset(i) - first].append(i) }
        return (groups, first)
    }

    /// The phases of conv(upsample(x, factors), kernel) on these direct kernels; nil where one of
    /// them is narrower than they take (the upsampling is then written out and convolved as is).
    static func upsamplingPhases(source: [Int], factors: [Int], kernel: [Int], padding: [Int], output: [Int],
                                 _ direct: DirectKernels) -> [UpsamplingPhase]? {
        let (n, h, w, ci) = (source[0], source[1], source[2], source[3])
        let (kh, kw, co, oh, ow) = (kernel[0], kernel[1], kernel[3], output[1], output[2])
        guard kh > 0, kw > 0, ci > 0, co > 0, n > 0, h > 0, w > 0 else { return nil }
        var phases: [UpsamplingPhase] = []
        for py in 0..<min(factors[0], oh) {
            for px in 0..<min(factors[1], ow) {
                let rows = (oh - py + factors[0] - 1) / factors[0], cols = (ow - px + factors[1] - 1) / factors[1]
                let (rowTaps, top) = tapGroups(kh, phase: py, factor: factors[0], pad: padding[0])
                let (colTaps, left) = tapGroups(kw, phase: px, factor: factors[1], pad: padding[2])
                let bottom = max(0, rows - 1 + top + rowTaps.count - 1 - (h - 1)), right = max(0, cols - 1 + left + colTaps.count - 1 - (w - 1))
                let g = DirectConvGeometry(input: [n, h, w, ci], kernel: [rowTaps.count, colTaps.count, ci, co], output: [n, rows, cols, co],
                                           strides: [1, 1], padding: [-top, bottom, -left, right])
                    .writingEvery(rowStep: factors[0], pixelStep: factors[1], ofRows: oh, cols: ow)
                guard direct.takes(g, wide: cols >= 8) else { return nil }
                phases.append(UpsamplingPhase(py: py, px: px, rowTaps: rowTaps, colTaps: colTaps, geometry: g))
            }
        }
        return phases
    }

    /// The kernel of conv(upsample(x, factors), k) (+ bias, ReLU): by phases on the direct kernels
    /// the planner chose for the full-size convolution, or, where it chose sgemm or a phase is too
    /// narrow, the upsampling written to scratch and convolved as the plan says.
    static func upsampledConvolution(factors: [Int], _ c: ConvAttributes, source: [Int], kernel kShape: [Int], output shape: [Int],
                                     choice: ConvKernel, epilogue: String?,
                                     operands xi: Int, _ ki: Int, bias bi: Int?, relu: Bool) -> (Kernel, KernelBody) {
        let co = kShape[3]
        let upsampled = [source[0], source[1] * factors[0], source[2] * factors[1], source[3]]
        guard let direct = choice.directKernels,
              let phases = upsamplingPhases(source: source, factors: factors, kernel: kShape, padding: c.padding, output: shape, direct) else {
            let prologue: KernelBody = { x, out, _ in upsample(x[xi], source, factors, upsampled, out) }
            return (.upsampledConvolution(choice, byPhases: false, epilogue: epilogue),
                    writtenOut(prologue, image: upsampled, c, kernel: kShape, output: shape, choice: choice, ki, bias: bi, relu: relu))
        }
        let (kw, ci, ow) = (kShape[1], kShape[2], shape[2])
        let run: KernelBody = { x, out, w in
            for phase in phases {
                // Combined taps [a][b][ci][co]: the sum of the kernel's taps in each group.
                let (taps, tapsX) = (phase.rowTaps.count, phase.colTaps.count)
                let combined = w.buffer(.flippedKernel, taps * tapsX * ci * co, of: Float.self)
                for a in 0..<taps {
                    for b in 0..<tapsX {
                        let dst = combined + (a * tapsX + b) * ci * co
                        dst.initialize(repeating: 0, count: ci * co)
                        for i in phase.rowTaps[a] {
                            for j in phase.colTaps[b] {
                                let src = x[ki] + (i * kw + j) * ci * co
                                for e in 0..<(ci * co) { dst[e] += src[e] }
                            }
                        }
                    }
                }
                direct.forward(x[xi], combined, out + (phase.py * ow + phase.px) * co, phase.geometry,
                               bias: bi.map { x[$0] }, relu: relu, workspace: w)
            }
        }
        return (.upsampledConvolution(choice, byPhases: true, epilogue: epilogue), onThreads(of: choice, run))
    }

    /// The kernel of conv(concat(parts, channels), k) (+ bias, ReLU): the direct kernel summing
    /// over the parts in turn where the plan chose it, so the concatenation is never written;
    /// under Winograd or sgemm the concatenation written to scratch and convolved as the plan says.
    static func concatenatedConvolution(parts: [Int], _ c: ConvAttributes, shapes: [[Int]], image: [Int], kernel kShape: [Int],
                                        output shape: [Int], choice: ConvKernel, epilogue: String?,
                                        _ ki: Int, bias bi: Int?, relu: Bool) -> (Kernel, KernelBody)? {
        let geometry = DirectConvGeometry(input: image, kernel: kShape, output: shape, strides: c.strides, padding: c.padding)
        guard let direct = choice.directKernels, !direct.useWinograd(geometry) else {
            let concat = Step(value: 0, op: .concat(axis: 3), operands: parts, operandShapes: parts.map { shapes[$0] }, shape: image,
                              argStart: 0, count: parts.count)
            guard let (_, copy) = kernel(for: concat, conv: { _ in .gemm }) else { return nil }
            let prologue: KernelBody = { x, out, w in
                withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: parts.count) { args in
                    for (k, p) in parts.enumerated() { args[k] = x[p] }
                    copy(UnsafePointer(args.baseAddress!), out, w)
                }
            }
            return (.concatenatedConvolution(choice, inParts: false, epilogue: epilogue),
                    writtenOut(prologue, image: image, c, kernel: kShape, output: shape, choice: choice, ki, bias: bi, relu: relu))
        }
        let channels = parts.map { shapes[$0][3] }
        let run: KernelBody = { x, out, w in
            direct.forward(parts: zip(parts, channels).map { (x[$0], $1) }, x[ki], out, geometry, bias: bi.map { x[$0] }, relu: relu, workspace: w)
        }
        return (.concatenatedConvolution(choice, inParts: true, epilogue: epilogue), onThreads(of: choice, run))
    }

    /// A convolution whose image `prologue` writes to scratch first, with the plan's kernel, then
    /// the bias and ReLU.
    static func writtenOut(_ prologue: @escaping KernelBody, image: [Int], _ c: ConvAttributes, kernel kShape: [Int], output shape: [Int],
                           choice: ConvKernel, _ ki: Int, bias bi: Int?, relu: Bool) -> KernelBody {
        let (n, co) = (Shape.count(shape), kShape[3])
        return onThreads(of: choice) { x, out, w in
            let u = w.buffer(.prologue, Shape.count(image), of: Float.self)
            prologue(x, u, w)
            conv2d(u, x[ki], image, kShape, c, shape, out, kernel: choice, w)
            guard let bi else { return }
            let bias = x[bi]
            for p in stride(from: 0, to: n, by: co) {
                for o in 0..<co {
                    let v = out[p + o] + bias[o]
                    out[p + o] = relu && v < 0 ? 0 : v
                }
            }
        }
    }

    /// The body on the calling thread alone where the plan chose a kernel's one-thread form.
    static func onThreads(of choice: ConvKernel, _ run: @escaping KernelBody) -> KernelBody {
        if case .oneThread = choice { return { x, out, w in Parallel.serially { run(x, out, w) } } }
        return run
    }
}
