/* Origin allow-list: strict parsing of the Origin and Host headers and of the
 * list entries, then a plain comparison. Strict because the header is
 * attacker-chosen on the non-browser side and browser-chosen on the other:
 * anything a browser would not send (a path, user info, "null", odd bytes)
 * is refused rather than guessed at. */
#include "origin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "text.h"

enum part_mode {
    PART_ORIGIN, /* scheme required, no wildcard */
    PART_HOST,   /* no scheme, no wildcard */
    PART_RULE,   /* scheme optional, "*." allowed */
};

struct part {
    unsigned scheme; /* 0 when absent */
    bool wild;
    int port; /* 0 when absent */
    char host[GW_ORIGIN_HOST_MAX + 1];
};

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int default_port(unsigned scheme)
{
    return scheme == GW_ORIGIN_HTTPS ? 443 : 80;
}

static bool ieq(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (lower(s[i]) != word[i])
            return false;
    }
    return true;
}

/* Parses s[0..len) per mode into *p. Returns NULL or the reason it is malformed. */
static const char *parse_part(const char *s, size_t len, enum part_mode mode, struct part *p)
{
    size_t i = 0, h = 0;

    memset(p, 0, sizeof *p);
    if (len == 0)
        return "empty";
    if (len > GW_ORIGIN_MAX)
        return "too long";
    for (size_t k = 0; k + 2 < len; k++) {
        if (s[k] == ':' && s[k + 1] == '/' && s[k + 2] == '/') {
            if (mode == PART_HOST)
                return "unexpected scheme";
            if (ieq(s, k, "http"))
                p->scheme = GW_ORIGIN_HTTP;
            else if (ieq(s, k, "https"))
                p->scheme = GW_ORIGIN_HTTPS;
            else
                return "scheme must be http or https";
            i = k + 3;
            break;
        }
        if (!is_alnum(s[k]) && s[k] != '+' && s[k] != '-' && s[k] != '.')
            break; /* not a scheme: the host check below reports it */
    }
    if (mode == PART_ORIGIN && !p->scheme)
        return "no scheme://";
    if (mode == PART_RULE && len - i >= 2 && s[i] == '*' && s[i + 1] == '.') {
        p->wild = true;
        i += 2;
    }
    if (i < len && s[i] == '[') {
        if (p->wild)
            return "a wildcard needs a DNS name";
        p->host[h++] = '[';
        for (i++; i < len && s[i] != ']'; i++) {
            if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
                return "bad IPv6 address";
            if (h + 2 > 47)
                return "bad IPv6 address";
            p->host[h++] = lower(s[i]);
        }
        if (i == len || h < 3)
            return "bad IPv6 address";
        p->host[h++] = ']';
        i++;
    } else {
        bool label_start = true;

        for (; i < len && s[i] != ':'; i++) {
            char c = s[i];

            if (c == '.') {
                if (label_start)
                    return "empty label in host";
                label_start = true;
            } else if (is_alnum(c) || c == '-') {
                label_start = false;
            } else if (c == '/') {
                return "an origin has no path";
            } else {
                return "unexpected character in host";
            }
            if (h == GW_ORIGIN_HOST_MAX)
                return "host too long";
            p->host[h++] = lower(c);
        }
        if (h == 0)
            return "no host";
        if (label_start)
            return "empty label in host";
    }
    p->host[h] = '\0';
    if (i == len)
        return NULL;
    if (s[i] == '/')
        return "an origin has no path";
    if (s[i] != ':' || ++i == len)
        return "unexpected character after host";
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return s[i] == '/' ? "an origin has no path" : "bad port";
        }
        p->port = p->port * 10 + (s[i] - '0');
        if (p->port > 65535)
            return "bad port";
    }
    return p->port == 0 ? "bad port" : NULL;
}

static bool rule_match(const struct gw_origin_rule *r, const struct part *o)
{
    size_t hl, ol;

    if (r->any)
        return true;
    if (!(r->schemes & o->scheme))
        return false;
    if ((o->port ? o->port : default_port(o->scheme)) != (r->port ? r->port : default_port(o->scheme)))
        return false;
    if (!r->subdomains)
        return strcmp(r->host, o->host) == 0;
    hl = strlen(r->host);
    ol = strlen(o->host);
    return o->host[0] != '[' && ol > hl + 1 && o->host[ol - hl - 1] == '.' &&
           memcmp(o->host + ol - hl, r->host, hl) == 0;
}

bool gw_origin_allowed(const struct gw_origin_list *list, const char *origin, size_t origin_len,
                       const char *host, size_t host_len)
{
    struct part o, h;

    if (!origin)
        return true;
    if (parse_part(origin, origin_len, PART_ORIGIN, &o))
        return false;
    if (list->count == 0) {
        if (!host || parse_part(host, host_len, PART_HOST, &h))
            return false;
        return strcmp(o.host, h.host) == 0 &&
               (o.port ? o.port : default_port(o.scheme)) == (h.port ? h.port : default_port(o.scheme));
    }
    for (size_t i = 0; i < list->count; i++) {
        if (rule_match(&list->rules[i], &o))
            return true;
    }
    return false;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

int gw_origin_list_parse(struct gw_origin_list *list, const char *text, char *err, size_t errlen)
{
    struct gw_origin_list out = { NULL, 0 };
    const char *s = text;
    size_t cap = 0;

    while (*s && is_space(*s))
        s++;
    while (*s) {
        const char *end = strchr(s, ',');
        const char *e = end ? end : s + strlen(s), *reason;
        struct gw_origin_rule r;
        struct part p;
        size_t len;

        while (e > s && is_space(e[-1]))
            e--;
        len = (size_t)(e - s);
        memset(&r, 0, sizeof r);
        if (len == 1 && *s == '*') {
            r.any = true;
        } else if (ieq(s, len, "null")) {
            /* Sandboxed frames and file: pages all share the opaque origin
             * "null": allowing it would allow any of them. */
            free(out.rules);
            return gw_text_err(err, errlen, "the opaque origin \"null\" cannot be allowed");
        } else if ((reason = parse_part(s, len, PART_RULE, &p)) != NULL) {
            free(out.rules);
            if (len == 0)
                return gw_text_err(err, errlen, "empty entry in the origin list");
            return gw_text_err(err, errlen, "origin \"%.*s\": %s", (int)(len > 80 ? 80 : len), s,
                               reason);
        } else {
            r.schemes = p.scheme ? p.scheme : GW_ORIGIN_HTTP | GW_ORIGIN_HTTPS;
            r.subdomains = p.wild;
            r.port = p.port;
            memcpy(r.host, p.host, sizeof r.host);
        }
        if (out.count == cap) {
            cap = cap ? cap * 2 : 4;
            out.rules = gw_xrealloc(out.rules, cap * sizeof *out.rules);
        }
        out.rules[out.count++] = r;
        if (!end)
            break;
        s = end + 1;
        while (*s && is_space(*s))
            s++;
        if (!*s) {
            free(out.rules);
            return gw_text_err(err, errlen, "empty entry in the origin list");
        }
    }
    gw_origin_list_deinit(list);
    *list = out;
    return 0;
}

void gw_origin_list_deinit(struct gw_origin_list *list)
{
    free(list->rules);
    list->rules = NULL;
    list->count = 0;
}
