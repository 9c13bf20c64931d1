/// This build's half of a register-tile row: 16 floats, one AVX-512 register (a row is 32
/// channels). The kernel sources are FastKernels' own (symbolic links), compiled for AVX-512.
typealias Half = SIMD16<Float>
