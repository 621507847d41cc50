/* daemon/config.c - the configuration table and its three sources. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "daemon/config.h"
#include "daemon/limits.h"
#include "daemon/log.h"

#ifndef BITNETD_SYSCONFDIR
#define BITNETD_SYSCONFDIR "/etc"
#endif
#ifndef BITNETD_BACKEND_DIR
#define BITNETD_BACKEND_DIR "/usr/lib/bitnetd"
#endif

enum key_type { KT_STRING, KT_BOOL, KT_INT, KT_SIZE, KT_MODE };

/* Where a key may be set. */
#define IN_ARGS 1u
#define IN_ENV  2u
#define IN_FILE 4u
#define IN_ALL  (IN_ARGS | IN_ENV | IN_FILE)

/* One configuration key. Its option is --KEY with '_' written '-', its
 * environment variable BITNETD_KEY in capitals. */
struct config_key {
    const char *key;
    enum key_type type;
    size_t offset;   /* of the field in struct config */
    size_t size;     /* of a KT_STRING field */
    const char *def; /* the default, as text ("" for none) */
    long long min;   /* bounds of numbers */
    long long max;
    unsigned where;   /* IN_* */
    const char *meta; /* the value's name in --help */
    const char *help;
};

#define STR(field)       KT_STRING, offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define NUM(kind, field) kind, offsetof(struct config, field), 0

static const struct config_key keys[] = {
    {"socket", STR(socket), CONFIG_DEFAULT_SOCKET, 0, 0, IN_ALL, "PATH",
     "Unix socket to listen on (--user: $XDG_RUNTIME_DIR/bitnetd.sock)"},
    {"config", STR(config_file), BITNETD_SYSCONFDIR "/bitnetd/bitnetd.conf", 0, 0, IN_ARGS | IN_ENV,
     "FILE", "configuration file of key = value lines"},
    {"user", NUM(KT_BOOL, user), "no", 0, 1, IN_ARGS | IN_ENV, NULL,
     "run as a per-user instance (socket and config under the user's directories)"},
    {"foreground", NUM(KT_BOOL, foreground), "yes", 0, 1, IN_ALL, NULL,
     "stay in the foreground (bitnetd never detaches; accepted for scripts)"},
    {"threads", NUM(KT_INT, threads), "0", 0, LIMIT_THREADS_MAX, IN_ALL, "N",
     "compute threads, 0 for one per physical core"},
    {"socket_mode", NUM(KT_MODE, socket_mode), "0660", 0, 0777, IN_ALL, "MODE",
     "permission bits of a socket bitnetd binds itself (--user: 0600)"},
    {"admin_group", STR(admin_group), "", 0, 0, IN_ALL, "GROUP",
     "group whose members may call io.bitnetd.Admin (root and bitnetd's user always may)"},
    {"log_level", STR(log_level), "info", 0, 0, IN_ALL, "LEVEL",
     "least important events logged: error, warning, notice, info, debug"},
    {"max_message_size", NUM(KT_SIZE, max_message_size), LIMIT_MAX_MESSAGE_SIZE,
     LIMIT_MESSAGE_SIZE_MIN, LIMIT_MESSAGE_SIZE_MAX, IN_ALL, "BYTES",
     "longest message accepted (suffixes K, M, G)"},
    {"max_connections", NUM(KT_INT, max_connections), LIMIT_MAX_CONNECTIONS, 1,
     LIMIT_CONNECTIONS_MAX, IN_ALL, "N", "connections served at once"},
    {"max_connections_per_uid", NUM(KT_INT, max_connections_per_uid), LIMIT_MAX_CONNECTIONS_PER_UID,
     1, LIMIT_CONNECTIONS_MAX, IN_ALL, "N", "connections served at once for one user"},
    {"max_output_buffer", NUM(KT_SIZE, max_output_buffer), LIMIT_MAX_OUTPUT_BUFFER,
     LIMIT_OUTPUT_BUFFER_MIN, LIMIT_OUTPUT_BUFFER_MAX, IN_ALL, "BYTES",
     "reply bytes queued for a slow reader before bitnetd stops reading it"},
    {"idle_timeout", NUM(KT_INT, idle_timeout), LIMIT_IDLE_TIMEOUT, 0, LIMIT_IDLE_TIMEOUT_MAX,
     IN_ALL, "SECONDS", "close connections idle this long, 0 for never"},
    {"model", STR(model), "", 0, 0, IN_ALL, "FILE",
     "GGUF model to load at start (repeatable; ':' separates several in the file or "
     "environment); the first loaded is the default"},
    {"n_seq_max", NUM(KT_INT, n_seq_max), LIMIT_N_SEQ_MAX, 1, LIMIT_SEQ_MAX, IN_ALL, "N",
     "generations of one model batched together"},
    {"n_ctx", NUM(KT_INT, n_ctx), "0", 0, LIMIT_CTX_MAX, IN_ALL, "N",
     "positions per generation, 0 for the model's (at most 4096)"},
    {"kv_type", STR(kv_type), "f32", 0, 0, IN_ALL, "TYPE",
     "KV cache of the native engine: f32, or f16 for half the memory (slightly rounded)"},
    {"max_queued_jobs", NUM(KT_INT, max_queued_jobs), LIMIT_MAX_QUEUED_JOBS, 0,
     LIMIT_QUEUED_JOBS_MAX, IN_ALL, "N",
     "generations waiting per model before Generate answers QueueFull"},
    {"max_jobs_per_uid", NUM(KT_INT, max_jobs_per_uid), LIMIT_MAX_JOBS_PER_UID, 1,
     LIMIT_QUEUED_JOBS_MAX, IN_ALL, "N", "generation jobs one user may have queued or running"},
    {"max_tokens", NUM(KT_INT, max_tokens), LIMIT_MAX_TOKENS, 1, LIMIT_TOKENS_MAX, IN_ALL, "N",
     "the largest max_tokens one Generate may ask for"},
    {"backends", STR(backends), "", 0, 0, IN_ALL, "ID=PATH,...",
     "backend libraries to load at start, e.g. llama=" BITNETD_BACKEND_DIR "/libbitnet-llama.so"},
    {"backend_dirs", STR(backend_dirs), BITNETD_BACKEND_DIR, 0, 0, IN_ALL, "DIR:...",
     "directories backend libraries may be loaded from (owned by root or bitnetd's user, not "
     "writable by others)"},
    {"preference", STR(preference), "", 0, 0, IN_ALL, "ID ...",
     "kernel and backend ids, best first (empty: fastest built-in first, scalar last)"},
    {"strict", NUM(KT_BOOL, strict), "no", 0, 1, IN_ALL, NULL,
     "refuse to fall back: a model whose first preference cannot run fails to load"},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

enum { K_SOCKET, K_CONFIG, K_USER };
#define K_MODEL_NAME "model"

/* A value as text and where it came from, for error messages. */
struct setting {
    const char *text;
    char origin[160];
};

static int errf(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int errf(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return rc;
}

static void option_name(const struct config_key *k, char *buf, size_t n)
{
    snprintf(buf, n, "--%s", k->key);
    for (char *p = buf + 2; *p; p++)
        *p = *p == '_' ? '-' : *p;
}

static void env_name(const struct config_key *k, char *buf, size_t n)
{
    snprintf(buf, n, "BITNETD_%s", k->key);
    for (char *p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"1", "yes", "true", "on"};
    static const char *no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* Parses a number: decimal, octal for KT_MODE, with K/M/G for KT_SIZE. */
static int parse_number(const struct config_key *k, const char *s, long long *out)
{
    char *end;
    errno = 0;
    if (!*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
        return -EINVAL;
    long long v = strtoll(s, &end, k->type == KT_MODE ? 8 : 10);
    if (errno)
        return -errno;
    if (k->type == KT_SIZE && *end) {
        int shift = 0;
        switch (toupper((unsigned char)*end)) {
        case 'K':
            shift = 10;
            break;
        case 'M':
            shift = 20;
            break;
        case 'G':
            shift = 30;
            break;
        default:
            return -EINVAL;
        }
        end++;
        if (v > (LLONG_MAX >> shift))
            return -ERANGE;
        v <<= shift;
    }
    if (*end)
        return -EINVAL;
    if (v < k->min || v > k->max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* Stores text as the value of key k in cfg. */
static int apply(struct config *cfg, const struct config_key *k, const struct setting *s, char *err,
                 size_t err_len)
{
    char *field = (char *)cfg + k->offset;
    switch (k->type) {
    case KT_STRING:
        if (strlen(s->text) >= k->size)
            return errf(err, err_len, BITNET_ELIMIT, "%s: %s longer than %zu bytes", s->origin,
                        k->key, k->size - 1);
        memcpy(field, s->text, strlen(s->text) + 1);
        return 0;
    case KT_BOOL: {
        bool b;
        if (parse_bool(s->text, &b))
            return errf(err, err_len, BITNET_EPARAM, "%s: %s '%s' is not yes or no", s->origin,
                        k->key, s->text);
        memcpy(field, &b, sizeof(b));
        return 0;
    }
    default: {
        long long v;
        int rc = parse_number(k, s->text, &v);
        if (rc == -ERANGE)
            return errf(err, err_len, BITNET_EPARAM, "%s: %s '%s' is outside %lld..%lld", s->origin,
                        k->key, s->text, k->min, k->max);
        if (rc)
            return errf(err, err_len, BITNET_EPARAM, "%s: %s '%s' is not a %s", s->origin, k->key,
                        s->text, k->type == KT_MODE ? "octal mode" : "number");
        memcpy(field, &v, sizeof(v));
        return 0;
    }
    }
}

static const struct config_key *find_key(const char *name, size_t n)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strlen(keys[i].key) == n && strncmp(keys[i].key, name, n) == 0)
            return &keys[i];
    }
    return NULL;
}

/* The file's values, kept until the configuration is built. */
struct file_values {
    char *text; /* the file, with each value NUL-terminated in place */
    struct setting set[N_KEYS];
    bool has[N_KEYS];
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Reads "key = value" lines; '#' starts a comment line. */
static int read_file(const char *path, bool required, struct file_values *fv, char *err,
                     size_t err_len)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (!required && errno == ENOENT)
            return 1;
        return errf(err, err_len, -errno, "%s: %s", path, strerror(errno));
    }
    size_t cap = 0, len = 0;
    char *text = NULL;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n + 1 > 1 << 20) {
            fclose(f);
            free(text);
            return errf(err, err_len, BITNET_ELIMIT, "%s: larger than 1 MiB", path);
        }
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *nt = realloc(text, cap);
            if (!nt) {
                fclose(f);
                free(text);
                return -ENOMEM;
            }
            text = nt;
        }
        memcpy(text + len, chunk, n);
        len += n;
    }
    int read_err = ferror(f);
    fclose(f);
    if (read_err) {
        free(text);
        return errf(err, err_len, -EIO, "%s: read error", path);
    }
    if (!text) {
        text = strdup("");
        if (!text)
            return -ENOMEM;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        free(text);
        return errf(err, err_len, BITNET_EFORMAT, "%s: contains a NUL byte", path);
    }
    fv->text = text;
    int lineno = 0;
    for (char *line = text; line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        char *s = trim(line);
        line = next;
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return errf(err, err_len, BITNET_EFORMAT, "%s:%d: expected 'key = value'", path,
                        lineno);
        *eq = '\0';
        char *name = trim(s);
        const struct config_key *k = find_key(name, strlen(name));
        if (!k)
            return errf(err, err_len, BITNET_EFORMAT, "%s:%d: unknown key '%s'", path, lineno,
                        name);
        if (!(k->where & IN_FILE))
            return errf(err, err_len, BITNET_EFORMAT,
                        "%s:%d: '%s' cannot be set in the config file", path, lineno, name);
        size_t i = (size_t)(k - keys);
        fv->has[i] = true;
        fv->set[i].text = trim(eq + 1);
        snprintf(fv->set[i].origin, sizeof(fv->set[i].origin), "%.140s:%d", path, lineno);
    }
    return 0;
}

int config_load(struct config *out, int argc, char **argv, char *err, size_t err_len)
{
    struct setting args[N_KEYS] = {0}, env[N_KEYS] = {0};
    bool has_args[N_KEYS] = {0}, has_env[N_KEYS] = {0};
    char name[96];
    /* --model may be given several times: its values are joined with ':'. */
    char models[sizeof(((struct config *)0)->model)] = "";

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return CONFIG_HELP;
        if (strcmp(a, "--version") == 0)
            return CONFIG_VERSION;
        if (strncmp(a, "--", 2) != 0)
            return errf(err, err_len, BITNET_EPARAM, "unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        char key[64];
        if (n >= sizeof(key))
            return errf(err, err_len, BITNET_EPARAM, "unknown option '%s'", a);
        for (size_t j = 0; j < n; j++)
            key[j] = a[2 + j] == '-' ? '_' : a[2 + j];
        const struct config_key *k = find_key(key, n);
        if (!k || !(k->where & IN_ARGS))
            return errf(err, err_len, BITNET_EPARAM, "unknown option '%s'", a);
        size_t idx = (size_t)(k - keys);
        option_name(k, args[idx].origin, sizeof(args[idx].origin));
        if (eq) {
            args[idx].text = eq + 1;
        } else if (k->type == KT_BOOL) {
            args[idx].text = "yes";
        } else if (i + 1 < argc) {
            args[idx].text = argv[++i];
        } else {
            return errf(err, err_len, BITNET_EPARAM, "option '%s' needs a value", a);
        }
        if (strcmp(k->key, K_MODEL_NAME) == 0) {
            size_t used = strlen(models);
            if (used + 1 + strlen(args[idx].text) >= sizeof(models))
                return errf(err, err_len, BITNET_ELIMIT, "--model: too many models");
            snprintf(models + used, sizeof(models) - used, "%s%s", used ? ":" : "", args[idx].text);
            args[idx].text = models;
        }
        has_args[idx] = true;
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        env_name(&keys[i], name, sizeof(name));
        const char *v = keys[i].where & IN_ENV ? getenv(name) : NULL;
        if (v) {
            env[i].text = v;
            snprintf(env[i].origin, sizeof(env[i].origin), "%s", name);
            has_env[i] = true;
        }
    }

    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    for (size_t i = 0; i < N_KEYS; i++) {
        struct setting d = {.text = keys[i].def};
        snprintf(d.origin, sizeof(d.origin), "default of %s", keys[i].key);
        int rc = apply(&cfg, &keys[i], &d, err, err_len);
        if (rc)
            return rc;
    }
    /* --user decides the default socket and config file, so it comes first. */
    const struct setting *user_set = has_args[K_USER]  ? &args[K_USER]
                                     : has_env[K_USER] ? &env[K_USER]
                                                       : NULL;
    if (user_set) {
        int rc = apply(&cfg, &keys[K_USER], user_set, err, err_len);
        if (rc)
            return rc;
    }
    if (cfg.user) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        const char *home = getenv("HOME");
        const char *conf = getenv("XDG_CONFIG_HOME");
        char path[4096];
        if (!xdg || xdg[0] != '/')
            xdg = NULL;
        if (xdg) {
            snprintf(path, sizeof(path), "%s/bitnetd.sock", xdg);
            struct setting s = {.text = path, .origin = "$XDG_RUNTIME_DIR/bitnetd.sock"};
            int rc = apply(&cfg, &keys[K_SOCKET], &s, err, err_len);
            if (rc)
                return rc;
        } else if (!has_args[K_SOCKET] && !has_env[K_SOCKET]) {
            return errf(err, err_len, BITNET_EMISSING,
                        "--user needs $XDG_RUNTIME_DIR (or --socket PATH)");
        }
        if (conf && conf[0] == '/')
            snprintf(path, sizeof(path), "%s/bitnetd/bitnetd.conf", conf);
        else
            snprintf(path, sizeof(path), "%s/.config/bitnetd/bitnetd.conf", home ? home : "");
        struct setting s = {.text = path, .origin = "user config file"};
        int rc = apply(&cfg, &keys[K_CONFIG], &s, err, err_len);
        if (rc)
            return rc;
        /* A user's daemon is for that user alone unless configured otherwise. */
        cfg.socket_mode = 0600;
    }
    const struct setting *conf_set = has_args[K_CONFIG]  ? &args[K_CONFIG]
                                     : has_env[K_CONFIG] ? &env[K_CONFIG]
                                                         : NULL;
    if (conf_set) {
        int rc = apply(&cfg, &keys[K_CONFIG], conf_set, err, err_len);
        if (rc)
            return rc;
    }

    struct file_values fv;
    memset(&fv, 0, sizeof(fv));
    int rc = 0;
    if (cfg.config_file[0]) {
        rc = read_file(cfg.config_file, conf_set != NULL, &fv, err, err_len);
        if (rc == 1) {
            cfg.config_file[0] = '\0'; /* the default file is optional */
            rc = 0;
        }
    }
    for (size_t i = 0; i < N_KEYS && rc == 0; i++) {
        if (fv.has[i])
            rc = apply(&cfg, &keys[i], &fv.set[i], err, err_len);
    }
    for (size_t i = 0; i < N_KEYS && rc == 0; i++) {
        if (has_env[i] && i != K_CONFIG && i != K_USER)
            rc = apply(&cfg, &keys[i], &env[i], err, err_len);
    }
    for (size_t i = 0; i < N_KEYS && rc == 0; i++) {
        if (has_args[i] && i != K_CONFIG && i != K_USER)
            rc = apply(&cfg, &keys[i], &args[i], err, err_len);
    }
    free(fv.text);
    if (rc)
        return rc;
    int prio;
    if (log_level_parse(cfg.log_level, &prio))
        return errf(err, err_len, BITNET_EPARAM,
                    "log_level '%s' is not error, warning, notice, info or debug", cfg.log_level);
    if (strcmp(cfg.kv_type, "f32") != 0 && strcmp(cfg.kv_type, "f16") != 0)
        return errf(err, err_len, BITNET_EPARAM, "kv_type '%s' is not f32 or f16", cfg.kv_type);
    if (cfg.socket[0] == '\0')
        return errf(err, err_len, BITNET_EPARAM, "the socket path is empty");
    *out = cfg;
    return CONFIG_RUN;
}

void config_print_help(FILE *out)
{
    fprintf(out, "Usage: bitnetd [OPTIONS]\n\n"
                 "Serves ternary LLMs over Varlink on a Unix socket.\n\n"
                 "Options (each also an environment variable, and all but --config and\n"
                 "--user also a config file key; command line > environment > file > default):\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct config_key *k = &keys[i];
        char opt[64], env_var[96], left[96];
        option_name(k, opt, sizeof(opt));
        env_name(k, env_var, sizeof(env_var));
        snprintf(left, sizeof(left), "%s%s%s", opt, k->meta ? " " : "", k->meta ? k->meta : "");
        fprintf(out, "  %-32s %s\n  %-32s   [%s, default: %s]\n", left, k->help, "", env_var,
                k->def[0] ? k->def : "none");
    }
    fprintf(out, "  %-32s %s\n  %-32s %s\n", "--help", "show this help", "--version",
            "print the version");
}
