/* Loads a host plan from a YAML file (libyaml), with errors naming file, line and key. */
#ifndef RTVMM_CONFIG_PARSE_H
#define RTVMM_CONFIG_PARSE_H

#include "base/err.h"
#include "config/plan.h"

/*
 * Parses and type-checks `path` into `p`. On error returns -errno (-EINVAL
 * for content errors) with `e` as "FILE:LINE: KEY: what is wrong (value
 * 'V')"; nothing in `p` needs freeing then. Range checks that need no
 * topology (priority 1..99 for fifo/rr, sizes, duplicate VM names, unknown
 * keys, wrong types) are done here.
 */
int plan__load(struct plan *p, const char *path, struct err *e);

#endif
