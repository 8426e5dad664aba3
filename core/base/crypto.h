/* SPDX-License-Identifier: Apache-2.0 */
/* Hashing, HMAC, authenticated encryption, randomness and encodings, all on
 * OpenSSL. Every function is thread-safe and keeps no state. */
#ifndef AH_CRYPTO_H
#define AH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AH_KEY_LEN 32        /* AES-256 host key */
#define AH_SHA256_HEX_LEN 64 /* without NUL */

/** Fills buf with cryptographically strong random bytes. 0 on success. */
int ah_random_bytes(void *buf, size_t len);
/** Writes 2*nbytes lowercase hex chars + NUL into out (size >= 2*nbytes+1). */
int ah_random_hex(char *out, size_t nbytes);
/** Random RFC 4122 version-4 UUID, 36 chars + NUL. */
int ah_uuid4(char out[37]);

/** SHA-256 of data (32 bytes; all zero in the unlikely event that OpenSSL
 *  cannot allocate). */
void ah_sha256(const void *data, size_t len, unsigned char out[32]);
/** SHA-256 of data as 64 lowercase hex chars + NUL. */
void ah_sha256_hex(const void *data, size_t len, char out[AH_SHA256_HEX_LEN + 1]);
/** HMAC-SHA256 raw (32 bytes). 0 on success. */
int ah_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                   unsigned char out[32]);
/** HMAC-SHA256 as lowercase hex (64 chars + NUL): the SDK's hmac_sha256_hex
 *  in either process. -1 (out "" when given) for a NULL key or out, NULL
 *  data of a non-zero length, a key longer than INT_MAX, or OpenSSL's
 *  failure; NULL data of length 0 is the empty message. */
int ah_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                       char out[AH_SHA256_HEX_LEN + 1]);

/** Constant-time comparison of two buffers of the same length; false when
 *  the lengths differ (the length itself is not secret). */
bool ah_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/** Constant-time comparison of two NUL-terminated strings. */
bool ah_ct_streq(const char *a, const char *b);

/** Base64 (standard alphabet, padded). Returns malloc'd NUL-terminated text,
 *  or NULL. */
char *ah_base64_encode(const void *data, size_t len);
/** Decodes base64; returns malloc'd bytes and sets *out_len, or NULL on
 *  invalid input. */
unsigned char *ah_base64_decode(const char *text, size_t *out_len);

/** Encrypts plaintext with AES-256-GCM under key (AH_KEY_LEN bytes), a fresh
 *  random 12-byte nonce, and `aad` as associated data (may be NULL). Returns
 *  malloc'd text "v1:" + base64(nonce || ciphertext || tag), or NULL. */
char *ah_seal(const unsigned char key[AH_KEY_LEN], const char *plaintext,
              const char *aad);
/** Reverses ah_seal. Returns malloc'd plaintext, or NULL when the text was
 *  tampered with, the key or aad differ, or it is not ah_seal output. */
char *ah_open_sealed(const unsigned char key[AH_KEY_LEN], const char *sealed,
                     const char *aad);
/** True when s looks like ah_seal output. */
bool ah_is_sealed(const char *s);

/** Loads the host key from `path` (64 hex chars), creating it with mode 0600
 *  when absent. 0 on success; on failure writes a reason into err. */
int ah_host_key_load(const char *path, unsigned char key[AH_KEY_LEN], char *err,
                     size_t errlen);

#endif
