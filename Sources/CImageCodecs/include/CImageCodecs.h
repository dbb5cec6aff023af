#ifndef LOUPE_CIMAGECODECS_H
#define LOUPE_CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>
#include <turbojpeg.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include <gif_lib.h>
#include <tiffio.h>
#include <libheif/heif.h>

/// Result of the libpng decoder below: 8-bit samples, `channels` per pixel (1 gray, 2 gray+alpha,
/// 3 RGB, 4 RGBA). `pixels` is malloc'd; free it with `loupe_free`.
typedef struct {
    uint32_t width;
    uint32_t height;
    uint32_t channels;
    uint8_t *pixels;
    char message[160];
} loupe_png_result;

/// Decodes a PNG held in memory. Palette images are expanded, 16-bit samples keep their high byte
/// (as Pillow does), low-bit gray is scaled to 8 bits and tRNS becomes an alpha channel.
/// Returns 0 on success; otherwise `message` says why.
int loupe_png_decode(const uint8_t *data, size_t size, uint32_t max_side, loupe_png_result *out);

void loupe_free(void *pointer);

/// giflib reads through a callback; this one reads from a memory cursor.
typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
} loupe_memory_cursor;

static inline int loupe_gif_read(GifFileType *gif, GifByteType *buffer, int length) {
    loupe_memory_cursor *cursor = (loupe_memory_cursor *)gif->UserData;
    size_t available = cursor->size - cursor->offset;
    size_t count = (size_t)length < available ? (size_t)length : available;
    for (size_t i = 0; i < count; i++) buffer[i] = cursor->data[cursor->offset + i];
    cursor->offset += count;
    return (int)count;
}

static inline GifFileType *loupe_gif_open(loupe_memory_cursor *cursor, int *error) {
    return DGifOpen(cursor, loupe_gif_read, error);
}

/// libtiff prints warnings and errors to stderr by default; a library must stay quiet.
static inline void loupe_tiff_silence(void) {
    TIFFSetWarningHandler(NULL);
    TIFFSetErrorHandler(NULL);
}

/// libtiff reads through callbacks; these read from a memory cursor.
static inline tmsize_t loupe_tiff_read(thandle_t handle, void *buffer, tmsize_t length) {
    loupe_memory_cursor *cursor = (loupe_memory_cursor *)handle;
    if (cursor->offset >= cursor->size) return 0;
    size_t available = cursor->size - cursor->offset;
    size_t count = (size_t)length < available ? (size_t)length : available;
    const uint8_t *source = cursor->data + cursor->offset;
    uint8_t *target = (uint8_t *)buffer;
    for (size_t i = 0; i < count; i++) target[i] = source[i];
    cursor->offset += count;
    return (tmsize_t)count;
}
static inline tmsize_t loupe_tiff_write(thandle_t handle, void *buffer, tmsize_t length) { return -1; }
static inline toff_t loupe_tiff_seek(thandle_t handle, toff_t offset, int whence) {
    loupe_memory_cursor *cursor = (loupe_memory_cursor *)handle;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)cursor->offset : (int64_t)cursor->size;
    int64_t target = base + (int64_t)offset;
    if (target < 0) return (toff_t)-1;
    cursor->offset = (size_t)target;
    return (toff_t)target;
}
static inline int loupe_tiff_close(thandle_t handle) { return 0; }
static inline toff_t loupe_tiff_size(thandle_t handle) { return ((loupe_memory_cursor *)handle)->size; }
static inline int loupe_tiff_map(thandle_t handle, void **base, toff_t *size) { return 0; }
static inline void loupe_tiff_unmap(thandle_t handle, void *base, toff_t size) {}

static inline TIFF *loupe_tiff_open(loupe_memory_cursor *cursor) {
    return TIFFClientOpen("memory", "rm", (thandle_t)cursor, loupe_tiff_read, loupe_tiff_write,
                          loupe_tiff_seek, loupe_tiff_close, loupe_tiff_size, loupe_tiff_map, loupe_tiff_unmap);
}

static inline int loupe_tiff_dimensions(TIFF *tiff, uint32_t *width, uint32_t *height) {
    return TIFFGetField(tiff, TIFFTAG_IMAGEWIDTH, width) && TIFFGetField(tiff, TIFFTAG_IMAGELENGTH, height);
}

static inline uint16_t loupe_tiff_orientation(TIFF *tiff) {
    uint16_t orientation = 1;
    if (!TIFFGetField(tiff, TIFFTAG_ORIENTATION, &orientation)) return 1;
    return orientation;
}

#endif
