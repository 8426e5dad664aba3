/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The framing between the daemon and a plugin host process (isolate.c,
 * plugin_host.c): each message is one JSON text preceded by its length as 4
 * bytes, big-endian, over a stream socket (optionally followed, after a NUL,
 * by a binary tail: ah_frame_send_tail). Both ends are ours and trusted
 * only as far as a plugin process can be: a frame longer than
 * AH_FRAME_MAX is a protocol error, never an allocation.
 */
#ifndef AH_FRAME_H
#define AH_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct ah_ring;

#define AH_FRAME_MAX (64u * 1024 * 1024)
/* The most JSON values (cJSON nodes) a frame's text may make: counted
 * before it is parsed, as a tree takes ~40 times the bytes of text such as
 * [0,0,...] (a frame of AH_FRAME_MAX of it, 2.6 GB). A page of 500 records
 * makes ~100,000. */
#define AH_FRAME_NODES_MAX (1u << 20)
/* What one node of a parsed frame takes, for weighing frames that wait
 * (a cJSON and its allocation's overhead). */
#define AH_FRAME_NODE_BYTES 80
/** Calls a plugin process serves at once, one thread of its pool each
 *  (plugin_host.c); the daemon sends it no more (isolate.c), so that no
 *  call waits there for a thread while its deadline runs. */
#define AH_FRAME_CALLS_MAX 32
/** What the senders return for a message that would make a frame longer
 *  than AH_FRAME_MAX: nothing was sent, the stream is intact. */
#define AH_FRAME_TOO_LARGE (-2)
/** The frame a plugin process sends from its fault handler when it dies
 *  at its memory limit (written whole, without allocating; the daemon
 *  also looks for it in the socket of a process that died idle). */
#define AH_FRAME_OOM "\0\0\0\x0b{\"t\":\"oom\"}"

/** Sends `msg` as one frame (MSG_NOSIGNAL: a dead peer is an error, not
 *  SIGPIPE). 0; -1 when the peer is gone or memory runs out;
 *  AH_FRAME_TOO_LARGE (nothing sent). */
int ah_frame_send(int fd, const cJSON *msg);
/** As ah_frame_send, with `tail_len` bytes of `tail` after the text in the
 *  same frame (separated by a NUL, which JSON text never holds): bulk data
 *  that needs no escaping and no parse (the emitted records of a batch). */
int ah_frame_send_tail(int fd, const cJSON *msg, const void *tail, size_t tail_len);
/** As ah_frame_send_tail, into `ring` when it is not NULL (ring.h). */
int ah_frame_send_via(int fd, struct ah_ring *ring, const cJSON *msg, const void *tail,
                      size_t tail_len);
/** Appends `msg` (with `tail_len` bytes of `tail`, as ah_frame_send_tail)
 *  as one frame to the buffer *buf (*len bytes used of *cap; grown with
 *  realloc, freed by the caller): several frames then leave in one write
 *  (ah_frame_write). 0; -1 out of memory, AH_FRAME_TOO_LARGE (*buf unchanged
 *  either way). */
int ah_frame_append(unsigned char **buf, size_t *len, size_t *cap, const cJSON *msg,
                    const void *tail, size_t tail_len);
/** Writes `len` bytes (frames from ah_frame_append) as ah_frame_send does. */
int ah_frame_write(int fd, const void *buf, size_t len);
/** As ah_frame_write, into `ring` when it is not NULL (ring.h). */
int ah_frame_put(int fd, struct ah_ring *ring, const void *buf, size_t len);
/** Reads one whole frame into *msg (transferred). Blocks. 0; -1 at end of
 *  stream, on a read error, an oversize frame or text that is not a JSON
 *  object. */
int ah_frame_recv(int fd, cJSON **msg);

/** A buffered reader of frames: one read() takes whatever the peer has
 *  written (often several frames, or a frame's header and text together)
 *  instead of two per frame. Zeroed, then ah_frame_reader_reset. */
typedef struct ah_frame_reader {
    int fd;
    /* Not NULL: bytes come from this ring instead (ah_frame_reader_ring);
     * fd then only sleeps and ends. */
    struct ah_ring *ring;
    unsigned char *buf;
    size_t cap, start, end; /* buf[start, end) is read and not yet consumed */
    /* Set when a read refused what the peer sent (a bad length, a tail
     * where none may be, text that is no JSON object, a frame cut short:
     * `stalled`), as against the end of the stream or a read error. */
    bool broken;
    /* > 0: once part of a frame is read, the whole of it must have come
     * within this many milliseconds, else the read fails (broken, stalled):
     * a peer that sends a frame's first bytes and then nothing must not
     * hold the reading thread for good. 0: wait (the reset keeps it). */
    int stall_ms;
    bool stalled;
    /* > 0: a frame whose JSON text would make more values than this is
     * refused before it is parsed (broken): the daemon's reader of a
     * plugin process (AH_FRAME_NODES_MAX). 0: no limit (the reset keeps
     * it; a plugin process reads the daemon's frames without one: a
     * record found in the store may hold what its provider sent). */
    size_t nodes_max;
    /* The last frame read: its length on the wire (prefix included), and
     * the JSON values its text made (at most: AH_FRAME_NODES_MAX). */
    size_t last_len;
    size_t last_nodes;
} ah_frame_reader;

/** Reads from fd from now on, dropping whatever was buffered (a new peer). */
void ah_frame_reader_reset(ah_frame_reader *r, int fd);
/** Reads from `ring` from now on (ring.h). False when bytes already read
 *  from the socket wait in the buffer: the peer wrote past what it may
 *  write there (the switch is the caller's protocol's). */
bool ah_frame_reader_ring(ah_frame_reader *r, struct ah_ring *ring);
/** Frees the buffer (the fd is the caller's). */
void ah_frame_reader_free(ah_frame_reader *r);
/** True when a whole frame is buffered: ah_frame_read will not block. */
bool ah_frame_buffered(const ah_frame_reader *r);
/** As ah_frame_recv, through the reader's buffer. */
int ah_frame_read(ah_frame_reader *r, cJSON **msg);
/** As ah_frame_read, also taking a frame's tail (ah_frame_send_tail): a
 *  malloc'd copy in *tail (NULL: none; NUL-terminated past its end) and
 *  its length. ah_frame_read refuses
 *  a frame with a tail. */
int ah_frame_read_tail(ah_frame_reader *r, cJSON **msg, unsigned char **tail, size_t *tail_len);

/** An integer for a frame: a number written as its digits. cJSON prints
 *  every number with "%1.15g" and reads it back with sscanf to check it,
 *  ~3,000 instructions each: about twenty of them went with every ERP
 *  create through an isolated plugin. The other end reads a number. NULL
 *  when out of memory. */
cJSON *ah_frame_int(long long v);
/** As ah_frame_int, added to `obj` as `key`; false when out of memory. */
bool ah_frame_add_int(cJSON *obj, const char *key, long long v);

/** Bytes as a JSON string member: text without NUL as "key", anything else
 *  base64 as "key_b64". */
int ah_frame_put_bytes(cJSON *obj, const char *key, const char *data, size_t len);
/** Reads what ah_frame_put_bytes wrote: a malloc'd NUL-terminated copy in
 *  *out and its length; *out NULL when neither member is there. -1 on bad
 *  base64 or out of memory. */
int ah_frame_get_bytes(const cJSON *obj, const char *key, char **out, size_t *len);

#endif
