/*
 * Fuzz target: a plan file through the loader (config/parse.c, libyaml) and, when it loads, the
 * checker (config/check.c) against one of three synthetic topologies, with both reports.
 *
 * Input: byte 0 picks the topology (a 2-socket telco host with isolated cores and hugepages, a
 * 2-cpu development box, the telco host without host state); the rest is the YAML.
 * Beyond the sanitizers: a load that fails leaves the plan empty, and every finding names a
 * code and a level.
 */
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "config/check.h"
#include "config/parse.h"
#include "config/plan.h"
#include "numa/topology.h"

#include "fuzz.h"

#define TELCO_DESC                                                                           \
	"package:2 numa:1 core:8 pu:2(indexes=0,16,1,17,2,18,3,19,4,20,5,21,6,22,7,23,8,24,9," \
	"25,10,26,11,27,12,28,13,29,14,30,15,31)"
#define TELCO_OVERRIDES                                                                      \
	"isolated=1-7,9-15,17-23,25-31 nohz_full=1-7,9-15,17-23,25-31 "                      \
	"hugepages=node0:2M:2048,node0:1G:8,node1:2M:1024,node1:1G:4 rt_runtime=-1"
#define SMALL_DESC "numa:1 core:2 pu:1"
#define SMALL_OVERRIDES                                                                      \
	"isolated=none nohz_full=none pagesizes=2M hugepages=node0:2M:0 rt_runtime=950000 "    \
	"rt_period=1000000"

static const struct {
	const char *desc, *overrides;
} topologies[] = {
	{ TELCO_DESC, TELCO_OVERRIDES },
	{ SMALL_DESC, SMALL_OVERRIDES },
	{ TELCO_DESC, NULL },
};

#define NR_TOPOLOGIES (sizeof(topologies) / sizeof(topologies[0]))

static struct topology topo[NR_TOPOLOGIES];
static FILE *sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct err e = { 0 };
	unsigned i;

	(void)argc;
	(void)argv;
	for (i = 0; i < NR_TOPOLOGIES; i++)
		FUZZ_CHECK(!topology__load_synthetic(&topo[i], topologies[i].desc,
						     topologies[i].overrides, &e),
			   "synthetic topology %u: %s", i, e.msg);
	sink = fopen("/dev/null", "w");
	FUZZ_CHECK(sink, "cannot open /dev/null");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct topology *t;
	struct findings f = { 0 };
	struct plan p;
	struct err e = { 0 };
	char path[64];
	unsigned i;
	int fd, err;

	if (!size)
		return 0;
	t = &topo[data[0] % NR_TOPOLOGIES];
	fd = fuzz_file(data + 1, size - 1, path, sizeof(path));
	FUZZ_CHECK(fd >= 0, "cannot make the plan file");
	err = plan__load(&p, path, &e);
	close(fd);
	if (err) {
		FUZZ_CHECK(err < 0 && e.msg[0], "plan__load returned %d with message '%s'", err, e.msg);
		FUZZ_CHECK(!p.nr_vms && !p.vms, "a failed load left %u VMs", p.nr_vms);
		return 0;
	}
	err = plan__check(&p, t, &f);
	FUZZ_CHECK(!err, "plan__check: %d", err);
	for (i = 0; i < f.nr; i++)
		FUZZ_CHECK(f.items[i].code[0] && (f.items[i].level == FINDING_ERROR ||
						 f.items[i].level == FINDING_WARNING),
			   "finding %u: code '%s' level %d", i, f.items[i].code, f.items[i].level);
	findings__print(&f, &p, t, sink);
	FUZZ_CHECK(!findings__print_json(&f, &p, t, sink), "findings__print_json failed");
	findings__free(&f);
	plan__free(&p);
	return 0;
}
