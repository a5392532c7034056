// CSecp256k1 — the device-session signature primitives adrivefs needs from Debian's
// libsecp256k1, behind three plain functions (the library's context flags are macros
// Swift cannot import, and no libsecp256k1 type leaks out).
#ifndef CSECP256K1_H
#define CSECP256K1_H

#include <stddef.h>
#include <stdint.h>

/// 1 when `seckey` (32 bytes) is a valid secp256k1 secret key.
int csecp256k1_seckey_verify(const uint8_t *_Nonnull seckey);

/// Writes the 65-byte uncompressed public key (0x04 || X || Y). Returns 1 on success.
int csecp256k1_pubkey_uncompressed(const uint8_t *_Nonnull seckey, uint8_t *_Nonnull out65);

/// Signs a 32-byte digest with recoverable ECDSA (RFC 6979 nonce, low-S) and writes
/// r (32) || s (32) || recovery id (1). Returns 1 on success.
int csecp256k1_sign_recoverable(const uint8_t *_Nonnull seckey, const uint8_t *_Nonnull digest32,
                                uint8_t *_Nonnull out65);

/// Checks a signature produced above against an uncompressed public key (tests, strict mode).
int csecp256k1_verify(const uint8_t *_Nonnull pubkey65, const uint8_t *_Nonnull digest32,
                      const uint8_t *_Nonnull signature65);

#endif
