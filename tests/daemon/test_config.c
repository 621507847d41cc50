/* tests/daemon/test_config.c - bitnetd's configuration: sources and precedence. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"

static char dir[] = "/tmp/bitnetd-config-XXXXXX";
static char conf_path[256];

static void write_conf(const char *text)
{
    FILE *f = fopen(conf_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf_path, sizeof(conf_path), "%s/bitnetd.conf", dir);
    unsetenv("BITNETD_MAX_CONNECTIONS");
    unsetenv("BITNETD_SOCKET");
    unsetenv("BITNETD_CONFIG");
    unsetenv("BITNETD_IDLE_TIMEOUT");
    unsetenv("BITNETD_USER");
    unsetenv("BITNETD_MODEL");
    unsetenv("BITNETD_N_SEQ_MAX");
}

static void teardown(void)
{
    unlink(conf_path);
    rmdir(dir);
    strcpy(dir, "/tmp/bitnetd-config-XXXXXX");
}

/* Loads with argv given as a NULL-terminated list after "bitnetd". */
static int load(struct config *cfg, char *err, const char *a0, const char *a1, const char *a2,
                const char *a3)
{
    char *argv[6] = {"bitnetd", (char *)a0, (char *)a1, (char *)a2, (char *)a3, NULL};
    int argc = 1;
    while (argv[argc])
        argc++;
    return config_load(cfg, argc, argv, err, 512);
}

START_TEST(defaults_come_from_limits_h)
{
    struct config cfg;
    char err[512];
    /* An explicit, empty config file keeps the machine's /etc out of the test. */
    write_conf("# nothing\n");
    ck_assert_int_eq(load(&cfg, err, "--config", conf_path, NULL, NULL), CONFIG_RUN);
    ck_assert_str_eq(cfg.socket, CONFIG_DEFAULT_SOCKET);
    ck_assert_int_eq(cfg.max_message_size, 16LL << 20);
    ck_assert_int_eq(cfg.max_connections, 256);
    ck_assert_int_eq(cfg.max_connections_per_uid, 64);
    ck_assert_int_eq(cfg.max_output_buffer, 8LL << 20);
    ck_assert_int_eq(cfg.socket_mode, 0660);
    ck_assert(!cfg.user);
}
END_TEST

START_TEST(command_line_beats_environment_beats_file)
{
    struct config cfg;
    char err[512];
    write_conf("max_connections = 10\nidle_timeout = 7\nsocket = /tmp/from-file.sock\n"
               "max_message_size = 2M\n");
    ck_assert_int_eq(load(&cfg, err, "--config", conf_path, NULL, NULL), CONFIG_RUN);
    ck_assert_int_eq(cfg.max_connections, 10);
    ck_assert_int_eq(cfg.max_message_size, 2LL << 20);
    ck_assert_str_eq(cfg.socket, "/tmp/from-file.sock");
    ck_assert_str_eq(cfg.config_file, conf_path);

    setenv("BITNETD_MAX_CONNECTIONS", "20", 1);
    setenv("BITNETD_SOCKET", "/tmp/from-env.sock", 1);
    ck_assert_int_eq(load(&cfg, err, "--config", conf_path, NULL, NULL), CONFIG_RUN);
    ck_assert_int_eq(cfg.max_connections, 20);
    ck_assert_int_eq(cfg.idle_timeout, 7);
    ck_assert_str_eq(cfg.socket, "/tmp/from-env.sock");

    ck_assert_int_eq(load(&cfg, err, "--config", conf_path, "--max-connections=30",
                          "--socket=/tmp/from-args.sock"),
                     CONFIG_RUN);
    ck_assert_int_eq(cfg.max_connections, 30);
    ck_assert_int_eq(cfg.idle_timeout, 7);
    ck_assert_str_eq(cfg.socket, "/tmp/from-args.sock");

    /* The config file itself can come from the environment. */
    setenv("BITNETD_CONFIG", conf_path, 1);
    unsetenv("BITNETD_MAX_CONNECTIONS");
    ck_assert_int_eq(load(&cfg, err, NULL, NULL, NULL, NULL), CONFIG_RUN);
    ck_assert_int_eq(cfg.max_connections, 10);
}
END_TEST

START_TEST(errors_name_their_source_and_leave_the_output_alone)
{
    struct config cfg;
    memset(&cfg, 0x5a, sizeof(cfg));
    struct config before = cfg;
    char err[512];
    write_conf("max_connections = 10\nno_such_key = 1\n");
    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, ":2: unknown key 'no_such_key'"));
    ck_assert_mem_eq(&cfg, &before, sizeof(cfg));

    write_conf("max_connections = many\n");
    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, ":1: max_connections 'many' is not a number"));

    write_conf("max_connections = 0\n");
    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, "outside"));

    write_conf("this line has no equals sign\n");
    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, "key = value"));

    write_conf("");
    setenv("BITNETD_IDLE_TIMEOUT", "-1", 1);
    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, "BITNETD_IDLE_TIMEOUT"));
    unsetenv("BITNETD_IDLE_TIMEOUT");

    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, "--threads", "lots"), 0);
    ck_assert_ptr_nonnull(strstr(err, "--threads"));
    ck_assert_int_lt(load(&cfg, err, "--bogus", NULL, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, "--bogus"));
    ck_assert_int_lt(load(&cfg, err, "--config", "/nonexistent/bitnetd.conf", NULL, NULL), 0);
    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, "--log-level", "loud"), 0);
    ck_assert_mem_eq(&cfg, &before, sizeof(cfg));
}
END_TEST

START_TEST(help_and_version_are_actions)
{
    struct config cfg;
    char err[512];
    ck_assert_int_eq(load(&cfg, err, "--threads", "2", "--help", NULL), CONFIG_HELP);
    ck_assert_int_eq(load(&cfg, err, "--version", NULL, NULL, NULL), CONFIG_VERSION);
}
END_TEST

START_TEST(user_instance_uses_xdg_runtime_dir)
{
    struct config cfg;
    char err[512];
    write_conf("");
    setenv("XDG_RUNTIME_DIR", dir, 1);
    ck_assert_int_eq(load(&cfg, err, "--user", "--config", conf_path, NULL), CONFIG_RUN);
    char want[300];
    snprintf(want, sizeof(want), "%s/bitnetd.sock", dir);
    ck_assert_str_eq(cfg.socket, want);
    ck_assert(cfg.user);
    ck_assert_int_eq(cfg.socket_mode, 0600);
    unsetenv("XDG_RUNTIME_DIR");
    ck_assert_int_lt(load(&cfg, err, "--user", "--config", conf_path, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, "XDG_RUNTIME_DIR"));
}
END_TEST

START_TEST(generation_keys_have_defaults_and_model_repeats)
{
    struct config cfg;
    char err[512];
    write_conf("n_seq_max = 2\nmax_queued_jobs = 0\n");
    ck_assert_int_eq(load(&cfg, err, "--config", conf_path, "--model", "/m/a.gguf"), CONFIG_RUN);
    ck_assert_int_eq(cfg.n_seq_max, 2);
    ck_assert_int_eq(cfg.max_queued_jobs, 0);
    ck_assert_int_eq(cfg.max_tokens, 4096);
    ck_assert_int_eq(cfg.n_ctx, 0);
    ck_assert_str_eq(cfg.model, "/m/a.gguf");
    char *argv[] = {"bitnetd",   "--config",          conf_path, "--model",
                    "/m/a.gguf", "--model=/m/b.gguf", NULL};
    ck_assert_int_eq(config_load(&cfg, 6, argv, err, sizeof(err)), CONFIG_RUN);
    ck_assert_str_eq(cfg.model, "/m/a.gguf:/m/b.gguf");
    write_conf("n_seq_max = 0\n");
    ck_assert_int_lt(load(&cfg, err, "--config", conf_path, NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(err, "n_seq_max"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("daemon_config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults_come_from_limits_h);
    tcase_add_test(tc, command_line_beats_environment_beats_file);
    tcase_add_test(tc, errors_name_their_source_and_leave_the_output_alone);
    tcase_add_test(tc, help_and_version_are_actions);
    tcase_add_test(tc, user_instance_uses_xdg_runtime_dir);
    tcase_add_test(tc, generation_keys_have_defaults_and_model_repeats);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
