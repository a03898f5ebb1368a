/*
 * random.h - unpredictable bytes from the kernel (getrandom), for WebSocket
 * masks and keys and multipart boundaries.
 */
#ifndef LURK_CORE_RANDOM_H
#define LURK_CORE_RANDOM_H

#include <stddef.h>

/* Fills out with n random bytes: 0, or -errno if the kernel refuses. */
int lurk_random(void *out, size_t n);

#endif
