/*
 * rtvmm-dataplane: the DPDK process that is the vhost-user backend of every guest NIC.
 *
 *   rtvmm-dataplane run [PLAN.yaml] [--lcores LIST] [--port TYPE:TARGET[,opts]]... [--fwd MODE]
 *   rtvmm-dataplane stats [--socket PATH] [--json]
 *   rtvmm-dataplane gen --port SPEC... --lcore N [--sizes LIST] [--search ndr,pdr] [--latency PCTS]
 *
 * The command lines are parsed here, and only here does the program exit; the commands run
 * in their own modules: run in switch.c (the composition root), gen in generator.c, both on
 * the DPDK runtime of runtime.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <rte_config.h>

#include "base/cpus.h"
#include "config/parse.h"
#include "dataplane/config.h"
#include "dataplane/gen.h"
#include "dataplane/log.h"
#include "dataplane/stats.h"
#include "dataplane/switch.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: " DP_PROG " run [PLAN.yaml] [options]     the DPDK vhost-user backend and switch\n"
"       " DP_PROG " stats [--socket PATH] [--json]  counters of a running dataplane\n"
"       " DP_PROG " gen --port SPEC --lcore N [options] traffic generator: RFC 2544 trials\n"
"\n"
"run: ports come from the plan's VM NICs (one vhost-user port per NIC: the dataplane\n"
"listens for NICs in mode client and connects to NICs in mode server) and from --port;\n"
"lcores, main lcore, NUMA node, hugepages and extra EAL arguments from host.dataplane,\n"
"unless given here.\n"
"  -l, --lcores LIST        poll-mode lcores (cpu list: one poll thread per cpu)\n"
"      --main-lcore N       EAL main lcore (default: first poll lcore, which then polls)\n"
"      --no-huge            run on ordinary 4K pages (testing; says what it costs)\n"
"  -m, --mem MB             EAL memory (default: computed from ports and queues)\n"
"      --numa-node N        NUMA node for mbufs (--socket-mem)\n"
"      --file-prefix NAME   EAL runtime files prefix (default " DP_DEFAULT_FILE_PREFIX ")\n"
"      --eal 'ARGS'         extra EAL arguments\n"
"  -p, --port SPEC          add a port (repeatable; index = order, after the plan's NICs):\n"
"                             vhost:SOCKET[,queues=N][,client][,name=LABEL][,mac=MAC]\n"
"                             af_packet:IFNAME[,queues=N][,name=LABEL]\n"
"                             tap:IFNAME[,queues=N][,name=LABEL]\n"
"                             pci:DDDD:BB:DD.F[,queues=N][,name=LABEL]\n"
"                             virtio_user:SOCKET[,queues=N][,server][,name=LABEL]\n"
"  -f, --fwd MODE           xconnect (pairs 0<->1, 2<->3, ...; default without a plan)\n"
"                           l2switch (MAC learning, flooding; default with a plan)\n"
"      --pair A:B           xconnect pair (repeatable; replaces the default pairs);\n"
"                           A:A loops port A back to itself (frames unchanged)\n"
"  -s, --stats-socket PATH  stats socket (default " DP_DEFAULT_STATS_SOCKET ",\n"
"                           with a plan: host.run_dir/dataplane.sock)\n"
"      --stats-interval MS  rate interval (default 1000)\n"
"      --mac-aging S        l2switch MAC aging (default 300, 0 = never)\n"
"      --mac-entries N      l2switch table size (default 8192)\n"
"      --mac-per-port N     MACs one port may hold (default 1024, 0 = no limit;\n"
"                           plan: host.dataplane.mac_per_port)\n"
"      --user USER[:GROUP]  drop to this user after setup (plan: host.user, host.group)\n"
"      --poll-sched POLICY  the poll threads' scheduling: other (default), fifo:PRIO or\n"
"                           rr:PRIO, PRIO 1..99; read back from the kernel and reported\n"
"                           (plan: host.dataplane.policy, priority)\n"
"  -n, --dry-run            print the EAL arguments and ports, start nothing\n"
"SIGINT/SIGTERM stop it gracefully and print a summary.\n"
"\n"
"stats:\n"
"  -s, --socket PATH        the stats socket (default " DP_DEFAULT_STATS_SOCKET ")\n"
"  -j, --json               print the JSON document (else testpmd-style text)\n"
"\n"
"gen: one poll lcore sends frames on its ports (in turn, a burst each) and counts its own\n"
"frames coming back (round-trip time per frame); trials per frame size: a max-rate trial,\n"
"an RFC 2544 binary search for NDR (no loss) and PDR, fixed rates, latency at %% of the NDR.\n"
"  -p, --port SPEC          a port (vhost:SOCK: a guest connects; virtio_user:SOCK:\n"
"                           towards a vhost-user backend); repeatable, up to 32\n"
"  -l, --lcore N            the generator's cpu (EAL main lcore)\n"
"      --no-huge, -m MB, --file-prefix NAME (default rtvmm-gen), --eal 'ARGS'   as for run\n"
"      --dst-mac MAC        destination (default 02:00:00:00:00:02; a guest: its MAC)\n"
"      --src-mac MAC        source (default: the port's MAC)\n"
"      --ethertype N        default 0x88b6\n"
"      --macs N             N address flows per port instead: port p's k-th frame goes\n"
"                           from 02:00:p:k%%N to 02:00:(p^1):k%%N (a learning switch between\n"
"                           ports 0 and 1 learns N MACs on each), 1..16777216\n"
"      --sizes LIST         frame sizes with FCS, 64..1518, or imix (7:4:1 of 64/570/1518)\n"
"                           (default 64)\n"
"      --trial-s S          sending time of a trial (default 1)\n"
"      --warmup-s S         a max-rate trial first (default 1, 0 = none)\n"
"      --drain-ms N         wait for frames in flight after a trial (default 200)\n"
"      --link-timeout S     link up and the first probe back (default 30)\n"
"      --no-probe           only wait for the link (a peer that returns nothing)\n"
"      --no-max             no max-rate trial (the search then needs --rate-cap)\n"
"      --search WHAT        ndr,pdr (default), ndr, pdr or none\n"
"      --pdr-loss PCT       loss a PDR trial may have (default 0.5)\n"
"      --resolution PCT     stop a search when its range is this %% of the top (default 1)\n"
"      --iterations N       trials per search at most (default 10)\n"
"      --rate-cap PPS       top of the search range (default: the max trial's offered rate)\n"
"      --rates LIST         fixed-rate trials (pps; suffixes k, M), e.g. 10k,1M\n"
"      --latency PCTS       latency trials at these %% of the NDR (else the PDR), e.g. 10,50,90\n"
"      --latency-size SIZE  their frame size (default the first of --sizes)\n"
"      --latency-s S        their duration (default --trial-s)\n"
"      --hist-max-us N      latency histogram range, 1 us buckets (default 10000)\n"
"      --json FILE          the result document (default: stdout, after the log)\n");
}

/* ---- run ---- */

enum {
	OPT_MAIN = 256, OPT_NO_HUGE, OPT_NODE, OPT_PREFIX, OPT_EAL, OPT_PAIR, OPT_INTERVAL,
	OPT_AGING, OPT_ENTRIES, OPT_PER_PORT, OPT_USER, OPT_SCHED,
};

static int parse_num(const char *opt, const char *s, unsigned long lo, unsigned long hi,
		     unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || end == s || *end || *out < lo || *out > hi || *s == '-') {
		fprintf(stderr, DP_PROG ": %s %s: expected a number %lu..%lu\n", opt, s, lo, hi);
		return -EINVAL;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lcores", required_argument, NULL, 'l' },
		{ "main-lcore", required_argument, NULL, OPT_MAIN },
		{ "no-huge", no_argument, NULL, OPT_NO_HUGE },
		{ "mem", required_argument, NULL, 'm' },
		{ "numa-node", required_argument, NULL, OPT_NODE },
		{ "file-prefix", required_argument, NULL, OPT_PREFIX },
		{ "eal", required_argument, NULL, OPT_EAL },
		{ "port", required_argument, NULL, 'p' },
		{ "fwd", required_argument, NULL, 'f' },
		{ "pair", required_argument, NULL, OPT_PAIR },
		{ "stats-socket", required_argument, NULL, 's' },
		{ "stats-interval", required_argument, NULL, OPT_INTERVAL },
		{ "mac-aging", required_argument, NULL, OPT_AGING },
		{ "mac-entries", required_argument, NULL, OPT_ENTRIES },
		{ "mac-per-port", required_argument, NULL, OPT_PER_PORT },
		{ "user", required_argument, NULL, OPT_USER },
		{ "poll-sched", required_argument, NULL, OPT_SCHED },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct dp_config c;   /* large: not on the stack */
	struct err e = { 0 };
	unsigned long v;
	int o;

	dp_config__init(&c);
	optind = 1;
	while ((o = getopt_long(argc, argv, "l:m:p:f:s:nh", opts, NULL)) != -1) {
		switch (o) {
		case 'l':
			if (cpus__parse(optarg, &c.lcores) || !CPU_COUNT(&c.lcores)) {
				fprintf(stderr, DP_PROG ": --lcores %s: expected a cpu list (\"1\", \"1-3,6\")\n",
					optarg);
				return 2;
			}
			c.set |= DP_SET_LCORES;
			break;
		case OPT_MAIN:
			if (parse_num("--main-lcore", optarg, 0, RTE_MAX_LCORE - 1, &v))
				return 2;
			c.main_lcore = (int)v;
			c.set |= DP_SET_MAIN;
			break;
		case OPT_NO_HUGE:
			c.no_huge = true;
			c.set |= DP_SET_NO_HUGE;
			break;
		case 'm':
			if (parse_num("--mem", optarg, 16, 1 << 20, &v))
				return 2;
			c.mem_mb = (unsigned)v;
			break;
		case OPT_NODE:
			if (parse_num("--numa-node", optarg, 0, 1023, &v))
				return 2;
			c.node = (int)v;
			break;
		case OPT_PREFIX:
			snprintf(c.file_prefix, sizeof(c.file_prefix), "%s", optarg);
			break;
		case OPT_EAL:
			snprintf(c.extra_eal, sizeof(c.extra_eal), "%s", optarg);
			break;
		case 'p':
			if (dp_config__add_port(&c, optarg, &e)) {
				fprintf(stderr, DP_PROG ": %s\n", e.msg);
				return 2;
			}
			break;
		case 'f':
			if (dp_fwd_parse(optarg, &c.fwd)) {
				fprintf(stderr, DP_PROG ": --fwd %s: expected xconnect or l2switch\n", optarg);
				return 2;
			}
			c.set |= DP_SET_FWD;
			break;
		case OPT_PAIR:
			if (dp_config__add_pair(&c, optarg, &e)) {
				fprintf(stderr, DP_PROG ": %s\n", e.msg);
				return 2;
			}
			break;
		case 's':
			if (strlen(optarg) >= sizeof(c.stats_socket)) {
				fprintf(stderr, DP_PROG ": --stats-socket %s: longer than %zu bytes\n", optarg,
					sizeof(c.stats_socket) - 1);
				return 2;
			}
			snprintf(c.stats_socket, sizeof(c.stats_socket), "%s", optarg);
			c.set |= DP_SET_STATS;
			break;
		case OPT_INTERVAL:
			if (parse_num("--stats-interval", optarg, 10, 3600 * 1000, &v))
				return 2;
			c.stats_interval_ms = (unsigned)v;
			break;
		case OPT_AGING:
			if (parse_num("--mac-aging", optarg, 0, 1000000, &v))
				return 2;
			c.mac_aging_s = (unsigned)v;
			break;
		case OPT_ENTRIES:
			if (parse_num("--mac-entries", optarg, 8, 1 << 24, &v))
				return 2;
			c.mac_entries = (unsigned)v;
			break;
		case OPT_PER_PORT:
			if (parse_num("--mac-per-port", optarg, 0, 1 << 24, &v))
				return 2;
			c.mac_per_port = (unsigned)v;
			c.set |= DP_SET_PER_PORT;
			break;
		case OPT_USER:
			if (dp_config__set_user(&c, optarg, &e)) {
				fprintf(stderr, DP_PROG ": %s\n", e.msg);
				return 2;
			}
			break;
		case OPT_SCHED:
			if (dp_config__parse_sched(&c, optarg, &e)) {
				fprintf(stderr, DP_PROG ": %s\n", e.msg);
				return 2;
			}
			break;
		case 'n':
			c.dry_run = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc - 1) {
		fprintf(stderr, DP_PROG ": run: one plan file at most (got '%s' and '%s')\n", argv[optind],
			argv[optind + 1]);
		return 2;
	}
	if (optind == argc - 1 && dp_config__load_plan(&c, argv[optind], &e)) {
		fprintf(stderr, DP_PROG ": %s\n", e.msg);
		return 1;
	}
	if (dp_config__finish(&c, &e)) {
		fprintf(stderr, DP_PROG ": %s\n", e.msg);
		return 2;
	}
	return dp_switch__run(&c);
}

static int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = DP_DEFAULT_STATS_SOCKET;
	bool as_json = false;
	struct err e = { 0 };
	json_t *doc = NULL;
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			path = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, DP_PROG ": stats: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (dp_stats__query(path, &doc, &e)) {
		fprintf(stderr, DP_PROG ": %s\n", e.msg);
		return 1;
	}
	if (as_json) {
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		dp_stats__print(stdout, doc, "Statistics");
	}
	json_decref(doc);
	return 0;
}

/* ---- gen ---- */

/* "1.5", "10k", "2M", "1G" -> a positive number; -EINVAL otherwise. */
static int parse_scaled(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	if (*end == 'k' || *end == 'K')
		v *= 1e3, end++;
	else if (*end == 'M')
		v *= 1e6, end++;
	else if (*end == 'G')
		v *= 1e9, end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A comma-separated list of numbers (parse_scaled) into out[max]; -EINVAL naming the option. */
static int parse_list(const char *opt, const char *arg, double *out, unsigned max, unsigned *n,
		      bool positive)
{
	char buf[512], *save = NULL, *t;

	snprintf(buf, sizeof(buf), "%s", arg);
	*n = 0;
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n >= max || parse_scaled(t, &out[*n]) || (positive && out[*n] <= 0)) {
			fprintf(stderr, DP_PROG ": %s %s: expected at most %u positive numbers, comma-"
				"separated (suffixes k, M)\n", opt, arg, max);
			return -EINVAL;
		}
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

static int parse_mac(const char *opt, const char *s, uint8_t mac[6])
{
	unsigned v[6], i;
	char tail;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
		goto bad;
	for (i = 0; i < 6; i++) {
		if (v[i] > 255)
			goto bad;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
bad:
	fprintf(stderr, DP_PROG ": %s %s: expected a MAC address (52:54:00:00:00:01)\n", opt, s);
	return -EINVAL;
}

static int parse_real(const char *opt, const char *s, double lo, double hi, double *out)
{
	if (parse_scaled(s, out) || *out < lo || *out > hi) {
		fprintf(stderr, DP_PROG ": %s %s: expected a number %g..%g\n", opt, s, lo, hi);
		return -EINVAL;
	}
	return 0;
}

enum {
	OPT_G_NO_HUGE = 512, OPT_G_PREFIX, OPT_G_EAL, OPT_G_DST, OPT_G_SRC, OPT_G_ETYPE,
	OPT_G_SIZES, OPT_G_TRIAL, OPT_G_WARMUP, OPT_G_DRAIN, OPT_G_LINK, OPT_G_NO_MAX,
	OPT_G_SEARCH, OPT_G_PDR, OPT_G_RES, OPT_G_ITER, OPT_G_CAP, OPT_G_RATES, OPT_G_LAT,
	OPT_G_LAT_SIZE, OPT_G_LAT_S, OPT_G_HIST, OPT_G_JSON, OPT_G_NO_PROBE, OPT_G_MACS,
};

static int cmd_gen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "lcore", required_argument, NULL, 'l' },
		{ "no-huge", no_argument, NULL, OPT_G_NO_HUGE },
		{ "mem", required_argument, NULL, 'm' },
		{ "file-prefix", required_argument, NULL, OPT_G_PREFIX },
		{ "eal", required_argument, NULL, OPT_G_EAL },
		{ "dst-mac", required_argument, NULL, OPT_G_DST },
		{ "src-mac", required_argument, NULL, OPT_G_SRC },
		{ "ethertype", required_argument, NULL, OPT_G_ETYPE },
		{ "macs", required_argument, NULL, OPT_G_MACS },
		{ "sizes", required_argument, NULL, OPT_G_SIZES },
		{ "trial-s", required_argument, NULL, OPT_G_TRIAL },
		{ "warmup-s", required_argument, NULL, OPT_G_WARMUP },
		{ "drain-ms", required_argument, NULL, OPT_G_DRAIN },
		{ "link-timeout", required_argument, NULL, OPT_G_LINK },
		{ "no-max", no_argument, NULL, OPT_G_NO_MAX },
		{ "no-probe", no_argument, NULL, OPT_G_NO_PROBE },
		{ "search", required_argument, NULL, OPT_G_SEARCH },
		{ "pdr-loss", required_argument, NULL, OPT_G_PDR },
		{ "resolution", required_argument, NULL, OPT_G_RES },
		{ "iterations", required_argument, NULL, OPT_G_ITER },
		{ "rate-cap", required_argument, NULL, OPT_G_CAP },
		{ "rates", required_argument, NULL, OPT_G_RATES },
		{ "latency", required_argument, NULL, OPT_G_LAT },
		{ "latency-size", required_argument, NULL, OPT_G_LAT_SIZE },
		{ "latency-s", required_argument, NULL, OPT_G_LAT_S },
		{ "hist-max-us", required_argument, NULL, OPT_G_HIST },
		{ "json", required_argument, NULL, OPT_G_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct dp_config c;
	static struct gen_config g;
	const char *latency_size = NULL;
	struct err e = { 0 };
	unsigned long v;
	unsigned i;
	int o;

	dp_config__init(&c);
	gen_config__init(&g);
	snprintf(c.file_prefix, sizeof(c.file_prefix), "rtvmm-gen");
	optind = 1;
	while ((o = getopt_long(argc, argv, "p:l:m:h", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			if (c.nr_ports >= GEN_MAX_PORTS) {
				fprintf(stderr, DP_PROG ": gen: --port %s: at most %u ports\n", optarg,
					GEN_MAX_PORTS);
				return 2;
			}
			if (dp_config__add_port(&c, optarg, &e)) {
				fprintf(stderr, DP_PROG ": %s\n", e.msg);
				return 2;
			}
			break;
		case 'l':
			if (parse_num("--lcore", optarg, 0, RTE_MAX_LCORE - 1, &v))
				return 2;
			CPU_ZERO(&c.lcores);
			CPU_SET(v, &c.lcores);
			c.main_lcore = (int)v;
			break;
		case OPT_G_NO_HUGE:
			c.no_huge = true;
			break;
		case 'm':
			if (parse_num("--mem", optarg, 16, 1 << 20, &v))
				return 2;
			c.mem_mb = (unsigned)v;
			break;
		case OPT_G_PREFIX:
			snprintf(c.file_prefix, sizeof(c.file_prefix), "%s", optarg);
			break;
		case OPT_G_EAL:
			snprintf(c.extra_eal, sizeof(c.extra_eal), "%s", optarg);
			break;
		case OPT_G_DST:
			if (parse_mac("--dst-mac", optarg, g.dst))
				return 2;
			break;
		case OPT_G_SRC:
			if (parse_mac("--src-mac", optarg, g.src))
				return 2;
			g.src_set = true;
			break;
		case OPT_G_ETYPE: {
			char *end;

			v = strtoul(optarg, &end, 0);
			if (*end || end == optarg || v < 0x600 || v > 0xffff) {
				fprintf(stderr, DP_PROG ": --ethertype %s: expected 0x0600..0xffff\n", optarg);
				return 2;
			}
			g.ethertype = (uint16_t)v;
			break;
		}
		case OPT_G_MACS:
			if (parse_num("--macs", optarg, 1, GEN_MAX_MACS, &v))
				return 2;
			g.macs = (uint32_t)v;
			break;
		case OPT_G_SIZES: {
			char buf[256], *save = NULL, *t;

			snprintf(buf, sizeof(buf), "%s", optarg);
			g.nr_sizes = 0;
			for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				if (g.nr_sizes >= GEN_MAX_SIZES) {
					fprintf(stderr, DP_PROG ": --sizes %s: at most %u sizes\n", optarg,
						GEN_MAX_SIZES);
					return 2;
				}
				if (gen_size__parse(t, &g.sizes[g.nr_sizes++], &e)) {
					fprintf(stderr, DP_PROG ": %s\n", e.msg);
					return 2;
				}
			}
			if (!g.nr_sizes) {
				fprintf(stderr, DP_PROG ": --sizes: empty\n");
				return 2;
			}
			break;
		}
		case OPT_G_TRIAL:
			if (parse_real("--trial-s", optarg, 0.001, 3600, &g.trial_s))
				return 2;
			break;
		case OPT_G_WARMUP:
			if (parse_real("--warmup-s", optarg, 0, 3600, &g.warmup_s))
				return 2;
			break;
		case OPT_G_DRAIN:
			if (parse_num("--drain-ms", optarg, 0, 60000, &v))
				return 2;
			g.drain_ms = (unsigned)v;
			break;
		case OPT_G_LINK:
			if (parse_real("--link-timeout", optarg, 0.1, 3600, &g.link_timeout_s))
				return 2;
			break;
		case OPT_G_NO_MAX:
			g.max_trial = false;
			break;
		case OPT_G_NO_PROBE:
			g.probe = false;
			break;
		case OPT_G_SEARCH:
			g.ndr = strstr(optarg, "ndr") != NULL;
			g.pdr = strstr(optarg, "pdr") != NULL;
			if (strcmp(optarg, "none") && strcmp(optarg, "ndr") && strcmp(optarg, "pdr") &&
			    strcmp(optarg, "ndr,pdr") && strcmp(optarg, "pdr,ndr")) {
				fprintf(stderr, DP_PROG ": --search %s: ndr,pdr, ndr, pdr or none\n", optarg);
				return 2;
			}
			break;
		case OPT_G_PDR:
			if (parse_real("--pdr-loss", optarg, 0, 100, &g.pdr_loss_pct))
				return 2;
			break;
		case OPT_G_RES:
			if (parse_real("--resolution", optarg, 0.001, 100, &g.resolution_pct))
				return 2;
			break;
		case OPT_G_ITER:
			if (parse_num("--iterations", optarg, 1, 100, &v))
				return 2;
			g.iterations = (unsigned)v;
			break;
		case OPT_G_CAP:
			if (parse_real("--rate-cap", optarg, 1, 1e9, &g.rate_cap_pps))
				return 2;
			break;
		case OPT_G_RATES:
			if (parse_list("--rates", optarg, g.rates, GEN_MAX_RATES, &g.nr_rates, true))
				return 2;
			break;
		case OPT_G_LAT:
			if (parse_list("--latency", optarg, g.latency_pct, GEN_MAX_LATENCY, &g.nr_latency,
				       true))
				return 2;
			break;
		case OPT_G_LAT_SIZE:
			latency_size = optarg;
			break;
		case OPT_G_LAT_S:
			if (parse_real("--latency-s", optarg, 0.001, 3600, &g.latency_s))
				return 2;
			break;
		case OPT_G_HIST:
			if (parse_num("--hist-max-us", optarg, 10, 10 * 1000 * 1000, &v))
				return 2;
			g.hist_max_us = (unsigned)v;
			break;
		case OPT_G_JSON:
			snprintf(g.json, sizeof(g.json), "%s", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, DP_PROG ": gen: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!c.nr_ports || !CPU_COUNT(&c.lcores)) {
		fprintf(stderr, DP_PROG ": gen: needs --port SPEC and --lcore N\n");
		return 2;
	}
	if (!g.max_trial && g.rate_cap_pps <= 0 && (g.ndr || g.pdr)) {
		fprintf(stderr, DP_PROG ": gen: --no-max with a search needs --rate-cap PPS (the top of "
			"the search range)\n");
		return 2;
	}
	if (latency_size) {
		g.latency_size = -1;
		for (i = 0; i < g.nr_sizes; i++)
			if (!strcmp(g.sizes[i].label, latency_size))
				g.latency_size = (int)i;
		if (g.latency_size < 0) {
			fprintf(stderr, DP_PROG ": --latency-size %s: not one of --sizes\n", latency_size);
			return 2;
		}
	}
	if (g.nr_latency && !g.ndr) {
		fprintf(stderr, DP_PROG ": gen: --latency needs the NDR search (--search ndr or ndr,pdr)\n");
		return 2;
	}
	if (dp_config__finish(&c, &e)) {
		fprintf(stderr, DP_PROG ": %s\n", e.msg);
		return 2;
	}
	return dp_gen__run(&c, &g);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stats"))
		return cmd_stats(argc - 1, argv + 1);
	if (!strcmp(argv[1], "gen"))
		return cmd_gen(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf(DP_PROG " " RTVMM_VERSION "\n");
		return 0;
	}
	fprintf(stderr, DP_PROG ": unknown command '%s' (run, stats, gen, help)\n", argv[1]);
	usage(stderr);
	return 2;
}
