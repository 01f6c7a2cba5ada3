/* Memory sizes as users write them: 512M, 2G, 1GiB, 4096K, 268435456. */
#ifndef RTVMM_BASE_SIZE_H
#define RTVMM_BASE_SIZE_H

#include <stdint.h>

/*
 * Parses a size with an optional binary suffix (K, M, G, T; optionally
 * followed by "iB" or "B"; case-insensitive). Plain numbers are bytes.
 * Returns 0, -EINVAL (not a size) or -ERANGE (overflows 64 bits).
 */
int size__parse(const char *s, uint64_t *out);

#endif
