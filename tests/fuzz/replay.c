/*
 * replay.c - a main() for the fuzz targets without libFuzzer: runs every
 * file named on the command line, and every regular file in every directory
 * named there, through LLVMFuzzerTestOneInput() once.
 *
 * Linked with each tests/fuzz/fuzz_<name>.c into fuzzrun_<name>, it makes
 * the checked-in corpora regression tests that any compiler can build
 * (ctest -L fuzz). A target reports a broken invariant by aborting, so a
 * failing input fails the run; the file being replayed is printed first,
 * so the culprit is named. Directory entries are sorted, so every run
 * replays in the same order.
 *
 * Exit codes: 0 when at least one input ran and none failed, 1 when an
 * argument could not be read or named no input at all (an empty or missing
 * corpus is a broken test, not a pass).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = -1;

    if (!f || fstat(fileno(f), &st) < 0) {
        perror(path);
        goto out;
    }
    len = (size_t)st.st_size;
    /* Exactly len bytes, as libFuzzer gives, so ASan sees a read past the end. */
    data = malloc(len ? len : 1);
    if (!data || fread(data, 1, len, f) != len) {
        fprintf(stderr, "%s: cannot read\n", path);
        goto out;
    }
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(data, len);
    rc = 0;
out:
    free(data);
    if (f)
        fclose(f);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in dir; returns how many, or -1. */
static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int count = 0;

    if (!d) {
        perror(dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **p = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);

            if (!p)
                break;
            names = p;
        }
        if ((names[n] = strdup(e->d_name)) != NULL)
            n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;

        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) < 0)
                count = -1;
            else if (count >= 0)
                count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    int total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s corpus-dir-or-file...\n", argv[0]);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int n;

        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 1;
        }
        n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]) == 0 ? 1 : -1;
        if (n < 0)
            return 1;
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "%s: no inputs\n", argv[0]);
        return 1;
    }
    fprintf(stderr, "replay: %d input(s) ok\n", total);
    return 0;
}
