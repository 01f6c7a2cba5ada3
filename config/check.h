/* `rtvmm check`: validates a whole host plan against a topology, as findings. */
#ifndef RTVMM_CONFIG_CHECK_H
#define RTVMM_CONFIG_CHECK_H

#include <stdio.h>

#include "config/plan.h"
#include "numa/topology.h"

enum finding_level {
	FINDING_ERROR = 0,
	FINDING_WARNING,
};

/* One problem, naming where it is (file:line, key) and the value. */
struct finding {
	enum finding_level level;
	char code[40];             /* stable id, e.g. "cpu-missing", "fifo-shared-core" */
	unsigned line;
	char key[96];
	char value[96];
	char message[320];
};

struct findings {
	struct finding *items;
	unsigned nr;
	unsigned cap;
};

/* Appends every finding for `p` on `t` (topology, host state such as isolation and hugepages). */
int plan__check(const struct plan *p, const struct topology *t, struct findings *out);

unsigned findings__count(const struct findings *f, enum finding_level level);
void findings__free(struct findings *f);

/* Human report: one line per finding, "file:line: error: key: value: message", then a summary. */
void findings__print(const struct findings *f, const struct plan *p, const struct topology *t,
		     FILE *out);

/* The same as a JSON document (jansson) on `out`. Returns 0 or -errno. */
int findings__print_json(const struct findings *f, const struct plan *p, const struct topology *t,
			 FILE *out);

#endif
