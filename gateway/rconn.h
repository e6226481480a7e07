/* One Redis connection of our own: the socket in a libevent bufferevent,
 * hiredis' redisReader to parse what comes back and redisFormatCommandArgv to
 * write, pipelined commands each with one reply callback and a deadline, and
 * pub/sub pushes handed to the owner, never paired with a command.
 *
 * It owns its socket, its buffers and the FIFO of commands waiting for a
 * reply. It knows nothing of channels, the heartbeat or reconnecting: its
 * owner (link.c) decides what a failure means. It must not call its owner
 * except through gw_rconn_ops and the reply callbacks.
 *
 * Why not hiredis' async layer (0.14.1): it pairs every reply with the oldest
 * pending callback before it looks for pushes, so a message arriving while a
 * command is pending would go to that command; it knows no `smessage`
 * (an assert aborts the process); it has no timeouts and no TLS.
 *
 * Bus thread only (or whichever one thread runs its event_base): no call here
 * is thread-safe, and the struct is opaque to every other file. */
#ifndef GW_RCONN_H
#define GW_RCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/read.h>

struct event_base;
struct gw_rconn;
struct ssl_ctx_st;
struct redisReply;

/* The one life cycle of a connection; gw_rconn_state_name gives each a word
 * for logs. Every move goes through one transition function that logs it
 * with its reason. */
enum gw_rconn_state {
    GW_RCONN_IDLE = 0,   /* made, no socket yet */
    GW_RCONN_CONNECTING, /* socket connecting (TLS: handshaking) */
    GW_RCONN_SETUP,      /* connected; AUTH/SELECT sent, not all answered */
    GW_RCONN_READY,      /* setup answered: commands flow */
    GW_RCONN_FAILED,     /* ended by an error: every callback was called; terminal */
    GW_RCONN_CLOSED,     /* ended by gw_rconn_free from inside a callback; terminal */
};
const char *gw_rconn_state_name(enum gw_rconn_state s);

/* The pub/sub pushes Redis sends on a subscribed connection (RESP2 arrays
 * whose first element names the kind). Confirmations may be solicited (the
 * answer to our SUBSCRIBE) or not (Redis 7 sends `sunsubscribe` on its own
 * when a shard channel's slot moves). */
enum gw_rconn_push {
    GW_RCONN_MESSAGE = 0,
    GW_RCONN_PMESSAGE,
    GW_RCONN_SMESSAGE,
    GW_RCONN_SUBSCRIBE,
    GW_RCONN_UNSUBSCRIBE,
    GW_RCONN_PSUBSCRIBE,
    GW_RCONN_PUNSUBSCRIBE,
    GW_RCONN_SSUBSCRIBE,
    GW_RCONN_SUNSUBSCRIBE,
    GW_RCONN_PUSH__COUNT
};

/* The answer to one command: reply is Redis' answer (an error reply is a
 * reply, REDIS_REPLY_ERROR), or NULL when no answer will come (the command
 * timed out, the connection failed or was freed). Called exactly once per
 * command that gw_rconn_command accepted. reply is borrowed for the call.
 * The callback may issue commands and may call gw_rconn_free. */
typedef void (*gw_rconn_reply_fn)(struct gw_rconn *c, const struct redisReply *reply, void *privdata);

/* Called on the loop's thread; each may issue commands and may call
 * gw_rconn_free on c (the free then waits until the callback returned). */
struct gw_rconn_ops {
    /* AUTH/SELECT were answered: the connection is READY. */
    void (*on_ready)(void *ctx, struct gw_rconn *c);
    /* The connection failed (why is static text; errstr has the detail).
     * Every pending reply callback was already called with NULL. Not called
     * for a connection its owner frees. */
    void (*on_fail)(void *ctx, struct gw_rconn *c, const char *why);
    /* A push (see enum gw_rconn_push); push is borrowed for the call and is
     * an array of at least 3 elements whose first is a string. */
    void (*on_push)(void *ctx, struct gw_rconn *c, enum gw_rconn_push kind, const struct redisReply *push);
};

struct gw_rconn_opts {
    const char *name;     /* for logs ("sub", "pub"); copied */
    const char *username; /* AUTH user (Redis 6 ACL) or NULL; copied */
    const char *password; /* AUTH password or NULL (then no AUTH); copied, wiped on free */
    int db;               /* SELECT db when not 0 */
    int connect_timeout_ms; /* connect + AUTH/SELECT answered */
    size_t max_out_bytes; /* commands written and not yet taken by the kernel */
    size_t max_in_bytes;  /* one reply not yet complete in the reader */
    /* TLS (rediss://): NULL for plain TCP; else the context (rtls.h), which
     * the connection references (SSL_CTX_up_ref) until it is freed. The TLS
     * handshake runs after the TCP connect, within connect_timeout_ms. */
    struct ssl_ctx_st *tls_ctx;
    const char *tls_name; /* name to verify and send (SNI); NULL: the host connected to; copied */
};

/* Allocates an IDLE connection on base. Copies opts; keeps base, ops and ctx,
 * which must outlive it. Never fails (aborts on OOM). */
struct gw_rconn *gw_rconn_new(struct event_base *base, const struct gw_rconn_opts *opts,
                              const struct gw_rconn_ops *ops, void *ctx);

/* Starts connecting an IDLE connection to host:port (resolved here, blocking,
 * as hiredis did) or, with host NULL, to the unix socket path. AUTH and
 * SELECT are queued first, so every command issued from now on follows them.
 * Returns 0: on_ready or on_fail follows from the loop, never from inside
 * this call (also when the name does not resolve or connect() fails at
 * once). Returns -EINVAL when the connection is not IDLE. */
int gw_rconn_connect(struct gw_rconn *c, const char *host, int port, const char *path);

/* Takes fd, an already connected stream socket (tests: one end of a
 * socketpair), as if a connect had just succeeded: AUTH/SELECT are queued
 * and the state is SETUP (READY at once when there is nothing to set up;
 * on_ready is then not called). Returns 0 or -EINVAL (not IDLE); the fd is
 * the connection's either way (closed by gw_rconn_free). */
int gw_rconn_adopt(struct gw_rconn *c, int fd);

/* Queues one command (argv[0] the verb) with a deadline timeout_ms from now;
 * copies the arguments; keeps privdata for the one cb call that follows (cb
 * may be NULL: the reply is dropped, an error reply logged). The commands of
 * the subscribe family (SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
 * SSUBSCRIBE, SUNSUBSCRIBE) need at least one argument besides the verb; their
 * confirmations, one per argument, go to on_push, and cb gets the last
 * confirmation (or the error reply, or NULL). A command sent while
 * CONNECTING or SETUP waits behind AUTH/SELECT.
 * Returns 0, or -ENOTCONN (FAILED, CLOSED or IDLE), -ENOBUFS (it would take
 * the output past max_out_bytes), -EINVAL (bad arguments): cb is then not
 * called. */
int gw_rconn_command(struct gw_rconn *c, int argc, const char *const *argv, const size_t *lens, int timeout_ms,
                     gw_rconn_reply_fn cb, void *privdata);

/* Stops (pause) or resumes reading the socket: backpressure from the owner.
 * Replies already parsed in one read are still handed out. Deadlines still
 * run. Idempotent. */
void gw_rconn_pause(struct gw_rconn *c, bool pause);

/* True when bytes are waiting, in the kernel or in the input buffer, that
 * have not been parsed yet (a stalled loop judging a missing answer reads
 * first). */
bool gw_rconn_readable(const struct gw_rconn *c);

/* Reads, without blocking, what the kernel holds for this connection (at
 * most max_bytes), parses it and throws it away, returning how many
 * message/pmessage/smessage pushes were in it (also those already parsed).
 * For an owner about to free a connection whose unhandled messages must be
 * counted, not lost silently. Under TLS only what was already decrypted is
 * counted (what the kernel holds is ciphertext). Does not call any callback. */
uint64_t gw_rconn_discard_messages(struct gw_rconn *c, size_t max_bytes);

enum gw_rconn_state gw_rconn_state(const struct gw_rconn *c);
/* The ctx given to gw_rconn_new (for reply callbacks, whose privdata is the
 * command's own). */
void *gw_rconn_owner(const struct gw_rconn *c);
/* Detail of the failure (the error reply, errno text, "timed out ..."),
 * or "" while nothing failed. Valid until the connection is freed. */
const char *gw_rconn_errstr(const struct gw_rconn *c);
/* Commands waiting for their reply; bytes in the output buffer. */
size_t gw_rconn_pending(const struct gw_rconn *c);
size_t gw_rconn_out_bytes(const struct gw_rconn *c);

/* Closes the socket and calls every pending reply callback with NULL (once
 * each, oldest first), then frees. Not on_fail. From inside one of its own
 * callbacks it only marks the connection CLOSED (every later command is
 * refused); the rest happens once that callback returned. NULL is a no-op. */
void gw_rconn_free(struct gw_rconn *c);

#endif
