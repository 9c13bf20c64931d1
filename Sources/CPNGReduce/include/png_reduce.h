#ifndef STEGASTAMP_PNG_REDUCE_H
#define STEGASTAMP_PNG_REDUCE_H
#include <stddef.h>

/// Reads an in-memory PNG row by row into 8-bit RGB, each output pixel the rounded mean of a
/// factor x factor block (partial blocks at the right and bottom edges), without holding the
/// whole image: what a decoder's input needs of a large photo. Returns 0 on success, 1 where
/// this path does not apply (alpha or transparency, interlacing, a colour space other than
/// sRGB-like gamma, palette: the caller decodes the whole image instead), -1 on a corrupt PNG
/// with `message` (256 bytes) set. `out` holds ceil(width / factor) * ceil(height / factor) * 3
/// bytes; with `out` NULL only the header is read (width, height, and 0 or 1 as above).
int stegastamp_png_read_reduced(const unsigned char *data, size_t size, int factor, unsigned char *out,
                                unsigned *width, unsigned *height, char *message);

#endif
