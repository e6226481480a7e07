/* The protocol's error codes (docs/PROTOCOL.md, "Errors"): the enum every
 * module that answers a client or counts its errors uses, and the stable
 * wire slug of each. */
#ifndef GW_ERR_H
#define GW_ERR_H

/* Stable error slugs; gw_err_slug() gives the wire text. */
enum gw_err {
    GW_ERR_NONE = 0,
    GW_ERR_BAD_JSON,
    GW_ERR_BAD_REQUEST,
    GW_ERR_UNKNOWN_TYPE,
    GW_ERR_BAD_CHANNEL,
    GW_ERR_TOO_MANY_SUBSCRIPTIONS,
    GW_ERR_MESSAGE_TOO_LARGE,
    GW_ERR_BINARY_NOT_SUPPORTED,
    GW_ERR_UNAVAILABLE,
    GW_ERR_RATE_LIMITED,
    GW_ERR_UNAUTHORIZED, /* no rights yet, or a token was refused */
    GW_ERR_FORBIDDEN,    /* outside the rights the client has */
    GW_ERR_STORE_LIMITED, /* over the client's budget of history bytes (--client-store-bytes) */
    GW_ERR__COUNT
};

const char *gw_err_slug(enum gw_err err);

#endif
