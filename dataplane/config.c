#include "dataplane/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpus.h"
#include "config/parse.h"
#include "config/plan.h"

/* Bytes one mbuf costs in the pool: data room, mbuf header, mempool header and trailer. */
#define MBUF_FOOTPRINT    2560
#define MIN_MBUFS         8192
#define EAL_OVERHEAD_MB   64        /* ethdev/vhost structures, rings, the malloc heap */
#define PORT_OVERHEAD_MB  4         /* per port: its device's rings and queue state (32 vhost
					 * or virtio_user ports did not fit in 64 MB) */
#define MIN_MEM_MB        128

static const char *const kind_names[] = {
	[DP_PORT_VHOST] = "vhost",
	[DP_PORT_AF_PACKET] = "af_packet",
	[DP_PORT_TAP] = "tap",
	[DP_PORT_PCI] = "pci",
	[DP_PORT_VIRTIO_USER] = "virtio_user",
};

static const char *const vdev_drivers[] = {
	[DP_PORT_VHOST] = "net_vhost",
	[DP_PORT_AF_PACKET] = "net_af_packet",
	[DP_PORT_TAP] = "net_tap",
	[DP_PORT_PCI] = NULL,
	[DP_PORT_VIRTIO_USER] = "net_virtio_user",
};

void dp_config__init(struct dp_config *c)
{
	memset(c, 0, sizeof(*c));
	CPU_ZERO(&c->lcores);
	c->main_lcore = -1;
	c->node = -1;
	snprintf(c->file_prefix, sizeof(c->file_prefix), "%s", DP_DEFAULT_FILE_PREFIX);
	snprintf(c->stats_socket, sizeof(c->stats_socket), "%s", DP_DEFAULT_STATS_SOCKET);
	c->stats_interval_ms = 1000;
	c->mac_aging_s = 300;
	c->mac_entries = 8192;
	c->mac_per_port = DP_DEFAULT_MAC_PER_PORT;
	c->fwd = DP_FWD_XCONNECT;
}

const char *dp_fwd_name(enum dp_fwd f)
{
	return f == DP_FWD_L2SWITCH ? "l2switch" : "xconnect";
}

int dp_fwd_parse(const char *s, enum dp_fwd *f)
{
	if (!strcmp(s, "xconnect"))
		*f = DP_FWD_XCONNECT;
	else if (!strcmp(s, "l2switch"))
		*f = DP_FWD_L2SWITCH;
	else
		return -EINVAL;
	return 0;
}

const char *dp_port_kind_name(enum dp_port_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* "52:54:00:00:00:01" -> mac; -EINVAL unless six hex bytes of a unicast, non-zero address. */
static int parse_mac(const char *s, size_t len, uint8_t mac[6])
{
	unsigned i, v;

	if (len != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		char hex[3] = { s[3 * i], s[3 * i + 1], 0 };
		char *end;

		if ((i < 5 && s[3 * i + 2] != ':') || !hex[0] || hex[0] == ':' || hex[1] == ':')
			return -EINVAL;
		v = (unsigned)strtoul(hex, &end, 16);
		if (*end)
			return -EINVAL;
		mac[i] = (uint8_t)v;
	}
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

/* Copies `len` bytes of `s` into dst (size `size`); -ENAMETOOLONG if it does not fit. */
static int copy_n(char *dst, size_t size, const char *s, size_t len)
{
	if (len >= size)
		return -ENAMETOOLONG;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

int dp_config__add_port(struct dp_config *c, const char *arg, struct err *e)
{
	struct dp_port_spec s = { .queues = 1 };
	const char *types = "vhost, af_packet, tap, pci, virtio_user";
	const char *colon = strchr(arg, ':');
	const char *p, *comma;
	unsigned k;
	bool found = false;

	if (c->nr_ports >= DP_MAX_PORTS)
		return err__set(e, -E2BIG, "--port %s: at most %u ports", arg, DP_MAX_PORTS);
	if (!colon)
		return err__set(e, -EINVAL, "--port %s: expected TYPE:TARGET[,options] with TYPE "
				"one of %s", arg, types);
	for (k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++) {
		if (strlen(kind_names[k]) == (size_t)(colon - arg) &&
		    !strncmp(arg, kind_names[k], (size_t)(colon - arg))) {
			s.kind = (enum dp_port_kind)k;
			found = true;
		}
	}
	if (!found)
		return err__set(e, -EINVAL, "--port %s: unknown type '%.*s' (%s)",
				arg, (int)(colon - arg), arg, types);
	s.client = s.kind == DP_PORT_VIRTIO_USER;   /* a frontend connects unless told `server` */
	p = colon + 1;
	comma = strchr(p, ',');
	if (comma == p || !*p)
		return err__set(e, -EINVAL, "--port %s: no %s given", arg,
				s.kind == DP_PORT_VHOST || s.kind == DP_PORT_VIRTIO_USER ? "socket path" :
				s.kind == DP_PORT_PCI ? "PCI address" : "interface name");
	if (copy_n(s.target, sizeof(s.target), p, comma ? (size_t)(comma - p) : strlen(p)))
		return err__set(e, -ENAMETOOLONG, "--port %s: '%.*s' is too long (at most %zu bytes)",
				arg, comma ? (int)(comma - p) : (int)strlen(p), p, sizeof(s.target) - 1);
	while (comma) {
		const char *opt = comma + 1;
		size_t len;

		comma = strchr(opt, ',');
		len = comma ? (size_t)(comma - opt) : strlen(opt);
		if (len > 7 && !strncmp(opt, "queues=", 7)) {
			char num[16];

			if (copy_n(num, sizeof(num), opt + 7, len - 7) ||
			    parse_uint(num, 1, DP_MAX_QUEUES, &s.queues))
				return err__set(e, -EINVAL, "--port %s: queues must be 1..%u (value '%.*s')",
						arg, DP_MAX_QUEUES, (int)(len - 7), opt + 7);
		} else if (len == 6 && !strncmp(opt, "client", 6) && s.kind == DP_PORT_VHOST) {
			s.client = true;
		} else if (len == 6 && !strncmp(opt, "server", 6) && s.kind == DP_PORT_VIRTIO_USER) {
			s.client = false;
		} else if (len > 4 && !strncmp(opt, "mac=", 4) && s.kind == DP_PORT_VHOST) {
			if (parse_mac(opt + 4, len - 4, s.mac))
				return err__set(e, -EINVAL, "--port %s: mac '%.*s': expected a unicast MAC "
						"such as 52:54:00:00:00:01", arg, (int)(len - 4), opt + 4);
			s.mac_set = true;
		} else if (len > 5 && !strncmp(opt, "name=", 5)) {
			if (copy_n(s.name, sizeof(s.name), opt + 5, len - 5))
				return err__set(e, -ENAMETOOLONG, "--port %s: name too long", arg);
		} else {
			return err__set(e, -EINVAL, "--port %s: unknown option '%.*s' (queues=N, name=L%s)",
					arg, (int)len, opt, s.kind == DP_PORT_VHOST ? ", client, mac=MAC" :
					s.kind == DP_PORT_VIRTIO_USER ? ", server" : "");
		}
	}
	c->ports[c->nr_ports++] = s;   /* unnamed ports are named portN by dp_config__finish */
	return 0;
}

int dp_config__parse_sched(struct dp_config *c, const char *arg, struct err *e)
{
	static const enum rt_policy policies[] = { RT_POLICY_OTHER, RT_POLICY_FIFO, RT_POLICY_RR };
	const char *colon = strchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
	char *end;
	unsigned i;
	long prio;

	for (i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		if (strlen(rt__policy_name(policies[i])) == n &&
		    !strncmp(arg, rt__policy_name(policies[i]), n))
			break;
	if (i == sizeof(policies) / sizeof(policies[0]))
		return err__set(e, -EINVAL, "--poll-sched %s: expected other, fifo:PRIO or rr:PRIO", arg);
	if (policies[i] == RT_POLICY_OTHER) {
		if (colon)
			return err__set(e, -EINVAL, "--poll-sched %s: policy other takes no priority", arg);
		prio = 0;
	} else {
		if (!colon)
			return err__set(e, -EINVAL, "--poll-sched %s: policy %s needs a priority 1..99 "
					"(%s:PRIO)", arg, rt__policy_name(policies[i]),
					rt__policy_name(policies[i]));
		errno = 0;
		prio = strtol(colon + 1, &end, 10);
		if (errno || end == colon + 1 || *end || prio < 1 || prio > 99)
			return err__set(e, -EINVAL, "--poll-sched %s: priority '%s' is not 1..99", arg,
					colon + 1);
	}
	c->poll_policy = policies[i];
	c->poll_priority = (int)prio;
	c->set |= DP_SET_SCHED;
	return 0;
}

int dp_config__add_pair(struct dp_config *c, const char *arg, struct err *e)
{
	const char *colon = strchr(arg, ':');
	char a[16];

	if (c->nr_pairs >= DP_MAX_PORTS)
		return err__set(e, -E2BIG, "--pair %s: too many pairs", arg);
	if (!colon || copy_n(a, sizeof(a), arg, (size_t)(colon - arg)) ||
	    parse_uint(a, 0, DP_MAX_PORTS - 1, &c->pairs[c->nr_pairs].a) ||
	    parse_uint(colon + 1, 0, DP_MAX_PORTS - 1, &c->pairs[c->nr_pairs].b))
		return err__set(e, -EINVAL, "--pair %s: expected A:B, two port indexes (0..%u)",
				arg, DP_MAX_PORTS - 1);
	c->nr_pairs++;
	return 0;
}

int dp_config__load_plan(struct dp_config *c, const char *path, struct err *e)
{
	const struct plan_dataplane *dp;
	struct plan plan;
	struct dp_port_spec extra[DP_MAX_PORTS];
	unsigned nr_extra = c->nr_ports, v, n, i;
	int rc;

	rc = plan__load(&plan, path, e);
	if (rc)
		return rc;
	snprintf(c->plan_file, sizeof(c->plan_file), "%s", path);
	snprintf(c->run_dir, sizeof(c->run_dir), "%s", plan.host.run_dir);
	if (!(c->set & DP_SET_USER)) {
		snprintf(c->user, sizeof(c->user), "%s", plan.host.user);
		snprintf(c->group, sizeof(c->group), "%s", plan.host.group);
	}
	if (!(c->set & DP_SET_STATS) &&
	    snprintf(c->stats_socket, sizeof(c->stats_socket), "%s/dataplane.sock",
		     plan.host.run_dir) >= (int)sizeof(c->stats_socket)) {
		rc = err__set(e, -ENAMETOOLONG, "%s: host.run_dir %s: too long for the stats socket "
			      "(give --stats-socket)", path, plan.host.run_dir);
		goto out;
	}
	dp = &plan.host.dataplane;
	if (!dp->present && !(c->set & DP_SET_LCORES)) {
		rc = err__set(e, -EINVAL, "%s: no host.dataplane section: the dataplane's cores come "
			      "from host.dataplane.cores (or give --lcores)", path);
		goto out;
	}
	if (dp->present) {
		if (!(c->set & DP_SET_LCORES))
			c->lcores = dp->cores;
		if (!(c->set & DP_SET_MAIN)) {
			c->main_lcore = dp->main_core;
			/* Not given: a housekeeping cpu (rtvmm check's rule), else the first poll core. */
			if (c->main_lcore < 0 && plan.host.housekeeping_set) {
				for (i = 0; i < CPU_SETSIZE; i++) {
					if (CPU_ISSET(i, &plan.host.housekeeping) && !CPU_ISSET(i, &c->lcores)) {
						c->main_lcore = (int)i;
						break;
					}
				}
			}
		}
		if (!(c->set & DP_SET_NO_HUGE))
			c->no_huge = dp->no_huge;
		if (!(c->set & DP_SET_SCHED)) {
			c->poll_policy = dp->policy;
			c->poll_priority = dp->priority;
		}
		if (!(c->set & DP_SET_PER_PORT) && dp->mac_per_port)
			c->mac_per_port = dp->mac_per_port;
		if (c->node < 0)
			c->node = dp->node;
		if (dp->extra_eal[0]) {  /* the plan's first, then the command line's --eal */
			char cli[sizeof(c->extra_eal)];
			int len;

			snprintf(cli, sizeof(cli), "%s", c->extra_eal);
			len = snprintf(c->extra_eal, sizeof(c->extra_eal), "%s%s%s", dp->extra_eal,
				       cli[0] ? " " : "", cli);
			if (len < 0 || (size_t)len >= sizeof(c->extra_eal)) {
				rc = err__set(e, -E2BIG, "%s: host.dataplane.eal_args and --eal together "
					      "exceed %zu bytes", path, sizeof(c->extra_eal) - 1);
				goto out;
			}
		}
	}
	if (!(c->set & DP_SET_FWD))
		c->fwd = DP_FWD_L2SWITCH;

	/* The plan's NICs come first (ports 0..n-1), then the command line's --port. */
	memcpy(extra, c->ports, sizeof(extra[0]) * nr_extra);
	n = 0;
	for (v = 0; v < plan.nr_vms; v++) {
		const struct plan_vm *vm = &plan.vms[v];

		for (i = 0; i < vm->nr_nics; i++) {
			const struct plan_nic *nic = &vm->nics[i];
			struct dp_port_spec *s;

			if (n + nr_extra >= DP_MAX_PORTS) {
				rc = err__set(e, -E2BIG, "%s:%u: %s: more than %u ports", path, nic->loc.line,
					      nic->loc.key, DP_MAX_PORTS);
				goto out;
			}
			s = &c->ports[n++];
			memset(s, 0, sizeof(*s));
			s->kind = DP_PORT_VHOST;
			snprintf(s->name, sizeof(s->name), "%s.%s", vm->name, nic->name);
			snprintf(s->target, sizeof(s->target), "%s", nic->socket);
			s->queues = nic->queues ? nic->queues : 1;
			if (s->queues > DP_MAX_QUEUES) {
				rc = err__set(e, -EINVAL, "%s:%u: %s.queues: the dataplane supports at most %u "
					      "queue pairs per port (value %u)", path, nic->loc.line,
					      nic->loc.key, DP_MAX_QUEUES, s->queues);
				goto out;
			}
			/* rtvmm connects (client) -> the dataplane listens, and the other way round. */
			s->client = nic->mode == PLAN_NIC_SERVER;
			plan_nic__guest_mac(nic, s->mac);
			s->mac_set = true;
			s->from_plan = true;
		}
	}
	for (i = 0; i < nr_extra; i++)
		c->ports[n + i] = extra[i];
	c->nr_ports = n + nr_extra;
	rc = 0;
out:
	plan__free(&plan);
	return rc;
}

unsigned dp_config__nr_lcores(const struct dp_config *c)
{
	return (unsigned)CPU_COUNT(&c->lcores);
}

unsigned dp_config__main_lcore(const struct dp_config *c)
{
	unsigned i;

	if (c->main_lcore >= 0)
		return (unsigned)c->main_lcore;
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &c->lcores))
			return i;
	return 0;
}

int dp_config__peer(const struct dp_config *c, unsigned i)
{
	unsigned k;

	if (c->fwd != DP_FWD_XCONNECT || i >= c->nr_ports)
		return -1;
	if (!c->nr_pairs)
		return (i ^ 1u) < c->nr_ports ? (int)(i ^ 1u) : -1;
	for (k = 0; k < c->nr_pairs; k++) {
		if (c->pairs[k].a == i)
			return (int)c->pairs[k].b;
		if (c->pairs[k].b == i)
			return (int)c->pairs[k].a;
	}
	return -1;
}

int dp_config__set_user(struct dp_config *c, const char *arg, struct err *e)
{
	const char *colon = strchr(arg, ':');
	size_t ulen = colon ? (size_t)(colon - arg) : strlen(arg);

	if (!ulen || copy_n(c->user, sizeof(c->user), arg, ulen) ||
	    snprintf(c->group, sizeof(c->group), "%s", colon ? colon + 1 : "") >= (int)sizeof(c->group) ||
	    (colon && !colon[1]))
		return err__set(e, -EINVAL, "--user %s: expected USER or USER:GROUP (names or ids, at "
				"most %zu characters each)", arg, sizeof(c->user) - 1);
	c->set |= DP_SET_USER;
	return 0;
}

/* Names the byte at `bad` in a message: "character ','" or "byte 0x0a". */
static const char *describe_char(const char *bad, char *buf, size_t len)
{
	if ((unsigned char)*bad < 0x20 || (unsigned char)*bad >= 0x7f)
		snprintf(buf, len, "byte 0x%02x", (unsigned char)*bad);
	else
		snprintf(buf, len, "character '%c'", *bad);
	return buf;
}

/* A PCI address: hex digits, ':' and '.' only (DDDD:BB:DD.F). */
static bool pci_address_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F') ||
		      *s == ':' || *s == '.'))
			return false;
	return true;
}

/*
 * Strings that reach the EAL's argv or a --vdev device string ("net_vhost0,iface=PATH,...")
 * may hold no ',' or '=' (they would add device arguments) nor anything else outside the safe
 * set; the message names the option or plan NIC and the character.
 */
static int check_eal_strings(const struct dp_config *c, struct err *e)
{
	const char *bad;
	char what[24];
	unsigned i;

	bad = plan__unsafe_char(c->file_prefix);
	if (bad || !c->file_prefix[0])
		return err__set(e, -EINVAL, "--file-prefix '%s': %s at offset %zu is not allowed "
				"(letters, digits, '/', '.', '_', '-', '+'): it becomes an EAL argument",
				c->file_prefix, bad ? describe_char(bad, what, sizeof(what)) : "empty",
				bad ? (size_t)(bad - c->file_prefix) : 0);
	for (i = 0; i < c->nr_ports; i++) {
		const struct dp_port_spec *s = &c->ports[i];

		if (s->kind == DP_PORT_PCI) {
			if (!pci_address_ok(s->target))
				return err__set(e, -EINVAL, "--port pci:%s: not a PCI address (hex digits, "
						"':' and '.': 0000:01:00.0)", s->target);
			continue;
		}
		bad = plan__unsafe_char(s->target);
		if (!bad)
			continue;
		describe_char(bad, what, sizeof(what));
		if (s->from_plan)
			return err__set(e, -EINVAL, "%s: NIC %s: socket %s: %s at offset %zu is not "
					"allowed (letters, digits, '/', '.', '_', '-', '+'): it would add "
					"DPDK device arguments", c->plan_file, s->name, s->target, what,
					(size_t)(bad - s->target));
		return err__set(e, -EINVAL, "--port %s:%s: %s at offset %zu is not allowed (letters, "
				"digits, '/', '.', '_', '-', '+'): it goes into the DPDK device string, "
				"where ',' or '=' would add device arguments",
				dp_port_kind_name(s->kind), s->target, what, (size_t)(bad - s->target));
	}
	return 0;
}

int dp_config__finish(struct dp_config *c, struct err *e)
{
	const char *where = c->plan_file[0] ? c->plan_file : "command line";
	bool used[DP_MAX_PORTS] = { false };
	unsigned n = dp_config__nr_lcores(c), i, j;
	int rc;

	if (!n)
		return err__set(e, -EINVAL, "%s: no poll-mode lcores: give --lcores LIST (or "
				"host.dataplane.cores in the plan)", where);
	if (n > DP_MAX_WORKERS)
		return err__set(e, -EINVAL, "%s: %u poll lcores, at most %u", where, n, DP_MAX_WORKERS);
	if (!c->nr_ports)
		return err__set(e, -EINVAL, "%s: no ports: give --port TYPE:TARGET (or NICs in the "
				"plan's VMs)", where);
	for (i = 0; i < c->nr_ports; i++)
		if (!c->ports[i].name[0])
			snprintf(c->ports[i].name, sizeof(c->ports[i].name), "port%u", i);
	for (i = 0; i < c->nr_ports; i++) {
		for (j = 0; j < i; j++) {
			if (c->ports[i].kind == c->ports[j].kind &&
			    !strcmp(c->ports[i].target, c->ports[j].target))
				return err__set(e, -EINVAL, "ports %u (%s) and %u (%s) both use %s %s", j,
						c->ports[j].name, i, c->ports[i].name,
						dp_port_kind_name(c->ports[i].kind), c->ports[i].target);
			if (!strcmp(c->ports[i].name, c->ports[j].name))
				return err__set(e, -EINVAL, "ports %u and %u are both named '%s'", j, i,
						c->ports[i].name);
		}
	}
	rc = check_eal_strings(c, e);
	if (rc)
		return rc;
	if (c->nr_pairs && c->fwd != DP_FWD_XCONNECT)
		return err__set(e, -EINVAL, "--pair applies to --fwd xconnect only (forwarding is %s)",
				dp_fwd_name(c->fwd));
	for (i = 0; i < c->nr_pairs; i++) {
		const struct dp_pair *p = &c->pairs[i];

		if (p->a >= c->nr_ports || p->b >= c->nr_ports)
			return err__set(e, -EINVAL, "--pair %u:%u: there are %u ports (0..%u)", p->a, p->b,
					c->nr_ports, c->nr_ports - 1);
		if (used[p->a] || used[p->b])
			return err__set(e, -EINVAL, "--pair %u:%u: port %u is already in a pair", p->a,
					p->b, used[p->a] ? p->a : p->b);
		used[p->a] = used[p->b] = true;
	}
	if (strlen(c->stats_socket) >= sizeof(((struct dp_config *)0)->stats_socket) - 1)
		return err__set(e, -ENAMETOOLONG, "--stats-socket %s: too long", c->stats_socket);
	if (c->stats_interval_ms < 10)
		c->stats_interval_ms = 10;
	return 0;
}

unsigned dp_config__nr_mbufs(const struct dp_config *c)
{
	unsigned long n = 2048;
	unsigned i, lcores = dp_config__nr_lcores(c);

	/*
	 * A NIC's rings hold an mbuf per descriptor; a vhost-user backend's do not: its rx
	 * allocates at dequeue and its tx copies into the guest's buffers and frees, so a vhost
	 * port needs only what its bursts have in flight (32 vhost ports sized like NICs were
	 * 65k mbufs, a working set that cost the poll loop at 16 and 32 ports: bench/scaling.py).
	 */
	for (i = 0; i < c->nr_ports; i++)
		n += (unsigned long)c->ports[i].queues *
		     (c->ports[i].kind == DP_PORT_VHOST ? 2 * DP_BURST : DP_RX_DESC + DP_TX_DESC);
	/* per lcore: its mempool cache plus a burst in flight towards every port */
	n += (unsigned long)(lcores + 1) * (DP_MBUF_CACHE * 3 / 2 + (unsigned long)DP_BURST * c->nr_ports);
	if (n < MIN_MBUFS)
		n = MIN_MBUFS;
	return (unsigned)n;
}

unsigned dp_config__mem_mb(const struct dp_config *c)
{
	unsigned long mb;

	if (c->mem_mb)
		return c->mem_mb;
	mb = ((unsigned long)dp_config__nr_mbufs(c) * MBUF_FOOTPRINT >> 20) + EAL_OVERHEAD_MB +
	     (unsigned long)c->nr_ports * PORT_OVERHEAD_MB;
	if (mb < MIN_MEM_MB)
		mb = MIN_MEM_MB;
	return (unsigned)((mb + 1) & ~1ul);    /* whole 2 MiB pages */
}

/* A growing argv. */
struct argv_buf {
	int argc;
	char *argv[128];
};

static int push(struct argv_buf *a, const char *s)
{
	if (a->argc >= (int)(sizeof(a->argv) / sizeof(a->argv[0])) - 1)
		return -E2BIG;
	a->argv[a->argc] = strdup(s);
	if (!a->argv[a->argc])
		return -ENOMEM;
	a->argc++;
	return 0;
}

/* True when the extra EAL arguments name PCI devices themselves (allow or block lists). */
static bool extra_selects_pci(const char *extra)
{
	char buf[sizeof(((struct dp_config *)0)->extra_eal)], *save = NULL, *t;

	snprintf(buf, sizeof(buf), "%s", extra);
	for (t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (!strncmp(t, "-a", 2) || !strncmp(t, "--allow", 7) || !strncmp(t, "-b", 2) ||
		    !strncmp(t, "--block", 7) || !strcmp(t, "--no-pci"))
			return true;
	}
	return false;
}

int dp_config__eal_argv(const struct dp_config *c, int *argc, char ***argv, struct err *e)
{
	struct argv_buf a = { 0 };
	char lcores[1024], num[32], buf[sizeof(c->extra_eal)], *save = NULL, *t;
	cpu_set_t all = c->lcores;
	unsigned main_lcore = dp_config__main_lcore(c), i;
	bool pci = false;
	int rc = 0;

	CPU_SET(main_lcore, &all);
	cpus__format(&all, lcores, sizeof(lcores));
	for (i = 0; i < c->nr_ports; i++)
		pci |= c->ports[i].kind == DP_PORT_PCI;

	rc |= push(&a, "rtvmm-dataplane");
	rc |= push(&a, "-l");
	rc |= push(&a, lcores);
	snprintf(num, sizeof(num), "%u", main_lcore);
	rc |= push(&a, "--main-lcore");
	rc |= push(&a, num);
	rc |= push(&a, "--file-prefix");
	rc |= push(&a, c->file_prefix);
	snprintf(num, sizeof(num), "%u", dp_config__mem_mb(c));
	if (c->no_huge) {
		rc |= push(&a, "--no-huge");
		rc |= push(&a, "-m");
		rc |= push(&a, num);
	} else if (c->node >= 0) {
		/* --socket-mem: one value per node up to ours, ours holds the memory */
		char sm[512] = "";
		size_t used = 0;
		int nd;

		for (nd = 0; nd <= c->node && used < sizeof(sm) - 16; nd++)
			used += (size_t)snprintf(sm + used, sizeof(sm) - used, "%s%s", nd ? "," : "",
						 nd == c->node ? num : "0");
		rc |= push(&a, "--socket-mem");
		rc |= push(&a, sm);
	} else {
		rc |= push(&a, "-m");
		rc |= push(&a, num);
	}
	/* Hugepage files unlinked once mapped: nothing the unprivileged process must remove later. */
	if (!c->no_huge && c->user[0])
		rc |= push(&a, "--huge-unlink");
	if (!pci && !extra_selects_pci(c->extra_eal))
		rc |= push(&a, "--no-pci");
	snprintf(buf, sizeof(buf), "%s", c->extra_eal);
	for (t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
		rc |= push(&a, t);
	*argv = rc ? NULL : calloc((size_t)a.argc + 1, sizeof(char *));
	if (!*argv) {
		while (a.argc)
			free(a.argv[--a.argc]);
		return err__set(e, rc ? -E2BIG : -ENOMEM, "EAL arguments: too many or out of memory");
	}
	memcpy(*argv, a.argv, sizeof(char *) * (size_t)a.argc);
	*argc = a.argc;
	return 0;
}

void dp_config__free_argv(int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
}

void dp_config__dev_name(const struct dp_config *c, unsigned i, char *buf, unsigned len)
{
	const struct dp_port_spec *s = &c->ports[i];

	if (s->kind == DP_PORT_PCI)
		snprintf(buf, len, "%s", s->target);
	else
		snprintf(buf, len, "%s%u", vdev_drivers[s->kind], i);
}

int dp_config__devargs(const struct dp_config *c, unsigned i, char *buf, unsigned len)
{
	const struct dp_port_spec *s = &c->ports[i];
	int n;

	switch (s->kind) {
	case DP_PORT_VHOST:
		n = snprintf(buf, len, "net_vhost%u,iface=%s,queues=%u%s", i, s->target, s->queues,
			     s->client ? ",client=1" : "");
		break;
	case DP_PORT_AF_PACKET:
		n = snprintf(buf, len, "net_af_packet%u,iface=%s,qpairs=%u", i, s->target, s->queues);
		break;
	case DP_PORT_TAP:
		n = snprintf(buf, len, "net_tap%u,iface=%s", i, s->target);
		break;
	case DP_PORT_VIRTIO_USER:
		n = snprintf(buf, len, "net_virtio_user%u,path=%s,queues=%u,queue_size=%u%s", i,
			     s->target, s->queues, DP_RX_DESC, s->client ? "" : ",server=1");
		break;
	case DP_PORT_PCI:
	default:
		n = snprintf(buf, len, "%s", s->target);
		break;
	}
	return n < 0 || (unsigned)n >= len ? -ENAMETOOLONG : 0;
}
