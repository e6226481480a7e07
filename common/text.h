/* Two strict helpers shared by the parsers of configuration text (config_opts.c,
 * addr.c): an error message into a caller's buffer, and decimal integers
 * without strtoll's leniency. Pure; any thread. */
#ifndef GW_TEXT_H
#define GW_TEXT_H

#include <stddef.h>

/* Formats into err (if err && errlen) and returns -EINVAL, so a parser can
 * `return gw_text_err(...)`. */
int gw_text_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Strict decimal: optional '-', digits, nothing else (strtoll alone would
 * accept leading spaces, '+' and trailing garbage). Returns 0, -EINVAL, or
 * -ERANGE when it does not fit a long long. */
int gw_text_parse_ll(const char *s, long long *out);

/* Reads all of path into a NUL-terminated buffer the caller owns (*out, *len
 * bytes before the NUL). For small secret files (keys): every byte read is
 * wiped before any buffer is freed on a failure path, and the caller wipes
 * what it gets. Returns 0, -errno from open/read, or -EFBIG when the file
 * holds more than max bytes. */
int gw_text_read_file(const char *path, size_t max, char **out, size_t *len);

#endif
