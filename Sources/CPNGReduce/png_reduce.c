// libpng's row API reports errors by longjmp, which must not cross Swift frames: the whole read
// happens here, under setjmp.
#include "png_reduce.h"
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const unsigned char *data; size_t size, pos; char *message; } source_t;

static void read_bytes(png_structp png, png_bytep out, png_size_t n) {
    source_t *s = png_get_io_ptr(png);
    if (s->pos + n > s->size) png_error(png, "truncated PNG");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void on_error(png_structp png, png_const_charp msg) {
    source_t *s = png_get_error_ptr(png);
    strncpy(s->message, msg, 255);
    s->message[255] = 0;
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int stegastamp_png_read_reduced(const unsigned char *data, size_t size, int factor, unsigned char *out,
                                unsigned *width, unsigned *height, char *message) {
    source_t src = {data, size, 0, message};
    message[0] = 0;
    if (factor < 1) { strcpy(message, "reduction factor below 1"); return -1; }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, on_error, on_warning);
    if (!png) { strcpy(message, "cannot initialise libpng"); return -1; }
    png_infop info = png_create_info_struct(png);
    // volatile: set after setjmp and read after a longjmp (freed there).
    unsigned char *volatile row = NULL;
    unsigned *volatile sums = NULL;
    int status = 0;
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); strcpy(message, "cannot initialise libpng"); return -1; }
    if (setjmp(png_jmpbuf(png))) {
        free(row);
        free(sums);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &src, read_bytes);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    *width = w;
    *height = h;
    double gamma = 0;
    // An sRGB chunk also makes libpng report sRGB's cHRM and gAMA: that is the colour space wanted.
    int isSRGB = png_get_valid(png, info, PNG_INFO_sRGB) != 0;
    int colourSpaceTagged = !isSRGB && (png_get_valid(png, info, PNG_INFO_iCCP) || png_get_valid(png, info, PNG_INFO_cHRM));
    int gammaOther = png_get_gAMA(png, info, &gamma) && !isSRGB && (gamma < 0.44 || gamma > 0.47);
    if ((type != PNG_COLOR_TYPE_RGB && type != PNG_COLOR_TYPE_GRAY) || png_get_valid(png, info, PNG_INFO_tRNS)
        || png_get_interlace_type(png, info) != PNG_INTERLACE_NONE || gammaOther || colourSpaceTagged) {
        status = 1;
    } else if (out != NULL) {
        if (depth == 16) png_set_scale_16(png);  // rounded, as the simplified API
        if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (type == PNG_COLOR_TYPE_GRAY) png_set_gray_to_rgb(png);
        png_read_update_info(png, info);
        size_t ow = (w + factor - 1) / factor;
        row = malloc((size_t)w * 3);
        sums = calloc(ow * 3, sizeof(unsigned));
        if (!row || !sums) png_error(png, "out of memory");
        unsigned char *line = row;  // plain copies for the loops (the volatile ones are for the error path)
        unsigned *acc = sums;
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, line, NULL);
            for (png_uint_32 x = 0; x < w; x++) {
                unsigned *s = acc + (x / factor) * 3;
                s[0] += line[x * 3]; s[1] += line[x * 3 + 1]; s[2] += line[x * 3 + 2];
            }
            if ((y + 1) % factor == 0 || y + 1 == h) {
                unsigned rows = y % factor + 1;
                unsigned char *o = out + (size_t)(y / factor) * ow * 3;
                for (size_t i = 0; i < ow; i++) {
                    unsigned cols = (i + 1) * factor <= w ? factor : w - i * factor;
                    unsigned n = rows * cols;
                    for (int c = 0; c < 3; c++) o[i * 3 + c] = (unsigned char)((acc[i * 3 + c] + n / 2) / n);
                }
                memset(acc, 0, ow * 3 * sizeof(unsigned));
            }
        }
        png_read_end(png, NULL);
    }
    free(row);
    free(sums);
    png_destroy_read_struct(&png, &info, NULL);
    return status;
}
