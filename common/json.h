/* JSON text without a tree: a strict validator and a string escaper. It owns
 * no memory and keeps no state, and it knows nothing of the protocol, so that
 * both the codec and the logger can use it. Any thread. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting of arrays and objects that a payload (a Redis message, a
 * client's publish "data") may have and still be sent as JSON. */
#define GW_JSON_MAX_DEPTH 512

/* Deepest nesting gw_json_valid_depth() can check: jansson's own parse limit
 * (JSON_PARSER_MAX_DEPTH), so that every text jansson loads can be checked. */
#define GW_JSON_DEPTH_CAP 2048

/* Strict RFC 8259 validator for one JSON text (any value, surrounding
 * whitespace allowed), including UTF-8 validity of strings. No allocation;
 * nesting deeper than GW_JSON_MAX_DEPTH levels counts as invalid. Never
 * keeps buf. */
bool gw_json_valid(const char *buf, size_t len);

/* gw_json_valid with nesting up to max_depth levels; max_depth above
 * GW_JSON_DEPTH_CAP counts as GW_JSON_DEPTH_CAP. */
bool gw_json_valid_depth(const char *buf, size_t len, size_t max_depth);

/* buf[0..len) must be text gw_json_valid_depth() accepts. When it is an
 * object with a top-level member named key (NUL-terminated ASCII, compared
 * after unescaping, so "\u0069d" names "id"), returns true and points
 * *val and *vlen at the raw text of the last such member's value, as jansson
 * keeps the last of repeated keys. Never allocates. */
bool gw_json_member(const char *buf, size_t len, const char *key, const char **val, size_t *vlen);

/* Appends s[0..len) as a JSON string literal (with quotes) to out; returns the
 * number of bytes written. out must have room for 6*len+2 bytes, or exactly
 * gw_json_escape_len(s, len). Invalid UTF-8 becomes \ufffd, one per maximal
 * ill-formed subpart (as a browser's TextDecoder does). Cannot fail. */
size_t gw_json_escape(char *out, const char *s, size_t len);

/* Exactly the number of bytes gw_json_escape(out, s, len) writes, quotes
 * included, without writing: lets a caller size a buffer before filling it. */
size_t gw_json_escape_len(const char *s, size_t len);

#endif
