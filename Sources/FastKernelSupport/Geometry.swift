/// The shape of one NHWC convolution as the direct and Winograd kernels see it (both instruction-set
/// builds of FastKernels take this one type, so callers choose between them at run time).
public struct DirectConvGeometry: Sendable {
    public var n, h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pb, pl, pr: Int
    /// Where the direct forward kernel stores output pixel (b, y, x): element
    /// b * outImageStride + y * outRowStride + x * outPixelStride of its output pointer. Dense NHWC
    /// by default; wider strides let one convolution write every other pixel of a larger tensor
    /// (the phases of an input gradient or of a convolution over a nearest upsampling).
    public var outPixelStride, outRowStride, outImageStride: Int

    public init(input: [Int], kernel: [Int], output: [Int], strides: [Int], padding: [Int]) {
        (n, h, w, ci) = (input[0], input[1], input[2], input[3])
        (kh, kw, co) = (kernel[0], kernel[1], kernel[3])
        (oh, ow) = (output[1], output[2])
        (sh, sw) = (strides[0], strides[1])
        (pt, pb, pl, pr) = (padding[0], padding[1], padding[2], padding[3])
        (outPixelStride, outRowStride, outImageStride) = (co, ow * co, oh * ow * co)
    }

    /// Whether the output is the dense NHWC tensor (Winograd and the gradients need it).
    public var denseOutput: Bool { outPixelStride == co && outRowStride == ow * co && outImageStride == oh * ow * co }

    /// The same convolution storing output pixel (y, x) at pixel (y * rowStep, x * pixelStep) of an
    /// NHWC tensor `rows` x `cols` wide (the caller offsets the pointer to the phase's first pixel).
    public func writingEvery(rowStep: Int, pixelStep: Int, ofRows rows: Int, cols: Int) -> DirectConvGeometry {
        var g = self
        g.outPixelStride = pixelStep * co
        g.outRowStride = rowStep * cols * co
        g.outImageStride = rows * cols * co
        return g
    }
}
