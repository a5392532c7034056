#include "CQRencode.h"

#include <qrencode.h>
#include <stdlib.h>
#include <string.h>

uint8_t *cqr_encode(const char *text, int *width) {
    QRcode *code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
    if (code == NULL) return NULL;
    size_t count = (size_t)code->width * (size_t)code->width;
    uint8_t *modules = malloc(count);
    if (modules != NULL) {
        // Bit 0 of each byte is the module's colour (the rest is libqrencode's bookkeeping).
        for (size_t i = 0; i < count; i++) modules[i] = code->data[i] & 1;
        *width = code->width;
    }
    QRcode_free(code);
    return modules;
}
