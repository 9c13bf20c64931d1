import Foundation
import GraphIR

/// The losses and metrics of `build_model`.
public enum Losses {
    /// YUV-weighted L2 with the edge falloff: d = yuv(encoded) - yuv(image),
    /// d += d * (falloff * gain), yuv_loss = mean over b, h, w of d^2 ([3]),
    /// image_loss = yuv_loss . yuvScales. `falloff` is [H, W], `gain` a scalar graph value.
    public static func imageLoss(_ b: GraphBuilder, encoded: ValueID, image: ValueID, falloff: ValueID, gain: ValueID,
                                 yuvScales: [Float]) -> (imageLoss: ValueID, yuvLoss: ValueID) {
        let s = b.shape(falloff)
        var d = b.sub(ImageOps.rgbToYuv(b, encoded), ImageOps.rgbToYuv(b, image))
        d = b.add(d, b.mul(d, b.reshape(b.mul(falloff, gain), [s[0], s[1], 1])))
        let yuv = b.mean(b.square(d), axes: [0, 1, 2], name: "yuv_loss")
        let image = b.sum(b.mul(yuv, b.constant(Tensor(shape: [3], scalars: yuvScales))), axes: [0], keepDims: false)
        return (image, yuv)
    }

    /// `get_secret_acc`: bit accuracy and the fraction of secrets decoded without a single error.
    public static func secretAccuracy(_ b: GraphBuilder, logits: ValueID, secret: ValueID) -> (bit: ValueID, string: ValueID) {
        let predicted = b.binary(.greater, logits, b.constant(0))
        let correct = b.binary(.equal, predicted, secret)
        let bits = Float(b.shape(secret)[1])
        let perSecret = b.sum(correct, axes: [1])
        return (b.mean(correct), b.mean(b.binary(.equal, perSecret, b.constant(bits))))
    }

    /// 1 - SSIM (Gaussian window 11, sigma 1.5, 'VALID', C1 = 0.01^2, C2 = 0.03^2, images in [0, 1]),
    /// averaged over positions, channels and the batch: the weight-free perceptual loss used when
    /// no LPIPS weights are given.
    public static func ssimLoss(_ b: GraphBuilder, _ x: ValueID, _ y: ValueID, window: Int = 11, sigma: Double = 1.5) -> ValueID {
        let c = b.shape(x)[3]
        var w = [Float](repeating: 0, count: window * window * c * c)
        var g = [Double](repeating: 0, count: window)
        for i in 0..<window { let d = Double(i - window / 2); g[i] = Foundation.exp(-d * d / (2 * sigma * sigma)) }
        let total = g.reduce(0, +) * g.reduce(0, +)
        for i in 0..<window { for j in 0..<window { for ch in 0..<c { w[((i * window + j) * c + ch) * c + ch] = Float(g[i] * g[j] / total) } } }
        let k = b.constant(Tensor(shape: [window, window, c, c], scalars: w), name: "ssim_window")
        func blur(_ v: ValueID) -> ValueID { b.conv2d(v, k, strides: [1, 1], padding: [0, 0, 0, 0]) }
        let mx = blur(x), my = blur(y)
        let sxx = b.sub(blur(b.square(x)), b.square(mx))
        let syy = b.sub(blur(b.square(y)), b.square(my))
        let sxy = b.sub(blur(b.mul(x, y)), b.mul(mx, my))
        let c1 = b.constant(0.0001), c2 = b.constant(0.0009)
        let num = b.mul(b.add(b.mul(b.mul(mx, my), 2), c1), b.add(b.mul(sxy, 2), c2))
        let den = b.mul(b.add(b.add(b.square(mx), b.square(my)), c1), b.add(b.add(sxx, syy), c2))
        return b.sub(b.constant(1), b.mean(b.div(num, den)))
    }
}
