import GraphIR
import GraphRuntime

/// LPIPS (Zhang et al. 2018, the `lpips` package, net='alex', version 0.1), the perceptual loss
/// of the original StegaStamp. The AlexNet and linear-head weights cannot be downloaded here, so
/// the network is built with parameters `lpips.*` that the user loads from a safetensors file
/// (`LPIPS.loadWeights`); without weights, use the SSIM loss instead.
public enum LPIPS {
    /// AlexNet's five conv layers: (out channels, kernel, stride, padding), max-pooled 3/2 after 1 and 2.
    public static let layers: [(channels: Int, kernel: Int, stride: Int, padding: Int)] =
        [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
    static let shift: [Float] = [-0.030, -0.088, -0.188]
    static let scale: [Float] = [0.458, 0.448, 0.450]

    /// Declares the parameters (zeros until loaded) and returns their values by name.
    static func parameters(_ b: GraphBuilder) -> [String: ValueID] {
        var p: [String: ValueID] = [:]
        var cin = 3
        for (i, l) in layers.enumerated() {
            for (name, shape) in [("lpips.conv\(i + 1).kernel", [l.kernel, l.kernel, cin, l.channels]),
                                  ("lpips.conv\(i + 1).bias", [l.channels]), ("lpips.lin\(i + 1).kernel", [l.channels])] {
                p[name] = b.graph.value(named: name) ?? b.parameter(name, shape, .zeros)
            }
            cin = l.channels
        }
        return p
    }

    static func features(_ b: GraphBuilder, _ x: ValueID, _ p: [String: ValueID]) -> [ValueID] {
        var h = b.div(b.sub(x, b.constant(Tensor(shape: [3], scalars: shift))), b.constant(Tensor(shape: [3], scalars: scale)))
        var taps: [ValueID] = []
        for (i, l) in layers.enumerated() {
            if i == 1 || i == 2 { h = b.apply(.maxPool(window: [3, 3], strides: [2, 2]), [h]) }
            let pad = l.padding
            h = b.conv2d(h, p["lpips.conv\(i + 1).kernel"]!, strides: [l.stride, l.stride], padding: [pad, pad, pad, pad])
            h = b.relu(b.add(h, p["lpips.conv\(i + 1).bias"]!))
            taps.append(h)
        }
        return taps
    }

    /// LPIPS distance between images in [-1, 1] ([B, H, W, 3]): [B], summed over the five layers of
    /// the spatial mean of lin_k((f0 / |f0| - f1 / |f1|)^2), norms over channels (eps 1e-10).
    public static func distance(_ b: GraphBuilder, _ x: ValueID, _ y: ValueID) -> ValueID {
        let p = parameters(b)
        let f0 = features(b, x, p), f1 = features(b, y, p)
        func normalize(_ f: ValueID) -> ValueID {
            // + 1e-20 inside the root keeps the gradient finite where a feature vector is all zero.
            let norm = b.add(b.sqrt(b.add(b.sum(b.square(f), axes: [3], keepDims: true), 1e-20)), 1e-10)
            return b.div(f, norm)
        }
        var total: ValueID? = nil
        for k in 0..<layers.count {
            let d = b.square(b.sub(normalize(f0[k]), normalize(f1[k])))
            let weighted = b.sum(b.mul(d, p["lpips.lin\(k + 1).kernel"]!), axes: [3])  // 1x1 conv, no bias
            let layer = b.mean(weighted, axes: [1, 2])
            total = total.map { b.add($0, layer) } ?? layer
        }
        return total!
    }

    /// Loads LPIPS weights saved from PyTorch into parameters `lpips.*`. Accepted names: the
    /// `lpips` package's state dict (`net.slice1.0.weight`, ..., `lin0.model.1.weight`) or
    /// torchvision's (`features.0.weight`, ...) plus `lin0.model.1.weight` ...; PyTorch layouts
    /// (OIHW kernels, [1, C, 1, 1] heads) are transposed to ours (HWIO, [C]).
    public static func loadWeights(path: String) throws -> [String: Tensor] {
        let file = try SafetensorsFile.read(path: path)
        let convIndex = [0, 3, 6, 8, 10]
        var out: [String: Tensor] = [:]
        func find(_ candidates: [String]) -> Tensor? { candidates.lazy.compactMap { file.tensors[$0] }.first }
        var cin = 3
        for (i, l) in layers.enumerated() {
            let idx = convIndex[i]
            let prefixes = ["features.\(idx).", "net.slice\(i + 1).\(idx).", "net.features.\(idx)."]
            guard let w = find(prefixes.map { $0 + "weight" }), let bias = find(prefixes.map { $0 + "bias" }) else {
                throw SafetensorsError(path, "no weights for AlexNet conv \(i + 1) (looked for \(prefixes.map { $0 + "weight" }.joined(separator: ", ")))")
            }
            guard w.shape == [l.channels, cin, l.kernel, l.kernel], bias.shape == [l.channels] else {
                throw SafetensorsError(path, "AlexNet conv \(i + 1): expected weight [\(l.channels),\(cin),\(l.kernel),\(l.kernel)] and bias [\(l.channels)], got \(Shape.describe(w.shape)) and \(Shape.describe(bias.shape))")
            }
            // OIHW -> HWIO
            var k = [Float](repeating: 0, count: w.count)
            for o in 0..<l.channels { for c in 0..<cin { for y in 0..<l.kernel { for x in 0..<l.kernel {
                k[((y * l.kernel + x) * cin + c) * l.channels + o] = w.scalars[((o * cin + c) * l.kernel + y) * l.kernel + x]
            } } } }
            out["lpips.conv\(i + 1).kernel"] = Tensor(shape: [l.kernel, l.kernel, cin, l.channels], scalars: k)
            out["lpips.conv\(i + 1).bias"] = bias
            guard let lin = find(["lin\(i).model.1.weight", "lin\(i).model.0.weight"]), lin.count == l.channels else {
                throw SafetensorsError(path, "no linear head lin\(i).model.1.weight of \(l.channels) weights")
            }
            out["lpips.lin\(i + 1).kernel"] = Tensor(shape: [l.channels], scalars: lin.scalars)
            cin = l.channels
        }
        return out
    }
}
