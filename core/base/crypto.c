/* SPDX-License-Identifier: Apache-2.0 */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define AH_GCM_NONCE_LEN 12
#define AH_GCM_TAG_LEN 16
#define AH_SEAL_PREFIX "v1:"

static const char hexdigits[] = "0123456789abcdef";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ah_random_bytes(void *buf, size_t len)
{
    /* RAND_bytes takes an int; larger requests go in chunks. */
    unsigned char *p = buf;
    while (len > 0) {
        int chunk = len > (size_t)INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(p, chunk) != 1)
            return -1;
        p += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}

int ah_random_hex(char *out, size_t nbytes)
{
    unsigned char stackbuf[64];
    unsigned char *buf = nbytes <= sizeof stackbuf ? stackbuf : malloc(nbytes);
    if (buf == NULL)
        return -1;
    int rc = ah_random_bytes(buf, nbytes);
    if (rc == 0)
        to_hex(buf, nbytes, out);
    OPENSSL_cleanse(buf, nbytes);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

int ah_uuid4(char out[37])
{
    unsigned char b[16];
    if (ah_random_bytes(b, sizeof b) != 0)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char hex[33];
    to_hex(b, sizeof b, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    return 0;
}

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up
 * again on every digest (a lock and a table walk per record on the write
 * path). Kept for the life of the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* SHA-256 into md (32 bytes); false only when OpenSSL cannot allocate. */
static bool sha256_raw(const void *data, size_t len, unsigned char md[EVP_MAX_MD_SIZE])
{
    unsigned int mdlen = 0;
    pthread_once(&sha256_once, sha256_fetch);
    return EVP_Digest(data, len, md, &mdlen, sha256_md != NULL ? sha256_md : EVP_sha256(),
                      NULL) == 1 &&
           mdlen == 32;
}

void ah_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    if (!sha256_raw(data, len, md))
        memset(md, 0, 32);
    memcpy(out, md, 32);
}

void ah_sha256_hex(const void *data, size_t len, char out[AH_SHA256_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    /* EVP_Digest only fails on allocation failure; an empty string then
     * makes every comparison against a real hash fail safely. */
    if (!sha256_raw(data, len, md)) {
        out[0] = '\0';
        return;
    }
    to_hex(md, 32, out);
}

int ah_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                   unsigned char out[32])
{
    unsigned int outlen = 0;
    if (key_len > (size_t)INT_MAX)
        return -1;
    /* HMAC() with a NULL key means "no key"; use an empty non-NULL one. */
    static const unsigned char empty = 0;
    if (HMAC(EVP_sha256(), key != NULL ? key : &empty, (int)key_len,
             data != NULL ? data : &empty, len, out, &outlen) == NULL ||
        outlen != 32)
        return -1;
    return 0;
}

int ah_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                       char out[AH_SHA256_HEX_LEN + 1])
{
    unsigned char mac[32];
    if (out == NULL)
        return -1;
    if (key == NULL || (data == NULL && len > 0) || ah_hmac_sha256(key, key_len, data, len, mac) != 0) {
        out[0] = '\0';
        return -1;
    }
    to_hex(mac, sizeof mac, out);
    return 0;
}

bool ah_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    if (alen == 0)
        return true;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

bool ah_ct_streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    return ah_ct_equal(a, strlen(a), b, strlen(b));
}

char *ah_base64_encode(const void *data, size_t len)
{
    if (len > (size_t)INT_MAX / 4 * 3 - 3)
        return NULL;
    size_t outlen = 4 * ((len + 2) / 3);
    char *out = malloc(outlen + 1);
    if (out == NULL)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    if (n < 0 || (size_t)n != outlen) {
        free(out);
        return NULL;
    }
    out[outlen] = '\0';
    return out;
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

unsigned char *ah_base64_decode(const char *text, size_t *out_len)
{
    if (text == NULL)
        return NULL;
    size_t len = strlen(text);
    /* EVP_DecodeBlock silently skips surrounding whitespace and counts
     * padding as zero bytes: validate strictly first, then subtract the
     * padding from its length. */
    if (len % 4 != 0 || len > (size_t)INT_MAX)
        return NULL;
    size_t pad = 0;
    if (len > 0 && text[len - 1] == '=')
        pad++;
    if (len > 1 && text[len - 2] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++)
        if (!b64_char(text[i]))
            return NULL;
    size_t maxout = len / 4 * 3;
    unsigned char *out = malloc(maxout + 1);
    if (out == NULL)
        return NULL;
    if (len == 0) {
        out[0] = '\0';
        *out_len = 0;
        return out;
    }
    int n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
    if (n < 0 || (size_t)n != maxout) {
        free(out);
        return NULL;
    }
    *out_len = maxout - pad;
    out[*out_len] = '\0';
    return out;
}

bool ah_is_sealed(const char *s)
{
    return s != NULL && strncmp(s, AH_SEAL_PREFIX, strlen(AH_SEAL_PREFIX)) == 0;
}

char *ah_seal(const unsigned char key[AH_KEY_LEN], const char *plaintext,
              const char *aad)
{
    if (key == NULL || plaintext == NULL)
        return NULL;
    size_t ptlen = strlen(plaintext);
    size_t aadlen = aad != NULL ? strlen(aad) : 0;
    if (ptlen > (size_t)INT_MAX / 2 || aadlen > (size_t)INT_MAX)
        return NULL;
    size_t blen = AH_GCM_NONCE_LEN + ptlen + AH_GCM_TAG_LEN;
    unsigned char *buf = malloc(blen);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    char *b64 = NULL, *result = NULL;
    int outl = 0, finl = 0;
    if (buf == NULL || ctx == NULL)
        goto done;
    if (ah_random_bytes(buf, AH_GCM_NONCE_LEN) != 0)
        goto done;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AH_GCM_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, buf) != 1)
        goto done;
    if (aadlen > 0 &&
        EVP_EncryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad, (int)aadlen) != 1)
        goto done;
    outl = 0;
    if (ptlen > 0 && EVP_EncryptUpdate(ctx, buf + AH_GCM_NONCE_LEN, &outl,
                                       (const unsigned char *)plaintext,
                                       (int)ptlen) != 1)
        goto done;
    if (EVP_EncryptFinal_ex(ctx, buf + AH_GCM_NONCE_LEN + outl, &finl) != 1 ||
        (size_t)(outl + finl) != ptlen)
        goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AH_GCM_TAG_LEN,
                            buf + AH_GCM_NONCE_LEN + ptlen) != 1)
        goto done;
    b64 = ah_base64_encode(buf, blen);
    if (b64 == NULL)
        goto done;
    size_t rlen = strlen(AH_SEAL_PREFIX) + strlen(b64) + 1;
    result = malloc(rlen);
    if (result != NULL)
        snprintf(result, rlen, "%s%s", AH_SEAL_PREFIX, b64);
done:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, blen);
        free(buf);
    }
    free(b64);
    EVP_CIPHER_CTX_free(ctx);
    return result;
}

char *ah_open_sealed(const unsigned char key[AH_KEY_LEN], const char *sealed,
                     const char *aad)
{
    if (key == NULL || !ah_is_sealed(sealed))
        return NULL;
    size_t blen = 0;
    unsigned char *buf = ah_base64_decode(sealed + strlen(AH_SEAL_PREFIX), &blen);
    if (buf == NULL)
        return NULL;
    size_t aadlen = aad != NULL ? strlen(aad) : 0;
    char *pt = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int outl = 0, finl = 0;
    if (blen < AH_GCM_NONCE_LEN + AH_GCM_TAG_LEN || aadlen > (size_t)INT_MAX)
        goto fail;
    size_t ctlen = blen - AH_GCM_NONCE_LEN - AH_GCM_TAG_LEN;
    pt = malloc(ctlen + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (pt == NULL || ctx == NULL)
        goto fail;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AH_GCM_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, buf) != 1)
        goto fail;
    if (aadlen > 0 &&
        EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad, (int)aadlen) != 1)
        goto fail;
    outl = 0;
    if (ctlen > 0 && EVP_DecryptUpdate(ctx, (unsigned char *)pt, &outl,
                                       buf + AH_GCM_NONCE_LEN, (int)ctlen) != 1)
        goto fail;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AH_GCM_TAG_LEN,
                            buf + AH_GCM_NONCE_LEN + ctlen) != 1)
        goto fail;
    /* Final verifies the tag: any change to nonce, ciphertext, tag, key or
     * aad fails here. */
    if (EVP_DecryptFinal_ex(ctx, (unsigned char *)pt + outl, &finl) != 1 ||
        (size_t)(outl + finl) != ctlen)
        goto fail;
    pt[ctlen] = '\0';
    /* A plaintext with an embedded NUL cannot be returned as a C string
     * faithfully: treat it as not ours. */
    if (strlen(pt) != ctlen)
        goto fail;
    OPENSSL_cleanse(buf, blen);
    free(buf);
    EVP_CIPHER_CTX_free(ctx);
    return pt;
fail:
    if (pt != NULL) {
        OPENSSL_cleanse(pt, blen >= AH_GCM_NONCE_LEN + AH_GCM_TAG_LEN
                                ? blen - AH_GCM_NONCE_LEN - AH_GCM_TAG_LEN + 1
                                : 0);
        free(pt);
    }
    OPENSSL_cleanse(buf, blen);
    free(buf);
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
}

/* mkdir -p for the folder that holds `path`, mode 0700 for what it creates
 * (the folder holds the host key). */
static int mkdir_parents(const char *path, char *err, size_t errlen)
{
    char *dup = strdup(path);
    if (dup == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *slash = strrchr(dup, '/');
    if (slash == NULL || slash == dup) {
        free(dup);
        return 0;
    }
    *slash = '\0';
    for (char *p = dup + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(dup, 0700) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create folder %s: %s", dup, strerror(errno));
                free(dup);
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(dup);
    return 0;
}

static int host_key_read(const char *path, int fd, unsigned char key[AH_KEY_LEN],
                         char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat host key %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "host key %s is not a regular file", path);
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "host key %s is readable or writable by group/others (mode %03o); "
                 "run: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    char buf[2 * AH_KEY_LEN + 8];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "cannot read host key %s: %s", path, strerror(errno));
            OPENSSL_cleanse(buf, sizeof buf);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    /* Accept trailing whitespace (an editor's newline), nothing else. */
    size_t n = got;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    int rc = 0;
    if (n != 2 * AH_KEY_LEN) {
        rc = -1;
    } else {
        for (size_t i = 0; i < AH_KEY_LEN; i++) {
            int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                rc = -1;
                break;
            }
            key[i] = (unsigned char)(hi << 4 | lo);
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc != 0) {
        OPENSSL_cleanse(key, AH_KEY_LEN);
        snprintf(err, errlen, "host key %s must hold exactly %d hex characters", path,
                 2 * AH_KEY_LEN);
    }
    return rc;
}

/* Writes a fresh key into a private temporary file and links it into place,
 * so that a concurrent reader never sees a half-written key. Returns 0, 1
 * when another process created `path` first, or -1 with err set. */
static int host_key_create(const char *path, unsigned char key[AH_KEY_LEN], char *err,
                           size_t errlen)
{
    size_t tlen = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(tlen);
    if (tmp == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, tlen, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        snprintf(err, errlen, "cannot create host key %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    char hex[2 * AH_KEY_LEN + 2];
    int rc = -1;
    if (fchmod(fd, 0600) != 0) {
        snprintf(err, errlen, "cannot create host key %s: %s", path, strerror(errno));
        goto out;
    }
    if (ah_random_bytes(key, AH_KEY_LEN) != 0) {
        snprintf(err, errlen, "cannot generate a host key: no randomness");
        goto out;
    }
    to_hex(key, AH_KEY_LEN, hex);
    hex[2 * AH_KEY_LEN] = '\n';
    hex[2 * AH_KEY_LEN + 1] = '\0';
    size_t off = 0, len = 2 * AH_KEY_LEN + 1;
    while (off < len) {
        ssize_t w = write(fd, hex + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "cannot write host key %s: %s", path, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write host key %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(hex, sizeof hex);
    if (close(fd) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot write host key %s: %s", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && link(tmp, path) != 0) {
        if (errno == EEXIST) {
            rc = 1;
        } else {
            snprintf(err, errlen, "cannot create host key %s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    unlink(tmp);
    free(tmp);
    if (rc != 0)
        OPENSSL_cleanse(key, AH_KEY_LEN);
    return rc;
}

int ah_host_key_load(const char *path, unsigned char key[AH_KEY_LEN], char *err,
                     size_t errlen)
{
    char dummy[1];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (path == NULL || *path == '\0') {
        snprintf(err, errlen, "no host key path given");
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            int rc = host_key_read(path, fd, key, err, errlen);
            close(fd);
            return rc;
        }
        if (errno != ENOENT) {
            snprintf(err, errlen, "cannot open host key %s: %s", path, strerror(errno));
            return -1;
        }
        if (mkdir_parents(path, err, errlen) != 0)
            return -1;
        int rc = host_key_create(path, key, err, errlen);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return -1;
        /* rc == 1: another process created it meanwhile; read theirs. */
    }
    snprintf(err, errlen, "cannot load host key %s", path);
    return -1;
}
