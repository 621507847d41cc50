/*
 * tests/integration/test_client.c - libbitnet-client against a real bitnetd
 * started on a temporary socket.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "bitnet/client.h"

#ifndef BITNETD_PATH
#error "BITNETD_PATH must name the bitnetd binary"
#endif

/* The unprivileged user and a group for the permission tests. */
#define NOBODY    65534
#define ADMIN_GID 4242

static char dir[64];
static char sock_path[128];
static char conf_path[128];
static char notify_path[128];
static int notify_fd = -1;
static pid_t daemon_pid = -1;

/* Waits for a notification line equal to want ("READY=1"). */
static void expect_notify(const char *want)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, 0);
        ck_assert_msg(n > 0, "no %s from bitnetd: %s", want, strerror(errno));
        buf[n] = '\0';
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            if (strcmp(line, want) == 0)
                return;
        }
    }
}

static void start_daemon(const char *config)
{
    FILE *f = fopen(conf_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(config, f);
    fclose(f);
    daemon_pid = fork();
    ck_assert_int_ge(daemon_pid, 0);
    if (daemon_pid == 0) {
        setenv("NOTIFY_SOCKET", notify_path, 1);
        const char *wrapper = getenv("BITNETD_TEST_WRAPPER");
        if (wrapper && *wrapper) /* make test-valgrind: the daemon under memcheck too */
            execl("/bin/sh", "sh", "-c", "exec $BITNETD_TEST_WRAPPER \"$@\"", "sh", BITNETD_PATH,
                  "--socket", sock_path, "--config", conf_path, (char *)NULL);
        else
            execl(BITNETD_PATH, "bitnetd", "--socket", sock_path, "--config", conf_path,
                  (char *)NULL);
        _exit(127);
    }
    expect_notify("READY=1");
}

/* SIGTERM, STOPPING=1, and the exit status (0 expected). */
static int stop_daemon(void)
{
    int status;
    kill(daemon_pid, SIGTERM);
    expect_notify("STOPPING=1");
    ck_assert_int_eq(waitpid(daemon_pid, &status, 0), daemon_pid);
    daemon_pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void setup(void)
{
    strcpy(dir, "/tmp/bitnetd-client-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    chmod(dir, 0755); /* the permission tests connect as another user */
    snprintf(sock_path, sizeof(sock_path), "%s/run/bitnetd.sock", dir);
    snprintf(conf_path, sizeof(conf_path), "%s/bitnetd.conf", dir);
    snprintf(notify_path, sizeof(notify_path), "%s/notify", dir);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, notify_path);
    ck_assert_int_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval guard = {.tv_sec = 60}; /* against hangs only */
    setsockopt(notify_fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard));
}

static void teardown(void)
{
    if (daemon_pid > 0)
        ck_assert_int_eq(stop_daemon(), 0);
    close(notify_fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(v);
    return v;
}

START_TEST(call_returns_the_reply_parameters)
{
    start_daemon("");
    bitnet_client *c;
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), 0);
    char *reply = NULL;
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", NULL, &reply), 0);
    json_t *info = parse(reply);
    ck_assert_str_eq(json_string_value(json_object_get(info, "vendor")), "bitnetd");
    ck_assert_ptr_null(bitnet_client_error_name(c));
    json_decref(info);
    bitnet_client_free(reply);

    ck_assert_int_eq(bitnet_client_call(c, "io.bitnetd.Query.GetStatus", "{}", &reply), 0);
    json_t *st = parse(reply);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "pid")), daemon_pid);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "jobs")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(st, "backend")), "native");
    ck_assert_uint_eq(json_array_size(json_object_get(st, "models")), 0);
    json_decref(st);
    bitnet_client_free(reply);
    bitnet_client_close(c);
}
END_TEST

START_TEST(varlink_errors_come_back_typed)
{
    start_daemon("");
    bitnet_client *c;
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), 0);
    char *reply = (char *)"untouched";
    ck_assert_int_eq(bitnet_client_call(c, "io.bitnetd.Query.Nope", NULL, &reply),
                     BITNET_CLIENT_EVARLINK);
    ck_assert_str_eq(reply, "untouched");
    ck_assert_str_eq(bitnet_client_error_name(c), "org.varlink.service.MethodNotFound");
    json_t *p = parse(bitnet_client_error_parameters(c));
    ck_assert_str_eq(json_string_value(json_object_get(p, "method")), "io.bitnetd.Query.Nope");
    json_decref(p);

    ck_assert_int_eq(bitnet_client_call(c, "io.bitnetd.Query.GetStatus", "{\"x\":1}", &reply),
                     BITNET_CLIENT_EVARLINK);
    ck_assert_str_eq(bitnet_client_error_name(c), "org.varlink.service.InvalidParameter");
    ck_assert_str_eq(bitnet_client_error_parameters(c), "{\"parameter\":\"x\"}");
    ck_assert_ptr_nonnull(strstr(bitnet_client_error_message(c), "InvalidParameter"));

    /* The connection is still good after errors. */
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", NULL, &reply), 0);
    ck_assert_ptr_null(bitnet_client_error_name(c));
    bitnet_client_free(reply);
    bitnet_client_close(c);
}
END_TEST

struct replies {
    int n;
    int last_continues;
    char status[256];
    int stop_with;
};

static int on_reply(const char *parameters, int continues, void *user)
{
    struct replies *r = user;
    r->n++;
    r->last_continues = continues;
    json_t *v = json_loads(parameters, 0, NULL);
    const char *s = json_string_value(json_object_get(v, "status"));
    snprintf(r->status, sizeof(r->status), "%s", s ? s : "");
    json_decref(v);
    return r->stop_with;
}

START_TEST(call_more_on_a_single_reply_method_gets_one_reply)
{
    start_daemon("");
    bitnet_client *c;
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), 0);
    struct replies r = {0};
    ck_assert_int_eq(bitnet_client_call_more(c, "io.bitnetd.Query.GetStatus", NULL, on_reply, &r),
                     0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.last_continues, 0);
    ck_assert_ptr_nonnull(strstr(r.status, "Serving"));
    /* A callback's non-zero value is returned. */
    struct replies stop = {.stop_with = 7};
    ck_assert_int_eq(
        bitnet_client_call_more(c, "io.bitnetd.Query.GetStatus", NULL, on_reply, &stop), 7);
    ck_assert_int_eq(stop.n, 1);
    /* Errors end a streaming call too. */
    ck_assert_int_eq(bitnet_client_call_more(c, "io.bitnetd.Nope.X", NULL, on_reply, &r),
                     BITNET_CLIENT_EVARLINK);
    ck_assert_str_eq(bitnet_client_error_name(c), "org.varlink.service.InterfaceNotFound");
    bitnet_client_close(c);
}
END_TEST

START_TEST(oneway_calls_get_no_reply)
{
    start_daemon("");
    bitnet_client *c;
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), 0);
    ck_assert_int_eq(bitnet_client_call_oneway(c, "io.bitnetd.Query.GetCapabilities", NULL), 0);
    ck_assert_int_eq(bitnet_client_call_oneway(c, "io.bitnetd.Query.Nope", NULL), 0);
    char *reply;
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", NULL, &reply), 0);
    json_t *info = parse(reply);
    ck_assert_str_eq(json_string_value(json_object_get(info, "vendor")), "bitnetd");
    json_decref(info);
    bitnet_client_free(reply);
    bitnet_client_close(c);
}
END_TEST

START_TEST(bad_arguments_are_refused_locally)
{
    start_daemon("");
    bitnet_client *c;
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), 0);
    char *reply = NULL;
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", "[1]", &reply),
                     BITNET_CLIENT_EINVAL);
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", "{not json", &reply),
                     BITNET_CLIENT_EINVAL);
    ck_assert_int_eq(bitnet_client_call(c, "", NULL, &reply), BITNET_CLIENT_EINVAL);
    ck_assert_ptr_null(reply);
    /* Nothing was sent, so the connection still lines up. */
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", NULL, &reply), 0);
    bitnet_client_free(reply);
    bitnet_client_close(c);
    bitnet_client_close(NULL);
}
END_TEST

START_TEST(connect_finds_the_socket_or_says_why)
{
    bitnet_client *c = NULL;
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), -ENOENT);
    ck_assert_ptr_null(c);
    start_daemon("");
    setenv("BITNETD_SOCKET", sock_path, 1);
    ck_assert_int_eq(bitnet_client_connect(NULL, &c), 0);
    unsetenv("BITNETD_SOCKET");
    char *reply;
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", NULL, &reply), 0);
    bitnet_client_free(reply);
    /* The daemon going away is a closed connection, not a hang or a crash. */
    ck_assert_int_eq(stop_daemon(), 0);
    int rc = bitnet_client_call(c, "org.varlink.service.GetInfo", NULL, &reply);
    ck_assert_msg(rc == BITNET_CLIENT_ECLOSED || rc == -ECONNRESET, "rc %d", rc);
    ck_assert_int_eq(bitnet_client_call(c, "org.varlink.service.GetInfo", NULL, &reply),
                     BITNET_CLIENT_ECLOSED);
    bitnet_client_close(c);
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), -ENOENT); /* socket removed */
}
END_TEST

/* In a child running as NOBODY with the given groups, calls the Admin
 * method; returns 0 when allowed, 1 when denied, 2+ on other failures. */
static int admin_call_as_nobody(gid_t gid, const gid_t *groups, int n_groups)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups((size_t)n_groups, groups) < 0 || setgid(gid) < 0 || setuid(NOBODY) < 0)
            _exit(3);
        bitnet_client *c;
        if (bitnet_client_connect(sock_path, &c) < 0)
            _exit(4);
        char *reply;
        /* Query is open to everyone who can open the socket. */
        if (bitnet_client_call(c, "io.bitnetd.Query.GetStatus", NULL, &reply) < 0)
            _exit(5);
        bitnet_client_free(reply);
        int rc = bitnet_client_call(c, "io.bitnetd.Admin.ReloadConfiguration", NULL, &reply);
        if (rc == 0)
            _exit(0);
        if (rc == BITNET_CLIENT_EVARLINK &&
            strcmp(bitnet_client_error_name(c), "io.bitnetd.Admin.PermissionDenied") == 0)
            _exit(1);
        _exit(6);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

START_TEST(admin_needs_root_the_daemons_user_or_the_admin_group)
{
    char config[128];
    snprintf(config, sizeof(config), "socket_mode = 0666\nadmin_group = %d\n", ADMIN_GID);
    start_daemon(config);
    bitnet_client *c;
    ck_assert_int_eq(bitnet_client_connect(sock_path, &c), 0);
    char *reply;
    /* This process is root or the daemon's own user: allowed. */
    ck_assert_int_eq(bitnet_client_call(c, "io.bitnetd.Admin.ReloadConfiguration", NULL, &reply),
                     0);
    bitnet_client_free(reply);
    bitnet_client_close(c);
    if (geteuid() != 0)
        return; /* switching users needs root; the rest is covered where tests run as root */
    gid_t none[1] = {NOBODY};
    gid_t admin[2] = {NOBODY, ADMIN_GID};
    ck_assert_int_eq(admin_call_as_nobody(NOBODY, none, 1), 1);    /* denied */
    ck_assert_int_eq(admin_call_as_nobody(ADMIN_GID, none, 1), 0); /* primary group */
    ck_assert_int_eq(admin_call_as_nobody(NOBODY, admin, 2), 0);   /* supplementary */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("daemon");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, call_returns_the_reply_parameters);
    tcase_add_test(tc, varlink_errors_come_back_typed);
    tcase_add_test(tc, call_more_on_a_single_reply_method_gets_one_reply);
    tcase_add_test(tc, oneway_calls_get_no_reply);
    tcase_add_test(tc, bad_arguments_are_refused_locally);
    tcase_add_test(tc, connect_finds_the_socket_or_says_why);
    tcase_add_test(tc, admin_needs_root_the_daemons_user_or_the_admin_group);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
