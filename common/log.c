/* Structured logging. Each line is built in a bounded buffer and written with
 * one write(), so lines from different threads never interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "json.h"

/* PIPE_BUF: container runtimes collect stderr through a pipe, and only writes
 * up to this size are atomic there. */
#define LOG_LINE_MAX 4096
/* Room always kept for the closing quote, truncation marker and newline. */
#define LOG_LINE_RESERVE 32

/* Written once by gw_log_setup() before any thread starts; read-only after. */
static enum gw_log_level cur_level = GW_LOG_INFO;
static enum gw_log_format cur_format = GW_LOG_TEXT;
static int cur_fd = 2;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void gw_log_setup(enum gw_log_level level, enum gw_log_format format, int fd)
{
    cur_level = level;
    cur_format = format;
    cur_fd = fd;
}

int gw_log_enabled(enum gw_log_level level)
{
    return level <= cur_level;
}

int gw_log_level_parse(const char *s, enum gw_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum gw_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int gw_log_format_parse(const char *s, enum gw_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = GW_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = GW_LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

/* ---- bounded line buffer ---- */

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool truncated; /* once set, every further put is dropped */
};

static size_t line_room(const struct line *l)
{
    return LOG_LINE_MAX - LOG_LINE_RESERVE - l->len;
}

static void line_put(struct line *l, const char *s, size_t n)
{
    if (l->truncated)
        return;
    if (n > line_room(l)) {
        l->truncated = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_put(l, s, strlen(s));
}

/* Appends into the reserve; only for the few closing bytes. */
static void line_force(struct line *l, const char *s)
{
    size_t n = strlen(s);

    if (n > LOG_LINE_MAX - l->len)
        n = LOG_LINE_MAX - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Length of one unit of gw_json_escape() output: an escape or one UTF-8
 * character. That output is always well-formed, so the first byte decides. */
static size_t escaped_unit(const char *p)
{
    unsigned char c = (unsigned char)p[0];

    if (c == '\\')
        return p[1] == 'u' ? 6 : 2;
    if (c < 0x80)
        return 1;
    if (c >= 0xf0)
        return 4;
    return c >= 0xe0 ? 3 : 2;
}

/* Appends s[0..n) JSON-escaped without quotes, cutting only between whole
 * escapes or characters so that a truncated line stays valid JSON/UTF-8. */
static void line_put_escaped(struct line *l, const char *s, size_t n)
{
    char small[512];
    size_t need = 6 * n + 2;
    char *tmp = need <= sizeof small ? small : gw_xmalloc(need);
    size_t m = gw_json_escape(tmp, s, n) - 1; /* drop the closing quote */
    size_t i = 1;                              /* and the opening one */

    if (!l->truncated) {
        size_t room = line_room(l);

        if (m - i > room) {
            size_t cut = i;

            while (cut + escaped_unit(tmp + cut) - i <= room)
                cut += escaped_unit(tmp + cut);
            line_put(l, tmp + i, cut - i);
            l->truncated = true;
        } else {
            line_put(l, tmp + i, m - i);
        }
    }
    if (tmp != small)
        free(tmp);
}

/* Text form: raw bytes, but control bytes escaped so one event stays one
 * line even when a value carries a newline from some library's message. */
static void line_put_raw(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n && !l->truncated; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];

        if (c >= 0x20 && c != 0x7f) {
            line_put(l, (const char *)&c, 1);
            continue;
        }
        if (c == '\n')
            line_puts(l, "\\n");
        else if (c == '\r')
            line_puts(l, "\\r");
        else if (c == '\t')
            line_puts(l, "\\t");
        else {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            line_puts(l, esc);
        }
    }
}

/* Drops a UTF-8 sequence cut in half by truncation in the text form. */
static void line_trim_partial_utf8(struct line *l)
{
    size_t back = 0;
    unsigned char lead;
    size_t want;

    while (back < 3 && l->len > back && ((unsigned char)l->buf[l->len - 1 - back] & 0xc0) == 0x80)
        back++;
    if (l->len <= back)
        return;
    lead = (unsigned char)l->buf[l->len - 1 - back];
    want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (lead >= 0xc0 && back + 1 < want)
        l->len -= back + 1;
}

/* ---- message/field splitting ---- */

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* Length of the key when s[0..n) starts with "key=", else 0. */
static size_t key_at(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && is_key_char(s[i]))
        i++;
    return i > 0 && i < n && s[i] == '=' ? i : 0;
}

/* Start of the first "key=" token at or after from that begins a word. */
static size_t next_field(const char *s, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++) {
        if ((i == 0 || s[i - 1] == ' ') && key_at(s + i, n - i))
            return i;
    }
    return n;
}

static size_t trim_right(const char *s, size_t n)
{
    while (n > 0 && s[n - 1] == ' ')
        n--;
    return n;
}

/* JSON form of one field. A value in double quotes loses its quotes and
 * backslash escapes; an unquoted one runs up to the next "key=" token, so a
 * value with spaces survives even when the caller forgot to quote it.
 * Returns where the next field starts. */
static size_t put_json_field(struct line *l, const char *s, size_t n, size_t at)
{
    size_t klen = key_at(s + at, n - at);
    size_t v = at + klen + 1;
    size_t next = n, checkpoint = l->len;
    bool quoted = false;

    line_puts(l, ",\"");
    line_put_escaped(l, s + at, klen);
    line_puts(l, "\":\"");
    if (v < n && s[v] == '"') {
        size_t j = v + 1;

        while (j < n && s[j] != '"')
            j += s[j] == '\\' && j + 1 < n ? 2 : 1;
        next = next_field(s, n, j + 1);
        /* Quoted only if nothing but spaces follows the closing quote. */
        quoted = j < n && trim_right(s, next) == j + 1;
        if (quoted) {
            char un[LOG_LINE_MAX];
            size_t ulen = 0;

            for (size_t k = v + 1; k < j; k++) {
                if (s[k] == '\\' && k + 1 < j)
                    k++;
                un[ulen++] = s[k];
            }
            line_put_escaped(l, un, ulen);
        }
    }
    if (!quoted) {
        next = next_field(s, n, v);
        line_put_escaped(l, s + v, trim_right(s, next) - v);
    }
    line_puts(l, "\"");
    if (l->truncated)
        l->len = checkpoint; /* drop the partial field: keep the JSON valid */
    return next;
}

static void format_time(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

static void write_line(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a logging failure */
        }
        s += w;
        n -= (size_t)w;
    }
}

void gw_log(enum gw_log_level level, const char *module, const char *fmt, ...)
{
    int saved_errno = errno;
    char text[LOG_LINE_MAX];
    char ts[64];
    struct line l;
    va_list ap;
    int tn;
    size_t n, msg_end;
    const char *lvl;

    if (level > cur_level)
        return;
    va_start(ap, fmt);
    tn = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (tn < 0)
        tn = 0;
    n = (size_t)tn < sizeof text ? (size_t)tn : sizeof text - 1;
    msg_end = next_field(text, n, 0);
    lvl = (unsigned)level < sizeof level_names / sizeof level_names[0] ? level_names[level]
                                                                        : "unknown";
    format_time(ts, sizeof ts);
    l.len = 0;
    l.truncated = false;
    if (!module)
        module = "-";

    if (cur_format == GW_LOG_JSON) {
        line_puts(&l, "{\"ts\":\"");
        line_puts(&l, ts);
        line_puts(&l, "\",\"level\":\"");
        line_puts(&l, lvl);
        line_puts(&l, "\",\"module\":\"");
        line_put_escaped(&l, module, strlen(module));
        line_puts(&l, "\",\"msg\":\"");
        line_put_escaped(&l, text, trim_right(text, msg_end));
        line_force(&l, "\"");
        for (size_t at = msg_end; at < n && !l.truncated;)
            at = put_json_field(&l, text, n, at);
        if (l.truncated || (size_t)tn >= sizeof text)
            line_force(&l, ",\"truncated\":true");
        line_force(&l, "}\n");
    } else {
        line_puts(&l, ts);
        line_puts(&l, " level=");
        line_puts(&l, lvl);
        line_puts(&l, " module=");
        line_put_raw(&l, module, strlen(module));
        line_puts(&l, " msg=\"");
        line_put_escaped(&l, text, trim_right(text, msg_end));
        line_force(&l, "\"");
        if (msg_end < n) {
            line_puts(&l, " ");
            line_put_raw(&l, text + msg_end, n - msg_end);
        }
        if (l.truncated)
            line_trim_partial_utf8(&l);
        if (l.truncated || (size_t)tn >= sizeof text)
            line_force(&l, " truncated=true");
        line_force(&l, "\n");
    }
    write_line(cur_fd, l.buf, l.len);
    errno = saved_errno;
}
