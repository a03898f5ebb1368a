/*
 * main.c - the lurk program: run a script, a string, or standard input.
 *
 *   lurk script.lua [args]   arguments in `arg` (arg[0] the script) and `...`
 *   lurk -e CODE             run CODE (may be given several times)
 *   lurk -                   the script comes from standard input
 *   lurk -i [script]         the interactive prompt (after the script, if any);
 *                            also what plain `lurk` does on a terminal
 *   lurk --version           versions, ring setup and kTLS availability
 *
 * The program is an ordinary user of include/lurk.h. It raises its soft
 * open-files limit to the hard one so thousands of connections just work.
 * Exit status: 0 when every script ran without an uncaught error, 1 otherwise.
 */
#include "lurk.h"
#include "repl.h"

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <liburing.h>
#include <ares.h>
#include <mbedtls/build_info.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: lurk [options] [script [args...]]\n"
          "  -e CODE      run CODE (repeatable; runs before the script)\n"
          "  -i           interactive prompt, after running -e code and the script\n"
          "  -            read the script from standard input\n"
          "  -v, --version  print versions and kernel support, then exit\n"
          "  -h, --help   show this help\n"
          "With no script and no -e: the prompt on a terminal, else a script from standard input.\n"
          "Environment: LURK_KTLS=auto|off|require, LURK_TRACE=http, LURK_HISTORY=file (empty: none),\n"
          "  LURK_DNS_SERVERS=host:port,... (instead of /etc/resolv.conf), SSL_CERT_FILE, SSL_CERT_DIR,\n"
          "  HTTP_PROXY, HTTPS_PROXY, NO_PROXY. See lurk(1).\n", f);
}

static void raise_nofile(void)
{
    struct rlimit r;

    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* "tls" listed in tcp_available_ulp means the kTLS module is loaded. */
static const char *ktls_status(void)
{
    char line[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");

    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
        for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n"))
            if (strcmp(tok, "tls") == 0)
                return "available (tls ULP loaded)";
    }
    if (access("/sys/module/tls", F_OK) == 0)
        return "available (tls module present)";
    return "not available (no tls ULP: the kernel lacks CONFIG_TLS or the tls module is not loaded); "
           "TLS runs in userspace";
}

static int version(void)
{
    struct lurk *l;
    const char *ring = "unavailable";

    if (lurk_new(&l, NULL) == 0)
        ring = lurk_features(l);
    else
        l = NULL;
    printf("lurk %s\n", LURK_VERSION);
    printf("%s\n", LUAJIT_VERSION);
    printf("liburing %d.%d (ring: %s)\n", io_uring_major_version(), io_uring_minor_version(),
           ring);
    printf("mbedTLS %s\n", MBEDTLS_VERSION_STRING);
    printf("c-ares %s\n", ares_version(NULL));
    printf("kTLS: %s\n", ktls_status());
    lurk_free(l);
    return 0;
}

static void set_arg_table(lua_State *L, char **argv, int script_at, int argc)
{
    lua_createtable(L, argc - script_at, script_at + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script_at);
    }
    lua_setglobal(L, "arg");
}

int main(int argc, char **argv)
{
    struct lurk_options opts = { .flags = LURK_OPT_GLOBALS };
    struct lurk *l;
    int rc, i, script_at = -1, nexec = 0;
    bool interactive = false;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0)
            return version();
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "-i") == 0) {
            interactive = true;
            continue;
        }
        if (strcmp(argv[i], "-e") == 0) {
            if (++i >= argc) {
                fputs("lurk: -e needs an argument\n", stderr);
                return 2;
            }
            nexec++;
            continue;
        }
        if (strcmp(argv[i], "--") == 0) {
            if (i + 1 < argc)
                script_at = i + 1;
            break;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "lurk: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
        script_at = i;
        break;
    }

    raise_nofile();
    rc = lurk_new(&l, &opts);
    if (rc < 0) {
        fprintf(stderr, "lurk: cannot start: %s: %s\n", lurk_strerror(rc), lurk_strerror_setup(rc));
        return 1;
    }
    set_arg_table(lurk_lua(l), argv, script_at >= 0 ? script_at : argc, argc);

    if (!interactive && script_at < 0 && nexec == 0 && isatty(STDIN_FILENO))
        interactive = true;           /* plain `lurk` on a terminal */

    /* With -i, code given on the command line starts, then the prompt comes
     * up while its tasks go on (a script may keep a WebSocket open). */
    for (i = 1; i < argc && (script_at < 0 || i < script_at); i++) {
        if (strcmp(argv[i], "-e") == 0) {
            rc = lurk_do_string(l, argv[++i], "=(command line)");
            if (rc == 0 && !interactive)
                rc = lurk_run(l, LURK_RUN_DEFAULT);
            if (rc < 0)
                goto fail;
        }
    }
    if (interactive) {
        if (script_at >= 0 && strcmp(argv[script_at], "-") == 0) {
            fputs("lurk: -i reads chunks from standard input; it cannot also read a script from it\n", stderr);
            lurk_free(l);
            return 2;
        }
        if (script_at >= 0) {
            rc = lurk_do_file(l, argv[script_at], argc - script_at - 1, argv + script_at + 1);
            if (rc < 0)
                fprintf(stderr, "lurk: %s\n", lurk_errmsg(l));
        }
        rc = lurk_repl(l);
        lurk_free(l);
        return rc;
    }
    if (script_at >= 0 || nexec == 0) {
        const char *path = script_at >= 0 ? argv[script_at] : NULL;
        int nargs = script_at >= 0 ? argc - script_at - 1 : 0;

        if (path && strcmp(path, "-") == 0)
            path = NULL;
        rc = lurk_do_file(l, path, nargs, script_at >= 0 ? argv + script_at + 1 : NULL);
        if (rc == 0)
            rc = lurk_run(l, LURK_RUN_DEFAULT);
        if (rc < 0)
            goto fail;
    }
    lurk_free(l);
    return 0;
fail:
    fprintf(stderr, "lurk: %s\n", lurk_errmsg(l));
    lurk_free(l);
    return 1;
}
