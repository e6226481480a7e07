/* Structured logging: one line per event, "key=value" text or one JSON object.
 * Thread-safe (each line is written with a single write()). Log decisions,
 * not routine traffic. */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_ERROR = 0, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };
enum gw_log_format { GW_LOG_TEXT = 0, GW_LOG_JSON };

/* Set once at startup, before any thread starts. Default: info, text, fd 2. */
void gw_log_setup(enum gw_log_level level, enum gw_log_format format, int fd);
int gw_log_enabled(enum gw_log_level level);

/* Parse "error"/"warn"/"info"/"debug"; returns 0 or -EINVAL. */
int gw_log_level_parse(const char *s, enum gw_log_level *out);
/* Parse "text"/"json"; returns 0 or -EINVAL. */
int gw_log_format_parse(const char *s, enum gw_log_format *out);

/* fmt is the message followed by optional " key=value" fields, e.g.
 * gw_log(GW_LOG_WARN, "session", "evicted id=%llu reason=%s", ...).
 * In JSON format the first word becomes "msg" and key=value pairs become
 * string fields. Lines longer than 4 KiB are truncated. */
void gw_log(enum gw_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Per-module tag macros: #define GW_LOG_MODULE "hub" before including. */
#ifdef GW_LOG_MODULE
#define LOG_ERR(...) gw_log(GW_LOG_ERROR, GW_LOG_MODULE, __VA_ARGS__)
#define LOG_WARN(...) gw_log(GW_LOG_WARN, GW_LOG_MODULE, __VA_ARGS__)
#define LOG_INFO(...) gw_log(GW_LOG_INFO, GW_LOG_MODULE, __VA_ARGS__)
#define LOG_DBG(...)                                                          \
    do {                                                                      \
        if (gw_log_enabled(GW_LOG_DEBUG))                                     \
            gw_log(GW_LOG_DEBUG, GW_LOG_MODULE, __VA_ARGS__);                 \
    } while (0)
#endif

#endif
