/*
 * fault.h - LURK_FAULT fault injection (tests only): which ops fail, and
 * how. loop.c asks when it arms an op and when the op completes; the syntax
 * is described in fault.c.
 */
#ifndef LURK_CORE_FAULT_H
#define LURK_CORE_FAULT_H

#include <liburing.h>
#include <stdbool.h>

struct lurk_faults;

/* Parses a LURK_FAULT spec (seed: LURK_FAULT_SEED, NULL for 1). NULL when
 * spec is NULL or empty or has no usable entry (bad entries are reported
 * on stderr). */
struct lurk_faults *lurk_faults_new(const char *spec, const char *seed);

/* Prints what was injected, then frees. NULL is a no-op. */
void lurk_faults_free(struct lurk_faults *fs);

/*
 * For an op being armed: counts it against every matching entry, sets
 * *fault to the -errno it will report instead of its result (once, if it
 * was 0), and may shorten sqe->len ("short"). Returns 1 when it did.
 */
int lurk_faults_arm(struct lurk_faults *fs, struct io_uring_sqe *sqe, int *fault);

/* The result an op armed with fault reports (counted as injected). */
int lurk_faults_result(struct lurk_faults *fs, int fault);

#endif
