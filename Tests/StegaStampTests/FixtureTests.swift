import GraphAutodiff
import GraphIR
import GraphRuntime
import StegaStamp
import TestSupport
import XCTest

/// The TensorFlow reference tensors of Tests/Fixtures (see its README), through our IR, the
/// interpreter and our autodiff, and through the CPU backend.
final class FixtureTests: XCTestCase {
    func run(_ name: String, tolerance: Double = 1e-5, gradTolerance: Double = 1e-5, expectCompared: Int,
             file: StaticString = #filePath, line: UInt = #line,
             _ build: (GraphBuilder, (String) -> ValueID) -> [String: ValueID]) throws {
        let fx = try Fixture(name)
        for backend in TestBackend.allCases {
            let (failures, compared) = try checkFixture(fx, backend: backend, tolerance: tolerance, gradTolerance: gradTolerance, build: build)
            XCTAssertEqual(failures, [], "\(name) (\(backend))", file: file, line: line)
            XCTAssertEqual(compared, expectCompared, "\(name) (\(backend)) tensors compared", file: file, line: line)
        }
    }

    func testConv2dSame() throws {
        let fx = try Fixture("conv2d_same")
        let cases = fx.attrs["cases"] as! [String: [String: Any]]
        XCTAssertEqual(cases.count, 5)
        try run("conv2d_same", expectCompared: 5 + 9) { b, t in
            var outs: [String: ValueID] = [:]
            for (name, c) in cases {
                let x = t(c["input"] as! String), k = t(c["kernel"] as! String)
                let y = b.conv2dSame(x, k, stride: c["stride"] as! Int)
                // The padding the helper chose must be the fixture's.
                if case .conv2d(let attrs)? = b.graph[y].op {
                    XCTAssertEqual(Array(attrs.padding[0...1]), c["pad_top_bottom"] as! [Int], name)
                    XCTAssertEqual(Array(attrs.padding[2...3]), c["pad_left_right"] as! [Int], name)
                }
                outs["expected.\(name)"] = b.add(y, t(c["bias"] as! String))
            }
            return outs
        }
    }

    func testUpsampleNearest() throws {
        try run("upsample_nearest", tolerance: 0, expectCompared: 4) { b, t in
            ["expected.x2": b.upsampleNearest(t("input.x"), factor: 2), "expected.x8": b.upsampleNearest(t("input.x"), factor: 8)]
        }
    }

    func testRgbToYuv() throws {
        try run("rgb_to_yuv", expectCompared: 2) { b, t in ["expected.yuv": ImageOps.rgbToYuv(b, t("input.x"))] }
    }

    func testSecretBCE() throws {
        try run("secret_bce", expectCompared: 2) { b, t in
            ["expected.loss": ImageOps.secretLoss(b, logits: t("input.logits"), labels: t("input.labels"))]
        }
    }

    func testSTNSampler() throws {
        try run("stn_sampler", tolerance: 5e-5, gradTolerance: 5e-5, expectCompared: 4) { b, t in
            let x = t("input.x")
            let s = b.shape(x)
            return ["expected.out": ImageOps.spatialTransformer(b, x, theta: t("input.theta"), outHeight: s[1], outWidth: s[2]),
                    "expected.out_identity": ImageOps.spatialTransformer(b, x, theta: t("input.theta_identity"), outHeight: s[1], outWidth: s[2])]
        }
    }

    /// Forward and TensorFlow's registered gradient (what the original trained with).
    func testProjectiveTransformWithTFGradient() throws {
        try run("projective_transform", tolerance: 5e-5, gradTolerance: 5e-5, expectCompared: 4) { b, t in
            ["expected.warp_fwd": b.apply(.projectiveWarp(inverse: false, gradient: .tf), [t("input.images"), t("input.transforms_fwd")]),
             "expected.warp_inv": b.apply(.projectiveWarp(inverse: false, gradient: .tf), [t("input.images"), t("input.transforms_inv")])]
        }
    }

    /// The exact vector-Jacobian product (`grad_exact.*`), which `gradient: exact` gives.
    func testProjectiveTransformExactGradient() throws {
        let fx = try Fixture("projective_transform")
        for c in ["warp_fwd", "warp_inv"] {
            let b = GraphBuilder(name: "exact")
            let images = b.input("images", fx["input.images"].shape)
            let y = b.apply(.projectiveWarp(inverse: false, gradient: .exact), [images, b.constant(fx["input.transforms_\(c.dropFirst(5))"])])
            let loss = b.sum(b.mul(y, b.constant(fx["input.r.\(c)"])), axes: [0, 1, 2, 3])
            let grads = try Autodiff.gradient(in: b, of: loss, wrt: [images])
            b.output("g", grads[0])
            let out = try evaluate(try b.finish(), ["images": fx["input.images"]])
            let e = relativeErrors(out["g"]!, fx["grad_exact.\(c).images"])
            XCTAssertLessThan(e.max, 5e-5, c)
            // ... and it is not TF's registered gradient.
            XCTAssertGreaterThan(relativeErrors(out["g"]!, fx["grad.\(c).images"]).max, 1e-3, c)
        }
    }

    func testEdgeFalloff() throws {
        let fx = try Fixture("edge_falloff")
        let sizes = fx.attrs["sizes"] as! [Int]
        XCTAssertEqual(sizes.count, 3)
        for s in sizes {
            let e = relativeErrors(ImageOps.edgeFalloff(size: s), fx["expected.falloff.\(s)"])
            XCTAssertLessThanOrEqual(e.max, 1e-7, "size \(s)")
        }
    }

    func testBlurKernels() throws {
        let fx = try Fixture("blur_kernels")
        let a = fx.attrs
        let sigma = Float(a["sigma_gauss"] as! Double), theta = Float(a["theta"] as! Double)
        let sigLine = Float(a["sig_line"] as! Double), wLine = Float(a["w_line"] as! Double)
        try run("blur_kernels", expectCompared: 6) { b, t in
            let gauss = ImageOps.gaussianBlurKernel(b, sigma: b.constant(sigma))
            let line = ImageOps.lineBlurKernel(b, theta: b.constant(theta), sigma: b.constant(sigLine), width: b.constant(wLine))
            let image = t("input.image")
            return ["expected.gauss": gauss, "expected.line": line, "expected.nothing": ImageOps.identityBlurKernel(b),
                    "expected.blurred_gauss": b.conv2dSame(image, gauss, stride: 1),
                    "expected.blurred_line": b.conv2dSame(image, line, stride: 1)]
        }
    }
}

final class FalloffGraphTests: XCTestCase {
    /// The in-graph falloff (1 - g g^T in float32) against the float64-then-float32 fixture.
    func testInGraphFalloffMatchesTheFixture() throws {
        let fx = try Fixture("edge_falloff")
        for s in fx.attrs["sizes"] as! [Int] {
            let b = GraphBuilder(name: "falloff")
            b.output("f", ImageOps.edgeFalloff(b, height: s, width: s))
            let f = try evaluate(try b.finish(), [:])["f"]!
            XCTAssertLessThanOrEqual(relativeErrors(f, fx["expected.falloff.\(s)"]).max, 2e-7, "size \(s)")
        }
    }
}
