/// The shape of one NHWC convolution as the direct and Winograd kernels see it (both instruction-set
/// builds of FastKernels take this one type, so callers choose between them at run time).
public struct DirectConvGeometry: Sendable {
    public var n, h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pb, pl, pr: Int
    public init(input: [Int], kernel: [Int], output: [Int], strides: [Int], padding: [Int]) {
        (n, h, w, ci) = (input[0], input[1], input[2], input[3])
        (kh, kw, co) = (kernel[0], kernel[1], kernel[3])
        (oh, ow) = (output[1], output[2])
        (sh, sw) = (strides[0], strides[1])
        (pt, pb, pl, pr) = (padding[0], padding[1], padding[2], padding[3])
    }
}
