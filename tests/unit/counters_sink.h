/*
 * A counter_sink (vmm/device.h) for tests: keeps every number and word a
 * device gives, to look up by name. Include after <cmocka.h>.
 */
#ifndef RTVMM_TESTS_COUNTERS_SINK_H
#define RTVMM_TESTS_COUNTERS_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vmm/device.h"

struct counters {
	unsigned nr;
	struct {
		char name[40];
		bool is_num;
		uint64_t num;
		char str[256];
	} v[64];
};

static void counters_put_num(void *opaque, const char *name, uint64_t value)
{
	struct counters *c = opaque;

	if (c->nr == sizeof(c->v) / sizeof(c->v[0]))
		fail_msg("more than %u counters", c->nr);
	snprintf(c->v[c->nr].name, sizeof(c->v[c->nr].name), "%s", name);
	c->v[c->nr].is_num = true;
	c->v[c->nr].num = value;
	c->nr++;
}

static void counters_put_str(void *opaque, const char *name, const char *value)
{
	struct counters *c = opaque;

	if (c->nr == sizeof(c->v) / sizeof(c->v[0]))
		fail_msg("more than %u counters", c->nr);
	snprintf(c->v[c->nr].name, sizeof(c->v[c->nr].name), "%s", name);
	c->v[c->nr].is_num = false;
	snprintf(c->v[c->nr].str, sizeof(c->v[c->nr].str), "%s", value);
	c->nr++;
}

/* A sink that fills `c` (emptied first). */
static inline struct counter_sink counters_sink(struct counters *c)
{
	c->nr = 0;
	return (struct counter_sink){ .num = counters_put_num, .str = counters_put_str, .opaque = c };
}

/* Whether the device gave `name`, once. */
static inline bool counters_has(const struct counters *c, const char *name)
{
	unsigned i, n = 0;

	for (i = 0; i < c->nr; i++)
		n += !strcmp(c->v[i].name, name);
	if (n > 1)
		fail_msg("counter %s given %u times", name, n);
	return n == 1;
}

/* The number `name` (a test failure when the device gave none). */
static inline uint64_t counters_num(const struct counters *c, const char *name)
{
	unsigned i;

	for (i = 0; i < c->nr; i++)
		if (!strcmp(c->v[i].name, name) && c->v[i].is_num)
			return c->v[i].num;
	fail_msg("no counter %s", name);
	return 0;
}

/* The word `name` (a test failure when the device gave none). */
static inline const char *counters_str(const struct counters *c, const char *name)
{
	unsigned i;

	for (i = 0; i < c->nr; i++)
		if (!strcmp(c->v[i].name, name) && !c->v[i].is_num)
			return c->v[i].str;
	fail_msg("no word %s", name);
	return "";
}

#endif
