/* Error detail: library code records what failed; the edge (CLI) prints it once. */
#ifndef RTVMM_BASE_ERR_H
#define RTVMM_BASE_ERR_H

#include <stdarg.h>

struct err {
	int code;        /* negative errno */
	char msg[512];   /* what failed, naming the file/field/value */
};

/* Records a formatted message and returns `code` (a negative errno) for `return err__set(...)`. */
__attribute__((format(printf, 3, 4)))
int err__set(struct err *e, int code, const char *fmt, ...);

#endif
