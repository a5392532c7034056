#include "CSecp256k1.h"

#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

static secp256k1_context *context;
static pthread_once_t context_once = PTHREAD_ONCE_INIT;

static void create_context(void) { context = secp256k1_context_create(SECP256K1_CONTEXT_SIGN | SECP256K1_CONTEXT_VERIFY); }

static secp256k1_context *shared_context(void) {
    pthread_once(&context_once, create_context);
    return context;
}

int csecp256k1_seckey_verify(const uint8_t *seckey) {
    secp256k1_context *ctx = shared_context();
    return ctx != NULL && secp256k1_ec_seckey_verify(ctx, seckey);
}

int csecp256k1_pubkey_uncompressed(const uint8_t *seckey, uint8_t *out65) {
    secp256k1_context *ctx = shared_context();
    secp256k1_pubkey pubkey;
    size_t length = 65;
    if (ctx == NULL || !secp256k1_ec_pubkey_create(ctx, &pubkey, seckey)) return 0;
    return secp256k1_ec_pubkey_serialize(ctx, out65, &length, &pubkey, SECP256K1_EC_UNCOMPRESSED) && length == 65;
}

int csecp256k1_sign_recoverable(const uint8_t *seckey, const uint8_t *digest32, uint8_t *out65) {
    secp256k1_context *ctx = shared_context();
    secp256k1_ecdsa_recoverable_signature signature;
    int recid = 0;
    if (ctx == NULL || !secp256k1_ecdsa_sign_recoverable(ctx, &signature, digest32, seckey, NULL, NULL)) return 0;
    if (!secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, out65, &recid, &signature)) return 0;
    out65[64] = (uint8_t)recid;
    return 1;
}

int csecp256k1_verify(const uint8_t *pubkey65, const uint8_t *digest32, const uint8_t *signature65) {
    secp256k1_context *ctx = shared_context();
    secp256k1_pubkey pubkey;
    secp256k1_ecdsa_recoverable_signature recoverable;
    secp256k1_ecdsa_signature plain;
    if (ctx == NULL || !secp256k1_ec_pubkey_parse(ctx, &pubkey, pubkey65, 65)) return 0;
    if (!secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &recoverable, signature65, signature65[64])) return 0;
    secp256k1_ecdsa_recoverable_signature_convert(ctx, &plain, &recoverable);
    return secp256k1_ecdsa_verify(ctx, &plain, digest32, &pubkey);
}
