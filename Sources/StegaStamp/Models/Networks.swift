import GraphIR

/// The StegaStamp networks of the original `models.py`, layer for layer. Parameter names follow
/// the reference fixtures (`conv1.kernel`, `secret_dense.kernel`, `stn.conv1.kernel`,
/// `dec.fc1.kernel`, `W_fc1`, ...), under a prefix (`encoder.`, `decoder.`, `critic.`) in combined graphs.
public enum StegaStampNetworks {
    /// `StegaStampEncoder`: secret [B, bits] + image [B, H, W, 3] -> residual [B, H, W, 3]. H and W
    /// must be multiples of 16 (the secret goes through Dense to H/8 x W/8 x 3, then nearest x8;
    /// 7500 = 50 x 50 x 3 at 400 x 400). With `includeDeadCode` the builder also emits what the
    /// original's Python computes and never uses (`conv10` and a second `conv9` call): they are in
    /// the graph and its parameters, but nothing reads them (dead-code elimination removes them).
    public static func encoder(_ b: GraphBuilder, secret: ValueID, image: ValueID, prefix: String = "",
                               seed: Int = 1, includeDeadCode: Bool = true) -> ValueID {
        var l = Layers(b, prefix: prefix, seed: seed)
        let s = b.shape(image)
        let (n, h, w) = (s[0], s[1], s[2])
        let sec = b.sub(secret, 0.5)
        let im = b.sub(image, 0.5)
        let dense = l.dense(sec, units: (h / 8) * (w / 8) * 3, name: "secret_dense", activation: .relu, initializer: .heNormal)
        let secretUp = b.upsampleNearest(b.reshape(dense, [n, h / 8, w / 8, 3]), factor: 8, name: prefix + "secret_up")
        let inputs = b.concat([secretUp, im], axis: 3, name: prefix + "inputs")
        func conv(_ x: ValueID, _ f: Int, _ k: Int, _ stride: Int, _ name: String) -> ValueID {
            l.conv(x, filters: f, kernel: k, stride: stride, name: name, activation: .relu, initializer: .heNormal)
        }
        let conv1 = conv(inputs, 32, 3, 1, "conv1")
        let conv2 = conv(conv1, 32, 3, 2, "conv2")
        let conv3 = conv(conv2, 64, 3, 2, "conv3")
        let conv4 = conv(conv3, 128, 3, 2, "conv4")
        let conv5 = conv(conv4, 256, 3, 2, "conv5")
        let up6 = conv(b.upsampleNearest(conv5, factor: 2), 128, 2, 1, "up6")
        let conv6 = conv(b.concat([conv4, up6], axis: 3), 128, 3, 1, "conv6")
        let up7 = conv(b.upsampleNearest(conv6, factor: 2), 64, 2, 1, "up7")
        let conv7 = conv(b.concat([conv3, up7], axis: 3), 64, 3, 1, "conv7")
        let up8 = conv(b.upsampleNearest(conv7, factor: 2), 32, 2, 1, "up8")
        let conv8 = conv(b.concat([conv2, up8], axis: 3), 32, 3, 1, "conv8")
        let up9 = conv(b.upsampleNearest(conv8, factor: 2), 32, 2, 1, "up9")
        let merged9 = b.concat([conv1, up9, inputs], axis: 3)
        let conv9 = conv(merged9, 32, 3, 1, "conv9")
        if includeDeadCode {
            // models.py: `conv9 = self.conv9(merge9)` (a second call) and `conv10 = self.conv10(conv9)`.
            let k9 = b.graph.value(named: prefix + "conv9.kernel")!, b9 = b.graph.value(named: prefix + "conv9.bias")!
            let again = b.relu(b.add(b.conv2dSame(merged9, k9, stride: 1), b9), name: prefix + "conv9_unused")
            _ = conv(again, 32, 3, 1, "conv10")
        }
        return l.conv(conv9, filters: 3, kernel: 1, name: "residual", activation: .none, initializer: .heNormal)
    }

    /// `StegaStampDecoder`: image [B, H, W, 3] -> (logits [B, bits], theta [B, 6], STN output).
    /// The localisation net ends in `W_fc1` (zeros) and `b_fc1` (identity), so a fresh STN is an
    /// identity resampler; the released training code never trained them (see `trainableParameters`).
    public static func decoder(_ b: GraphBuilder, image: ValueID, bits: Int, prefix: String = "", seed: Int = 2)
        -> (logits: ValueID, theta: ValueID, transformed: ValueID) {
        var l = Layers(b, prefix: prefix, seed: seed)
        let s = b.shape(image)
        let x = b.sub(image, 0.5)
        var h = l.conv(x, filters: 32, kernel: 3, stride: 2, name: "stn.conv1")
        h = l.conv(h, filters: 64, kernel: 3, stride: 2, name: "stn.conv2")
        h = l.conv(h, filters: 128, kernel: 3, stride: 2, name: "stn.conv3")
        h = l.dense(l.flatten(h), units: 128, name: "stn.fc", activation: .relu)
        let wfc = b.parameter(prefix + "W_fc1", [128, 6], .zeros)
        let bfc = b.parameter(prefix + "b_fc1", [6], .values([1, 0, 0, 0, 1, 0]))
        let theta = b.add(b.matmul(h, wfc), bfc, name: prefix + "theta")
        let t = ImageOps.spatialTransformer(b, x, theta: theta, outHeight: s[1], outWidth: s[2])
        var d = t
        for (i, (f, stride)) in [(32, 2), (32, 1), (64, 2), (64, 1), (64, 2), (128, 2), (128, 2)].enumerated() {
            d = l.conv(d, filters: f, kernel: 3, stride: stride, name: "dec.conv\(i + 1)")
        }
        d = l.dense(l.flatten(d), units: 512, name: "dec.fc1", activation: .relu)
        let logits = l.dense(d, units: bits, name: "dec.fc2")
        return (logits, theta, t)
    }

    /// `Discriminator` (the WGAN critic): image -> (mean of the heat map, heat map [B, H/16, W/16, 1]).
    public static func critic(_ b: GraphBuilder, image: ValueID, prefix: String = "", seed: Int = 3)
        -> (output: ValueID, heatmap: ValueID) {
        var l = Layers(b, prefix: prefix, seed: seed)
        var x = b.sub(image, 0.5)
        for (i, f) in [8, 16, 32, 64].enumerated() {
            x = l.conv(x, filters: f, kernel: 3, stride: 2, name: "conv\(i + 1)")
        }
        let heatmap = l.conv(x, filters: 1, kernel: 3, name: "conv5", activation: .none)
        return (b.mean(heatmap), heatmap)
    }

    /// The parameters the original trains: everything of the encoder and decoder except the
    /// decoder's `W_fc1` / `b_fc1` (unless `trainSTN`), and never the dead `conv10`.
    public static func trainableParameters(_ g: Graph, encoderPrefix: String = "encoder.", decoderPrefix: String = "decoder.",
                                           trainSTN: Bool = false, trainEncoder: Bool = true) -> [String] {
        g.parameters.map { g[$0].name }.filter { name in
            if name.hasPrefix(encoderPrefix) { return trainEncoder && !name.hasPrefix(encoderPrefix + "conv10.") }
            if name.hasPrefix(decoderPrefix) {
                return trainSTN || (name != decoderPrefix + "W_fc1" && name != decoderPrefix + "b_fc1")
            }
            return false
        }
    }
}
