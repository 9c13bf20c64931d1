/// This build's half of a register-tile row: 8 floats, one AVX2 register (a row is 16 channels).
/// FastKernelsAVX512 compiles the same kernel sources with 16 (one zmm register, rows of 32).
typealias Half = SIMD8<Float>
