// CQRencode — a QR code's modules from Debian's libqrencode, behind one plain function
// (no libqrencode type leaks out).
#ifndef CQRENCODE_H
#define CQRENCODE_H

#include <stdint.h>

/// Encodes `text` (8-bit mode, error correction level M) and returns width × width bytes,
/// row by row, 1 for a dark module and 0 for a light one; `width` receives the side.
/// NULL on failure. The caller frees the result with `free`.
uint8_t *_Nullable cqr_encode(const char *_Nonnull text, int *_Nonnull width);

#endif
