/* JSON text helpers shared by the codec and the logger: a strict RFC 8259
 * validator and a string escaper. Pure: no allocation, no globals, no threads. */
#include "json.h"

#include <string.h>


/* ---- UTF-8 and string escaping ---- */

/* Returns the length (1..4) of the well-formed UTF-8 sequence at s[0..n), or
 * 0 when it is ill-formed; then *bad is the length of its maximal ill-formed
 * subpart (Unicode 15, section 3.9), so that each such subpart becomes one
 * U+FFFD exactly as a browser's TextDecoder would do it. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xbf;
    }
    return need + 1;
}

/* Escapes s[0..len) without quotes into out, or only counts the bytes when
 * out is NULL, so callers can size a frame exactly before writing it. */
static size_t escape_body(char *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0, i = 0;

    while (i < len) {
        unsigned char c = s[i];
        char short_esc = 0;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            if (out)
                out[o] = (char)c;
            o++;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t bad = 0, n = utf8_seq(s + i, len - i, &bad);

            if (n) {
                if (out)
                    memcpy(out + o, s + i, n);
                o += n;
                i += n;
            } else {
                if (out)
                    memcpy(out + o, "\\ufffd", 6);
                o += 6;
                i += bad;
            }
            continue;
        }
        switch (c) {
        case '"': short_esc = '"'; break;
        case '\\': short_esc = '\\'; break;
        case '\b': short_esc = 'b'; break;
        case '\f': short_esc = 'f'; break;
        case '\n': short_esc = 'n'; break;
        case '\r': short_esc = 'r'; break;
        case '\t': short_esc = 't'; break;
        default: break;
        }
        if (short_esc) {
            if (out) {
                out[o] = '\\';
                out[o + 1] = short_esc;
            }
            o += 2;
        } else {
            if (out) {
                memcpy(out + o, "\\u00", 4);
                out[o + 4] = hex[c >> 4];
                out[o + 5] = hex[c & 15];
            }
            o += 6;
        }
        i++;
    }
    return o;
}

size_t gw_json_escape(char *out, const char *s, size_t len)
{
    size_t n = escape_body(out + 1, s, len);

    out[0] = '"';
    out[n + 1] = '"';
    return n + 2;
}

size_t gw_json_escape_len(const char *s, size_t len)
{
    return escape_body(NULL, s, len) + 2;
}

/* ---- strict JSON validator ---- */

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* Value of four hex digits at p (caller checked they exist), or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        int d;

        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* p is at the opening quote. Returns the byte after the closing quote, or
 * NULL. Lone or mismatched \u surrogates are rejected, as jansson and
 * RFC 8259's "interoperable" subset do. */
static const unsigned char *scan_string(const unsigned char *p, const unsigned char *end)
{
    for (p++; p < end;) {
        unsigned char c = *p;

        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c >= 0x80) {
            size_t bad, n = utf8_seq(p, (size_t)(end - p), &bad);

            if (!n)
                return NULL;
            p += n;
            continue;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        if (end - p < 2)
            return NULL;
        if (p[1] != 'u') {
            if (p[1] == '\0' || !strchr("\"\\/bfnrt", p[1]))
                return NULL;
            p += 2;
            continue;
        }
        long cp = end - p >= 6 ? hex4(p + 2) : -1;

        if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
            return NULL;
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            long low;

            if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                return NULL;
            low = hex4(p + 2);
            if (low < 0xdc00 || low > 0xdfff)
                return NULL;
            p += 6;
        }
    }
    return NULL;
}

static const unsigned char *scan_number(const unsigned char *p, const unsigned char *end)
{
    if (p < end && *p == '-')
        p++;
    if (!is_digit(p, end))
        return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (is_digit(p, end))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end))
            return NULL;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return NULL;
        while (is_digit(p, end))
            p++;
    }
    return p;
}

static const unsigned char *scan_literal(const unsigned char *p, const unsigned char *end,
                                         const char *lit, size_t n)
{
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
        return NULL;
    return p + n;
}

/* Iterative so that hostile nesting costs a fixed 256-byte stack (one bit
 * per level: object or array), never recursion depth. */
bool gw_json_valid_depth(const char *buf, size_t len, size_t max_depth)
{
    enum { EXPECT_VALUE, EXPECT_KEY, AFTER_VALUE } state = EXPECT_VALUE;
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned char *end = p + len;
    unsigned char is_obj[GW_JSON_DEPTH_CAP / 8]; /* bit set: that level is an object */
    size_t depth = 0;

#define IN_OBJECT() (is_obj[(depth - 1) / 8] >> ((depth - 1) % 8) & 1)
    if (max_depth > GW_JSON_DEPTH_CAP)
        max_depth = GW_JSON_DEPTH_CAP;
    for (;;) {
        p = skip_ws(p, end);
        if (state == AFTER_VALUE) {
            if (depth == 0)
                return p == end;
            if (p == end)
                return false;
            if (*p == (IN_OBJECT() ? '}' : ']')) {
                depth--;
                p++;
            } else if (*p == ',') {
                p++;
                state = IN_OBJECT() ? EXPECT_KEY : EXPECT_VALUE;
            } else {
                return false;
            }
            continue;
        }
        if (state == EXPECT_KEY) {
            if (p == end || *p != '"' || !(p = scan_string(p, end)))
                return false;
            p = skip_ws(p, end);
            if (p == end || *p != ':')
                return false;
            p++;
            state = EXPECT_VALUE;
            continue;
        }
        if (p == end)
            return false;
        switch (*p) {
        case '{':
        case '[':
            if (depth == max_depth)
                return false;
            depth++;
            if (*p == '{')
                is_obj[(depth - 1) / 8] |= (unsigned char)(1u << ((depth - 1) % 8));
            else
                is_obj[(depth - 1) / 8] &= (unsigned char)~(1u << ((depth - 1) % 8));
            p = skip_ws(p + 1, end);
            if (p < end && *p == (IN_OBJECT() ? '}' : ']')) {
                depth--;
                p++;
                state = AFTER_VALUE;
            } else {
                state = IN_OBJECT() ? EXPECT_KEY : EXPECT_VALUE;
            }
            continue;
        case '"': p = scan_string(p, end); break;
        case 't': p = scan_literal(p, end, "true", 4); break;
        case 'f': p = scan_literal(p, end, "false", 5); break;
        case 'n': p = scan_literal(p, end, "null", 4); break;
        default: p = scan_number(p, end); break;
        }
        if (!p)
            return false;
        state = AFTER_VALUE;
    }
#undef IN_OBJECT
}

bool gw_json_valid(const char *buf, size_t len)
{
    return gw_json_valid_depth(buf, len, GW_JSON_MAX_DEPTH);
}

/* ---- reading a member without a tree ---- */

/* True when the string body s[0..e) (valid JSON, quotes excluded) unescapes
 * to exactly the ASCII text key. */
static bool key_equals(const unsigned char *s, const unsigned char *e, const char *key)
{
    static const char esc_from[] = "\"\\/bfnrt", esc_to[] = "\"\\/\b\f\n\r\t";

    while (s < e) {
        long c = *s++;

        if (c == '\\' && *s == 'u') {
            c = hex4(s + 1);
            s += 5;
        } else if (c == '\\') {
            c = esc_to[strchr(esc_from, *s++) - esc_from];
        }
        if (*key == '\0' || c != (unsigned char)*key++)
            return false;
    }
    return *key == '\0';
}

/* p is at a valid value; returns the byte after it. */
static const unsigned char *skip_value(const unsigned char *p, const unsigned char *end)
{
    size_t depth = 0;

    do {
        if (*p == '"') {
            p = scan_string(p, end);
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            depth--;
        else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != ',')
            while (p + 1 < end && !memchr(",}] \t\n\r", p[1], 7))
                p++;
        p++;
    } while (depth > 0 && p < end);
    return p;
}

bool gw_json_member(const char *buf, size_t len, const char *key, const char **val, size_t *vlen)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    bool found = false;

    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return false;
    for (p = skip_ws(p + 1, end); p < end && *p == '"';) {
        const unsigned char *k = p, *v;

        p = scan_string(p, end);
        bool match = key_equals(k + 1, p - 1, key);
        p = skip_ws(p, end) + 1; /* the ':' */
        v = skip_ws(p, end);
        p = skip_value(v, end);
        if (match) {
            *val = (const char *)v;
            *vlen = (size_t)(p - v);
            found = true;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    return found;
}
