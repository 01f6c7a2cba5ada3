/*
 * docs/api/openapi.yaml and the server's route table (app/control.c) name the same calls:
 * every route is documented with its verb, and every documented path and verb is a route.
 */
#include <ctype.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <yaml.h>

#include "app/control.h"

#define MAX_OPS 64

struct op {
	char method[8];
	char path[128];
};

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
}

/* The mapping value of `key` in mapping `map`, or NULL. */
static yaml_node_t *get(yaml_document_t *doc, const yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
		if (!strcmp(scalar(yaml_document_get_node(doc, p->key)), key))
			return yaml_document_get_node(doc, p->value);
	return NULL;
}

/* Every (verb, path) under `paths:`, the verb upper-cased; returns how many. */
static unsigned documented_ops(struct op *ops)
{
	static const char *const verbs[] = { "get", "put", "post", "delete", "patch" };
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *paths;
	yaml_node_pair_t *p;
	unsigned n = 0, v, i;
	FILE *f = fopen(RTVMM_SOURCE_ROOT "/docs/api/openapi.yaml", "r");

	assert_non_null(f);
	assert_true(yaml_parser_initialize(&parser));
	yaml_parser_set_input_file(&parser, f);
	assert_true(yaml_parser_load(&parser, &doc));
	paths = get(&doc, yaml_document_get_root_node(&doc), "paths");
	assert_non_null(paths);
	for (p = paths->data.mapping.pairs.start; p < paths->data.mapping.pairs.top; p++) {
		const char *path = scalar(yaml_document_get_node(&doc, p->key));
		yaml_node_t *item = yaml_document_get_node(&doc, p->value);

		for (v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
			if (!get(&doc, item, verbs[v]))
				continue;
			assert_true(n < MAX_OPS);
			for (i = 0; verbs[v][i]; i++)
				ops[n].method[i] = (char)toupper((unsigned char)verbs[v][i]);
			ops[n].method[i] = '\0';
			snprintf(ops[n].path, sizeof(ops[n].path), "%s", path);
			n++;
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return n;
}

static bool has(const struct op *ops, unsigned n, const char *method, const char *path)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (!strcmp(ops[i].method, method) && !strcmp(ops[i].path, path))
			return true;
	return false;
}

static void test_every_route_is_documented(void **state)
{
	struct op ops[MAX_OPS];
	unsigned n = documented_ops(ops), nr, i;
	const struct api_route *routes = control__routes(&nr);

	(void)state;
	for (i = 0; i < nr; i++)
		if (!has(ops, n, routes[i].method, routes[i].path))
			fail_msg("route %s %s is not in docs/api/openapi.yaml", routes[i].method,
				 routes[i].path);
}

static void test_every_documented_call_is_a_route(void **state)
{
	struct op ops[MAX_OPS], served[MAX_OPS];
	unsigned n = documented_ops(ops), nr, i;
	const struct api_route *routes = control__routes(&nr);

	(void)state;
	assert_true(nr <= MAX_OPS);
	for (i = 0; i < nr; i++) {
		snprintf(served[i].method, sizeof(served[i].method), "%s", routes[i].method);
		snprintf(served[i].path, sizeof(served[i].path), "%s", routes[i].path);
	}
	for (i = 0; i < n; i++)
		if (!has(served, nr, ops[i].method, ops[i].path))
			fail_msg("docs/api/openapi.yaml documents %s %s, the server has no such route",
				 ops[i].method, ops[i].path);
	assert_int_equal(n, nr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_route_is_documented),
		cmocka_unit_test(test_every_documented_call_is_a_route),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
