/* The wire slugs of the protocol's error codes. */
#include "err.h"

static const char *const err_slugs[GW_ERR__COUNT] = {
    [GW_ERR_NONE] = "none",
    [GW_ERR_BAD_JSON] = "bad_json",
    [GW_ERR_BAD_REQUEST] = "bad_request",
    [GW_ERR_UNKNOWN_TYPE] = "unknown_type",
    [GW_ERR_BAD_CHANNEL] = "bad_channel",
    [GW_ERR_TOO_MANY_SUBSCRIPTIONS] = "too_many_subscriptions",
    [GW_ERR_MESSAGE_TOO_LARGE] = "message_too_large",
    [GW_ERR_BINARY_NOT_SUPPORTED] = "binary_not_supported",
    [GW_ERR_UNAVAILABLE] = "unavailable",
    [GW_ERR_RATE_LIMITED] = "rate_limited",
    [GW_ERR_UNAUTHORIZED] = "unauthorized",
    [GW_ERR_FORBIDDEN] = "forbidden",
    [GW_ERR_STORE_LIMITED] = "store_limited",
};

const char *gw_err_slug(enum gw_err err)
{
    if ((unsigned)err >= GW_ERR__COUNT)
        return "unknown";
    return err_slugs[err];
}
