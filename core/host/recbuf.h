/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A page of streamed records as text: what host->emit_record() collects
 * during a streaming operation, and what the sync engine reads from the
 * reply. Every string of the page lives in one growing buffer (NUL-
 * terminated, so the store binds them as they are); no cJSON tree is built
 * per record on the way from the plugin to the store.
 */
#ifndef AH_RECBUF_H
#define AH_RECBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct ah_recbuf ah_recbuf;

/** One record of the page. Strings point into the buffer: valid until the
 *  next append or ah_recbuf_free. updated_at may be NULL. */
typedef struct ah_recbuf_rec {
    const char *type;
    const char *remote_id;
    const char *updated_at;
    const char *raw;    /* one JSON value */
    const char *fields; /* one JSON value */
} ah_recbuf_rec;

ah_recbuf *ah_recbuf_new(void);
void ah_recbuf_free(ah_recbuf *b);
/** For reply attachments: ah_recbuf_free with a void pointer. */
void ah_recbuf_free_v(void *b);
/** Empties the page, keeping the memory (for the next page). */
void ah_recbuf_clear(ah_recbuf *b);

/** Appends a record; raw and fields are copied as given (the caller checked
 *  them). 0, or -1 out of memory (nothing appended). */
int ah_recbuf_add(ah_recbuf *b, const char *type, const char *remote_id,
                  const char *updated_at, const char *raw, size_t raw_len,
                  const char *fields, size_t fields_len);

size_t ah_recbuf_count(const ah_recbuf *b);
/** Bytes of text held (every record's strings with their NULs). */
size_t ah_recbuf_bytes(const ah_recbuf *b);
/** Record i (< count). */
void ah_recbuf_get(const ah_recbuf *b, size_t i, ah_recbuf_rec *out);

/** The page as the JSON array a streaming reply carries for callers other
 *  than the sync engine: [{type, remote_id, updated_at?, raw, fields}].
 *  NULL out of memory. */
cJSON *ah_recbuf_to_json(const ah_recbuf *b);

/** True when text[0..len) is exactly one JSON value (RFC 8259; whitespace
 *  around it allowed), nested at most 256 deep, that cJSON reads back whole
 *  (stored records are): no \u escape of a lone surrogate. Builds
 *  nothing. */
bool ah_json_valid(const char *text, size_t len);

#endif
