/*
 * daemon/main.c - bitnetd: configuration, the listening socket, signals,
 * systemd notifications, and the libuv loop that serves connections.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/runner.h"
#include "bitnet/config.h"
#include "bitnet/kernels.h"
#include "daemon/limits.h"
#include "daemon/listen.h"
#include "daemon/log.h"
#include "daemon/models.h"
#include "daemon/notify.h"
#include "daemon/server.h"

/* Milliseconds shutdown waits for connections to finish before closing them. */
#define DRAIN_TIMEOUT_MS 5000
/* Milliseconds cancelled generations then get to send their final reply. */
#define DRAIN_CANCEL_GRACE_MS 1000

/* Resolves admin_group (a name or a number) into *gid. Returns 1 when set,
 * 0 when no group is configured, or a negative error with err. */
static int resolve_admin_group(const struct config *cfg, gid_t *gid, char *err, size_t err_len)
{
    const char *g = cfg->admin_group;
    if (!g[0])
        return 0;
    char *end;
    errno = 0;
    unsigned long v = strtoul(g, &end, 10);
    if (!errno && !*end && g[0] >= '0' && g[0] <= '9') {
        *gid = (gid_t)v;
        return 1;
    }
    struct group *gr = getgrnam(g);
    if (!gr) {
        snprintf(err, err_len, "admin_group '%s' is not a group on this system", g);
        return -ENOENT;
    }
    *gid = gr->gr_gid;
    return 1;
}

void server_update_status(struct server *s)
{
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    char models[160] = "no model loaded";
    size_t used = 0;
    for (const struct model *m = s->models; m && used < sizeof(models); m = m->next) {
        char fb[80] = "";
        if (m->state == MODEL_READY && m->fallback)
            snprintf(fb, sizeof(fb), ", FALLBACK from %s", m->requested);
        int n = snprintf(models + used, sizeof(models) - used, "%s%s %s (%s%s)", used ? ", " : "",
                         m == s->models ? "model" : "", m->name,
                         m->state == MODEL_READY ? m->f.kernel : model_state_name(m->state), fb);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    char status[sizeof(s->status)];
    snprintf(status, sizeof(status), "Serving: %s, %d jobs, %d threads, SIMD %s", models, s->jobs,
             s->threads, bitnet_simd_level_name(cpu->active));
    if (strcmp(status, s->status) == 0)
        return;
    memcpy(s->status, status, sizeof(status));
    char msg[300];
    snprintf(msg, sizeof(msg), "STATUS=%s", s->status);
    notify_send_nowait(msg);
}

/* Applies the parts of a configuration that take effect at once. */
static int apply_config(struct server *s, const struct config *cfg, char *err, size_t err_len)
{
    gid_t gid = 0;
    int has = resolve_admin_group(cfg, &gid, err, err_len);
    if (has < 0)
        return has;
    int prio = LOG_INFO;
    log_level_parse(cfg->log_level, &prio);
    log_set_level(prio);
    s->has_admin_gid = has == 1;
    s->admin_gid = gid;
    s->cfg = *cfg;
    return 0;
}

int server_reload(struct server *s, char *err, size_t err_len)
{
    notify_reloading();
    struct config cfg;
    int rc = config_load(&cfg, s->argc, s->argv, err, err_len);
    if (rc >= 0) {
        /* The socket and the thread count are fixed for the life of the process. */
        if (strcmp(cfg.socket, s->cfg.socket) != 0 || cfg.threads != s->cfg.threads)
            log_event(LOG_NOTICE, "reload-partial",
                      "reason=\"socket and threads changes need a restart\"");
        memcpy(cfg.socket, s->cfg.socket, sizeof(cfg.socket));
        cfg.threads = s->cfg.threads;
        /* Backend libraries are loaded at start; ReloadLibrary replaces them. */
        memcpy(cfg.backends, s->cfg.backends, sizeof(cfg.backends));
        memcpy(cfg.backend_dirs, s->cfg.backend_dirs, sizeof(cfg.backend_dirs));
        struct pref_list pref = {0};
        if (cfg.preference[0])
            rc = pref_parse(cfg.preference, &pref, err, err_len);
        for (int i = 0; rc >= 0 && i < pref.n; i++)
            rc = pref_check_known(s, pref.id[i], err, err_len);
        if (rc >= 0)
            rc = apply_config(s, &cfg, err, err_len);
        if (rc >= 0) {
            s->pref = pref;
            s->pref_from_call = false;
            s->strict = cfg.strict;
        }
    }
    char q[600];
    if (rc < 0)
        log_event(LOG_WARNING, "reload-failed", "reason=%s keeping=old-configuration",
                  log_quote(err, q, sizeof(q)));
    else
        log_event(LOG_INFO, "reloaded", "config=%s",
                  log_quote(s->cfg.config_file[0] ? s->cfg.config_file : "(none)", q, sizeof(q)));
    server_update_status(s);
    notify_send("READY=1");
    return rc < 0 ? rc : 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    if (status < 0) {
        log_event(LOG_WARNING, "accept-failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    conn_accept(s);
}

static void on_drained(struct server *s)
{
    s->on_drained = NULL;
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
    /* The connections are gone, so their jobs are cancelled; the models'
     * threads end those and exit, and the event path closes after the last. */
    models_stop_all(s);
    work_shutdown(s);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct server *s = t->data;
    /* Generations still running are cancelled first, so their clients get
     * a final reply (finish_reason "cancelled"); connections still open a
     * moment later are closed. */
    if (s->job_list && !s->jobs_cancelled) {
        s->jobs_cancelled = true;
        log_event(LOG_NOTICE, "drain-timeout", "jobs=%d action=cancel", s->jobs);
        for (struct job *j = s->job_list; j; j = j->next)
            sched_cancel(j->model, j);
        uv_timer_start(&s->drain_timer, on_drain_timeout, DRAIN_CANCEL_GRACE_MS, 0);
        return;
    }
    log_event(LOG_WARNING, "drain-timeout", "connections=%d", s->n_conns);
    conn_close_all(s);
}

/* SIGTERM/SIGINT: stop accepting, let calls in progress (generations
 * included) finish for at most DRAIN_TIMEOUT_MS, then exit. */
static void on_stop_signal(uv_signal_t *h, int signum)
{
    server_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void server_stop(struct server *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = true;
    notify_send("STOPPING=1");
    char q[200];
    log_event(LOG_INFO, "stopping", "reason=%s connections=%d jobs=%d",
              log_quote(why, q, sizeof(q)), s->n_conns, s->jobs);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    uv_timer_init(s->loop, &s->drain_timer);
    s->drain_timer.data = s;
    s->on_drained = on_drained;
    if (s->n_conns == 0) {
        on_drained(s);
        return;
    }
    uv_timer_start(&s->drain_timer, on_drain_timeout, DRAIN_TIMEOUT_MS, 0);
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_drain(c);
    }
}

void server_maybe_ready(struct server *s)
{
    if (s->preload_pending > 0 || s->preload_failed || s->stopping)
        return;
    server_update_status(s);
    char ready[400];
    snprintf(ready, sizeof(ready), "READY=1\nSTATUS=%s\nMAINPID=%d", s->status, (int)getpid());
    notify_send(ready);
}

/* Starts loading the configured models; READY=1 waits for them. Returns 0,
 * or -1 after logging when one cannot even be started. */
static int preload_models(struct server *s)
{
    char list[sizeof(s->cfg.model)];
    snprintf(list, sizeof(list), "%s", s->cfg.model);
    char *save = NULL;
    for (char *path = strtok_r(list, ":", &save); path; path = strtok_r(NULL, ":", &save)) {
        char err[512], q[600];
        struct model *m;
        if (models_load(s, path, NULL, NULL, false, &m, err, sizeof(err)) < 0) {
            log_event(LOG_ERR, "model-load-failed", "path=%s error=%s",
                      log_quote(path, q, sizeof(q)), log_quote(err, q + 300, 300));
            return -1;
        }
        m->preload = true;
        s->preload_pending++;
    }
    return 0;
}

static void on_hup(uv_signal_t *h, int signum)
{
    char err[512];
    server_reload(h->data, err, sizeof(err));
}

/* Opens the listening socket: systemd's, or one bitnetd binds. */
static int open_listener(struct server *s, char *err, size_t err_len)
{
    int fd = -1;
    int rc = listen_activated(&fd, err, err_len);
    if (rc < 0)
        return rc;
    s->activated = rc == 1;
    if (!s->activated) {
        rc = listen_bind(s->cfg.socket, (mode_t)s->cfg.socket_mode, &fd, err, err_len);
        if (rc < 0)
            return rc;
        struct stat st;
        if (stat(s->cfg.socket, &st) == 0) {
            s->sock_dev = st.st_dev;
            s->sock_ino = st.st_ino;
        }
        s->bound = true;
    }
    uv_pipe_init(s->loop, &s->listener, 0);
    s->listener.data = s;
    rc = uv_pipe_open(&s->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
    if (rc < 0) {
        snprintf(err, err_len, "cannot listen: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        return rc;
    }
    return 0;
}

/* Removes the socket file bitnetd bound, unless another process replaced it. */
static void remove_socket(const struct server *s)
{
    struct stat st;
    if (s->bound && stat(s->cfg.socket, &st) == 0 && st.st_dev == s->sock_dev &&
        st.st_ino == s->sock_ino)
        unlink(s->cfg.socket);
}

int main(int argc, char **argv)
{
    /* A child running a backend library (backends/runner.h), not a daemon. */
    if (argc > 1 && strcmp(argv[1], "--backend-runner") == 0)
        return backend_runner_main(argc, argv);
    /* A client that disconnects mid-reply must cost an EPIPE, not the daemon. */
    signal(SIGPIPE, SIG_IGN);
    log_init();

    static struct server srv;
    struct server *s = &srv;
    ssize_t n_exe = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
    if (n_exe > 0)
        s->exe[n_exe] = '\0';
    else
        snprintf(s->exe, sizeof(s->exe), "%s", argv[0]);
    s->argc = argc;
    s->argv = argv;
    char err[1024];
    struct config cfg;
    int rc = config_load(&cfg, argc, argv, err, sizeof(err));
    if (rc == CONFIG_HELP) {
        config_print_help(stdout);
        return 0;
    }
    if (rc == CONFIG_VERSION) {
        printf("bitnetd %s (%s)\n", BITNET_VERSION, BITNET_COMPILER);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "bitnetd: %s\n(bitnetd --help lists the options)\n", err);
        return 2;
    }
    if (apply_config(s, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "bitnetd: %s\n", err);
        return 2;
    }
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    s->threads = (int)cfg.threads;
    if (s->threads == 0)
        s->threads = cpu->physical_cores > 0 ? cpu->physical_cores : 1;

    s->strict = cfg.strict;
    rc = backends_init(s, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "bitnetd: %s\n", err);
        return 2;
    }

    static uv_loop_t loop; /* static like srv, which points to it */
    uv_loop_init(&loop);
    s->loop = &loop;
    rc = open_listener(s, err, sizeof(err));
    if (rc < 0) {
        log_event(LOG_ERR, "listen-failed", "error=%s", log_quote(err, err + 512, 512));
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    rc = work_init(s);
    if (rc == 0) {
        rc = sched_init(s);
        if (rc < 0)
            work_shutdown(s);
    }
    if (rc < 0) {
        log_event(LOG_ERR, "start-failed", "error=\"worker thread: %s\"", strerror(-rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        remove_socket(s);
        uv_loop_close(&loop);
        return 1;
    }
    uv_signal_init(&loop, &s->sig_term);
    uv_signal_init(&loop, &s->sig_int);
    uv_signal_init(&loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&s->sig_hup, on_hup, SIGHUP);
    s->start_ms = uv_now(&loop);

    char q[300];
    log_event(LOG_INFO, "listening", "socket=%s activated=%s threads=%d simd=%s config=%s",
              log_quote(s->cfg.socket, q, sizeof(q)), s->activated ? "yes" : "no", s->threads,
              bitnet_simd_level_name(cpu->active),
              s->cfg.config_file[0] ? s->cfg.config_file : "(none)");
    if (preload_models(s) < 0) {
        s->exit_code = 1;
        server_stop(s, "a --model failed to load");
    } else {
        server_maybe_ready(s);
    }

    uv_run(&loop, UV_RUN_DEFAULT);

    remove_socket(s);
    free(s->uids);
    backends_shutdown(s);
    rc = uv_loop_close(&loop);
    log_event(LOG_INFO, "stopped", "clean=%s exit=%d", rc == 0 ? "yes" : "no", s->exit_code);
    return s->exit_code;
}
