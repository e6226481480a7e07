/* JSON text without a tree: a strict validator and a string escaper. It owns
 * no memory and keeps no state, and it knows nothing of the protocol, so that
 * both the codec and the logger can use it. Any thread. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Strict RFC 8259 validator for one JSON text (any value, surrounding
 * whitespace allowed), including UTF-8 validity of strings. No allocation;
 * nesting deeper than 512 levels counts as invalid. Never keeps buf. */
bool gw_json_valid(const char *buf, size_t len);

/* Appends s[0..len) as a JSON string literal (with quotes) to out; returns the
 * number of bytes written. out must have room for 6*len+2 bytes, or exactly
 * gw_json_escape_len(s, len). Invalid UTF-8 becomes \ufffd, one per maximal
 * ill-formed subpart (as a browser's TextDecoder does). Cannot fail. */
size_t gw_json_escape(char *out, const char *s, size_t len);

/* Exactly the number of bytes gw_json_escape(out, s, len) writes, quotes
 * included, without writing: lets a caller size a buffer before filling it. */
size_t gw_json_escape_len(const char *s, size_t len);

#endif
