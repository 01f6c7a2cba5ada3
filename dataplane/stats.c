#include "dataplane/stats.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "base/cpus.h"
#include "base/trust.h"
#include "dataplane/dp.h"
#include "dataplane/log.h"
#include "dataplane/outbox.h"
#include "rt/rt.h"

#define L2_DUMP_MAX 256
#define CLIENT_MAX_BYTES (4u << 20)     /* a document larger than this is refused */
#define CLIENT_TIMEOUT_S 2.0            /* a client has this long to read its document */

/* Every counter at one instant. */
struct reading {
	double t;
	struct dp_qcnt rxq[DP_MAX_PORTS][DP_MAX_QUEUES];
	struct dp_qcnt txq[DP_MAX_PORTS][DP_MAX_QUEUES];
	struct dp_qcnt rx[DP_MAX_PORTS];
	struct dp_qcnt tx[DP_MAX_PORTS];
	struct rte_eth_stats eth[DP_MAX_PORTS];
	uint64_t loops[DP_MAX_WORKERS];
	uint64_t busy_loops[DP_MAX_WORKERS];
	uint64_t busy_cycles[DP_MAX_WORKERS];
	uint64_t wpkts[DP_MAX_WORKERS];      /* packets received by the worker */
	uint64_t spoofed[DP_MAX_PORTS];
	uint64_t unlearned[DP_MAX_PORTS];
	uint64_t learned, moved, flooded;
};

struct rate {
	double rx_pps, rx_bps, tx_pps, tx_bps;
};

static struct {
	struct dp *dp;
	int fd;
	pthread_t thread;
	bool running;
	double t0;
	struct reading prev, cur;              /* the last two interval samples */
	bool have_rates;
	struct reading now;                    /* scratch for requests */
	struct rate port[DP_MAX_PORTS];
	struct rate rxq[DP_MAX_PORTS][DP_MAX_QUEUES];
	struct rate txq[DP_MAX_PORTS][DP_MAX_QUEUES];
	double busy_pct[DP_MAX_WORKERS];
	double interval;
	struct l2_entry l2[L2_DUMP_MAX];
	struct outbox out;
	uint64_t peers_refused;
} S = { .fd = -1 };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The thread's placement as the kernel reports it now: cpus, policy, priority, last cpu. */
static json_t *sched_json(pid_t tid)
{
	struct rt_thread t;
	char cpus[64];

	if (!tid || rt__read(tid, &t))
		return json_null();
	cpus__format(&t.cpus, cpus, sizeof(cpus));
	return json_pack("{s:s, s:s, s:i, s:i}", "cpus", cpus, "policy",
			 rt__kernel_policy_name(t.policy), "priority", t.priority, "cpu", t.last_cpu);
}

static void add(struct dp_qcnt *to, const struct dp_qcnt *c)
{
	to->pkts += DP_READ(c->pkts);
	to->bytes += DP_READ(c->bytes);
	to->dropped += DP_READ(c->dropped);
}

static void take_reading(struct dp *dp, struct reading *r)
{
	unsigned i, j, p;

	memset(r, 0, sizeof(*r));
	r->t = now_s();
	for (i = 0; i < dp->nr_workers; i++) {
		struct dp_worker *w = dp->workers[i];

		for (j = 0; j < w->nr_rxq; j++) {
			const struct dp_rxq *q = &w->rxq[j];

			add(&r->rxq[q->port][q->queue], &q->c);
			add(&r->rx[q->port], &q->c);
			r->spoofed[q->port] += DP_READ(q->spoofed);
			r->unlearned[q->port] += DP_READ(q->unlearned);
			r->wpkts[i] += DP_READ(q->c.pkts);
		}
		for (p = 0; p < dp->nr_ports; p++) {
			const struct dp_txq *t = &w->txq[p];

			add(&r->txq[p][t->queue], &t->c);
			add(&r->tx[p], &t->c);
		}
		r->loops[i] = DP_READ(w->loops);
		r->busy_loops[i] = DP_READ(w->busy_loops);
		r->busy_cycles[i] = DP_READ(w->busy_cycles);
		r->learned += DP_READ(w->learned);
		r->moved += DP_READ(w->moved);
		r->flooded += DP_READ(w->flooded);
	}
	for (p = 0; p < dp->nr_ports; p++)
		if (dp->port[p].eth != UINT16_MAX)
			(void)rte_eth_stats_get(dp->port[p].eth, &r->eth[p]);
}

static double per_s(uint64_t a, uint64_t b, double dt)
{
	return dt > 0 && b >= a ? (double)(b - a) / dt : 0;
}

static void compute_rates(struct dp *dp)
{
	const struct reading *a = &S.prev, *b = &S.cur;
	double dt = b->t - a->t;
	unsigned p, q, i;

	S.interval = dt;
	for (p = 0; p < dp->nr_ports; p++) {
		S.port[p].rx_pps = per_s(a->rx[p].pkts, b->rx[p].pkts, dt);
		S.port[p].rx_bps = 8 * per_s(a->rx[p].bytes, b->rx[p].bytes, dt);
		S.port[p].tx_pps = per_s(a->tx[p].pkts, b->tx[p].pkts, dt);
		S.port[p].tx_bps = 8 * per_s(a->tx[p].bytes, b->tx[p].bytes, dt);
		for (q = 0; q < dp->port[p].nb_queues; q++) {
			S.rxq[p][q].rx_pps = per_s(a->rxq[p][q].pkts, b->rxq[p][q].pkts, dt);
			S.txq[p][q].tx_pps = per_s(a->txq[p][q].pkts, b->txq[p][q].pkts, dt);
		}
	}
	/* busy: TSC cycles spent in iterations that moved packets, per wall-clock cycle */
	for (i = 0; i < dp->nr_workers; i++)
		S.busy_pct[i] = dt > 0 && dp->tsc_hz ?
			100.0 * (double)(b->busy_cycles[i] - a->busy_cycles[i]) / (dt * (double)dp->tsc_hz) : 0;
	S.have_rates = true;
}

/* One interval: rates, MAC aging, links without events. */
static void tick(struct dp *dp)
{
	S.prev = S.cur;
	take_reading(dp, &S.cur);
	compute_rates(dp);
	if (dp->fwd == DP_FWD_L2SWITCH) {
		unsigned aged = l2_table__tick(&dp->l2, (uint32_t)(S.cur.t - S.t0) + 1);

		__atomic_add_fetch(&dp->l2_aged, aged, __ATOMIC_RELAXED);
	}
	dp_ports__poll_links(dp);
}

/*
 * A new client: root, our own uid or the service user only (SO_PEERCRED); it gets the
 * document now, or as its socket takes it (outbox), never at the cost of a blocked write.
 */
static void serve(struct dp *dp, int fd)
{
	const struct trust_uids who = { .service = dp->service_uid, .only = TRUST_NO_UID };
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	json_t *doc;
	char *text;
	size_t len;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) || !trust__uid_ok(&who, cred.uid)) {
		if (!S.peers_refused++)
			dp_log("stats socket: refused a client running as uid %d (pid %d): only root, "
			       "uid %u and the service user may read the counters (said once)",
			       clen == sizeof(cred) ? (int)cred.uid : -1,
			       clen == sizeof(cred) ? (int)cred.pid : -1, (unsigned)geteuid());
		close(fd);
		return;
	}
	if (!outbox__has_room(&S.out)) {
		outbox__refuse(&S.out, fd);     /* before building a document nobody can take */
		return;
	}
	doc = dp_stats__json(dp);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text) {
		close(fd);
		return;
	}
	len = strlen(text);
	text[len] = '\n';    /* replaces the NUL: one line per document */
	if (outbox__add(&S.out, fd, text, len + 1, now_s()) == -EMSGSIZE)
		dp_log("stats socket: the document exceeds %u bytes: client refused", CLIENT_MAX_BYTES);
}

static void *stats_main(void *arg)
{
	struct dp *dp = arg;
	double interval = dp->cfg->stats_interval_ms / 1000.0, next = now_s() + interval;

	while (!DP_READ(dp->stop) && __atomic_load_n(&S.running, __ATOMIC_RELAXED)) {
		struct pollfd pfd[1 + OUTBOX_CLIENTS] = { { .fd = S.fd, .events = POLLIN } };
		unsigned n = 1 + outbox__pollfds(&S.out, pfd + 1);
		double left = next - now_s();
		int timeout = left <= 0 ? 0 : left > 0.1 ? 100 : (int)(left * 1000) + 1;

		if (poll(pfd, n, timeout) > 0 && (pfd[0].revents & POLLIN)) {
			int c = accept4(S.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

			if (c >= 0)
				serve(dp, c);
		}
		outbox__flush(&S.out, now_s());
		if (now_s() >= next) {
			tick(dp);
			next += interval;
			if (next < now_s())
				next = now_s() + interval;
		}
	}
	outbox__close_all(&S.out);
	return NULL;
}

int dp_stats__start(struct dp *dp, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = dp->cfg->stats_socket;
	int rc;

	S.dp = dp;
	S.t0 = now_s();
	take_reading(dp, &S.cur);
	S.prev = S.cur;
	if (strlen(path) >= sizeof(sa.sun_path))
		return err__set(e, -ENAMETOOLONG, "--stats-socket %s: too long for a unix socket", path);
	rc = dp_claim_socket_path(dp, path, true, "stats socket", e);
	if (rc)
		return rc;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	S.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (S.fd < 0)
		return err__set(e, -errno, "stats socket: %s", strerror(errno));
	if (bind(S.fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(S.fd, 16)) {
		rc = -errno;
		close(S.fd);
		S.fd = -1;
		return err__set(e, rc, "stats socket %s: %s", path, strerror(-rc));
	}
	outbox__init(&S.out, CLIENT_MAX_BYTES, CLIENT_TIMEOUT_S);
	S.running = true;
	rc = rte_ctrl_thread_create(&S.thread, "dp-stats", NULL, stats_main, dp);
	if (rc) {
		S.running = false;
		close(S.fd);
		S.fd = -1;
		unlink(path);
		return err__set(e, -rc, "cannot start the stats thread: %s", strerror(rc));
	}
	return 0;
}

void dp_stats__stop(struct dp *dp)
{
	if (S.running) {
		__atomic_store_n(&S.running, false, __ATOMIC_RELAXED);
		pthread_join(S.thread, NULL);
	}
	if (S.fd >= 0) {
		close(S.fd);
		S.fd = -1;
		unlink(dp->cfg->stats_socket);
	}
}

/* ---- the document ---- */

static void set_int(json_t *o, const char *k, uint64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

static void set_rate(json_t *o, const char *k, double v)
{
	json_object_set_new(o, k, json_integer((json_int_t)(v + 0.5)));
}

static const char *mac_str(const uint8_t *m, char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

static json_t *port_json(struct dp *dp, const struct reading *r, unsigned p)
{
	const struct dp_port_spec *s = &dp->cfg->ports[p];
	const struct dp_port *dpp = &dp->port[p];
	const struct rte_eth_stats *es = &r->eth[p];
	json_t *o = json_object(), *rxqs = json_array(), *txqs = json_array();
	char mac[32];
	unsigned q, i;

	set_int(o, "port", p);
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "type", json_string(dp_port_kind_name(s->kind)));
	json_object_set_new(o, "target", json_string(s->target));
	if (s->kind == DP_PORT_VHOST || s->kind == DP_PORT_VIRTIO_USER)
		json_object_set_new(o, "mode", json_string(s->client ? "client" : "server"));
	json_object_set_new(o, "driver", json_string(dpp->driver));
	set_int(o, "ethdev", dpp->eth);
	json_object_set_new(o, "mac", json_string(mac_str(dpp->mac, mac, sizeof(mac))));
	if (s->mac_set)
		json_object_set_new(o, "guest_mac", json_string(mac_str(s->mac, mac, sizeof(mac))));
	json_object_set_new(o, "link", json_string(DP_READ(dp->link_up[p]) ? "up" : "down"));
	set_int(o, "link_ups", DP_READ(dpp->link_ups));
	set_int(o, "link_downs", DP_READ(dpp->link_downs));
	set_int(o, "queues", dpp->nb_queues);
	if (dp->fwd == DP_FWD_XCONNECT)
		json_object_set_new(o, "peer", dpp->peer >= 0 ? json_integer(dpp->peer) : json_null());

	set_int(o, "RX-packets", r->rx[p].pkts);
	set_int(o, "RX-bytes", r->rx[p].bytes);
	set_int(o, "RX-dropped", r->rx[p].dropped);
	set_int(o, "RX-missed", es->imissed);
	set_int(o, "RX-errors", es->ierrors);
	set_int(o, "RX-nombuf", es->rx_nombuf);
	set_int(o, "TX-packets", r->tx[p].pkts);
	set_int(o, "TX-bytes", r->tx[p].bytes);
	set_int(o, "TX-dropped", r->tx[p].dropped);
	set_int(o, "TX-errors", es->oerrors);
	if (dp->fwd == DP_FWD_L2SWITCH) {
		set_int(o, "spoofed", r->spoofed[p]);
		set_int(o, "unlearned", r->unlearned[p]);
		set_int(o, "macs", __atomic_load_n(&dp->l2.count[p], __ATOMIC_RELAXED));
	}
	set_rate(o, "Rx-pps", S.port[p].rx_pps);
	set_rate(o, "Rx-bps", S.port[p].rx_bps);
	set_rate(o, "Tx-pps", S.port[p].tx_pps);
	set_rate(o, "Tx-bps", S.port[p].tx_bps);

	for (q = 0; q < dpp->nb_queues; q++) {
		json_t *rq = json_object(), *tq = json_object(), *lc = json_array();
		bool shared = false;

		set_int(rq, "queue", q);
		json_object_set_new(rq, "lcore", json_integer(dpp->rx_lcore[q]));
		set_int(rq, "RX-packets", r->rxq[p][q].pkts);
		set_int(rq, "RX-bytes", r->rxq[p][q].bytes);
		set_int(rq, "RX-dropped", r->rxq[p][q].dropped);
		set_rate(rq, "Rx-pps", S.rxq[p][q].rx_pps);
		json_array_append_new(rxqs, rq);

		set_int(tq, "queue", q);
		for (i = 0; i < dp->nr_workers; i++) {
			const struct dp_txq *t = &dp->workers[i]->txq[p];

			if (t->used && t->queue == q) {
				json_array_append_new(lc, json_integer(dp->workers[i]->lcore));
				shared |= t->lock != NULL;
			}
		}
		json_object_set_new(tq, "lcores", lc);
		json_object_set_new(tq, "shared", json_boolean(shared));
		set_int(tq, "TX-packets", r->txq[p][q].pkts);
		set_int(tq, "TX-bytes", r->txq[p][q].bytes);
		set_int(tq, "TX-dropped", r->txq[p][q].dropped);
		set_rate(tq, "Tx-pps", S.txq[p][q].tx_pps);
		json_array_append_new(txqs, tq);
	}
	json_object_set_new(o, "rx_queues", rxqs);
	json_object_set_new(o, "tx_queues", txqs);
	return o;
}

json_t *dp_stats__json(struct dp *dp)
{
	struct reading *r = &S.now;
	json_t *doc = json_object(), *ports = json_array(), *lcores = json_array(), *tot;
	uint64_t rx = 0, rxd = 0, tx = 0, txd = 0;
	double rxr = 0, txr = 0;
	unsigned p, i, j;
	char buf[64];

	take_reading(dp, r);
	set_int(doc, "version", 1);
	json_object_set_new(doc, "fwd", json_string(dp_fwd_name(dp->fwd)));
	json_object_set_new(doc, "uptime_s", json_real(r->t - S.t0));
	json_object_set_new(doc, "interval_s", json_real(S.have_rates ? S.interval : 0));
	for (p = 0; p < dp->nr_ports; p++) {
		json_array_append_new(ports, port_json(dp, r, p));
		rx += r->rx[p].pkts;
		rxd += r->rx[p].dropped;
		tx += r->tx[p].pkts;
		txd += r->tx[p].dropped;
		rxr += S.port[p].rx_pps;
		txr += S.port[p].tx_pps;
	}
	json_object_set_new(doc, "ports", ports);

	for (i = 0; i < dp->nr_workers; i++) {
		const struct dp_worker *w = dp->workers[i];
		json_t *o = json_object(), *qs = json_array();

		set_int(o, "lcore", w->lcore);
		snprintf(buf, sizeof(buf), "dp-poll%u", w->lcore);
		json_object_set_new(o, "thread", json_string(buf));
		set_int(o, "tid", (uint64_t)w->tid);
		json_object_set_new(o, "sched", sched_json(w->tid));
		for (j = 0; j < w->nr_rxq; j++) {
			snprintf(buf, sizeof(buf), "%u:%u", w->rxq[j].port, w->rxq[j].queue);
			json_array_append_new(qs, json_string(buf));
		}
		json_object_set_new(o, "rx_queues", qs);
		set_int(o, "loops", r->loops[i]);
		set_int(o, "busy_loops", r->busy_loops[i]);
		json_object_set_new(o, "busy_pct", json_real(S.busy_pct[i]));
		set_int(o, "busy_cycles", r->busy_cycles[i]);
		set_int(o, "rx_packets", r->wpkts[i]);
		json_object_set_new(o, "cycles_per_packet",
				    json_real(r->wpkts[i] ? (double)r->busy_cycles[i] / (double)r->wpkts[i] : 0));
		json_array_append_new(lcores, o);
	}
	json_object_set_new(doc, "lcores", lcores);

	if (dp->fwd == DP_FWD_L2SWITCH) {
		json_t *l2 = json_object(), *table = json_array();
		unsigned n = l2_table__dump(&dp->l2, S.l2, L2_DUMP_MAX);

		set_int(l2, "entries", n);
		set_int(l2, "capacity", (uint64_t)(dp->l2.mask + 1) * L2_WAYS);
		set_int(l2, "aging_s", dp->l2.aging_s);
		set_int(l2, "per_port", dp->l2.port_cap);
		set_int(l2, "learned", r->learned);
		set_int(l2, "moved", r->moved);
		set_int(l2, "flooded", r->flooded);
		set_int(l2, "aged", DP_READ(dp->l2_aged));
		set_int(l2, "flushed", DP_READ(dp->l2_flushed));
		for (i = 0; i < n && i < L2_DUMP_MAX; i++) {
			json_t *en = json_object();

			json_object_set_new(en, "mac", json_string(mac_str(S.l2[i].mac, buf, sizeof(buf))));
			set_int(en, "port", S.l2[i].port);
			set_int(en, "age_s", S.l2[i].age_s);
			json_array_append_new(table, en);
		}
		json_object_set_new(l2, "table", table);
		json_object_set_new(doc, "l2", l2);
	}

	tot = json_object();
	set_int(tot, "RX-packets", rx);
	set_int(tot, "RX-dropped", rxd);
	set_int(tot, "TX-packets", tx);
	set_int(tot, "TX-dropped", txd);
	set_rate(tot, "Rx-pps", rxr);
	set_rate(tot, "Tx-pps", txr);
	json_object_set_new(doc, "totals", tot);
	tot = json_object();
	set_int(tot, "refused", S.out.refused);
	set_int(tot, "expired", S.out.expired);
	set_int(tot, "peers_refused", S.peers_refused);
	json_object_set_new(doc, "stats_clients", tot);
	return doc;
}

/* ---- printing (testpmd's layout) ---- */

static long long gi(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *gs(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

void dp_stats__print(FILE *f, const json_t *doc, const char *title)
{
	const json_t *ports = json_object_get(doc, "ports"), *lcores = json_object_get(doc, "lcores");
	const json_t *l2 = json_object_get(doc, "l2"), *tot = json_object_get(doc, "totals"), *p, *q;
	double interval = json_number_value(json_object_get(doc, "interval_s"));
	size_t i, j;

	fprintf(f, "\n  %s: %s forwarding, %zu ports, %zu poll lcores, up %.1f s\n", title,
		gs(doc, "fwd"), json_array_size(ports), json_array_size(lcores),
		json_number_value(json_object_get(doc, "uptime_s")));
	json_array_foreach(ports, i, p) {
		const json_t *peer = json_object_get(p, "peer");

		fprintf(f, "\n  ######################## NIC statistics for port %-2lld "
			"########################\n", gi(p, "port"));
		fprintf(f, "  %s: %s %s%s%s%s, %s, link %s (up %lld, down %lld), %lld queue pair(s)",
			gs(p, "name"), gs(p, "type"), gs(p, "target"),
			json_object_get(p, "mode") ? " (" : "", gs(p, "mode"),
			json_object_get(p, "mode") ? ")" : "", gs(p, "driver"), gs(p, "link"),
			gi(p, "link_ups"), gi(p, "link_downs"), gi(p, "queues"));
		if (peer)
			fprintf(f, json_is_integer(peer) ? ", peer port %lld\n" : ", no peer\n",
				json_integer_value(peer));
		else
			fprintf(f, "\n");
		fprintf(f, "  RX-packets: %-10lld RX-missed: %-10lld RX-bytes:  %lld\n",
			gi(p, "RX-packets"), gi(p, "RX-missed"), gi(p, "RX-bytes"));
		fprintf(f, "  RX-errors: %-11lld RX-dropped: %-9lld RX-nombuf:  %lld\n",
			gi(p, "RX-errors"), gi(p, "RX-dropped"), gi(p, "RX-nombuf"));
		fprintf(f, "  TX-packets: %-10lld TX-errors: %-10lld TX-bytes:  %lld\n",
			gi(p, "TX-packets"), gi(p, "TX-errors"), gi(p, "TX-bytes"));
		fprintf(f, "  TX-dropped: %lld\n", gi(p, "TX-dropped"));
		if (json_object_get(p, "spoofed"))
			fprintf(f, "  Spoofed: %-13lld Unlearned: %-10lld MACs: %lld\n", gi(p, "spoofed"),
				gi(p, "unlearned"), gi(p, "macs"));
		fprintf(f, "\n  Throughput (last %.2f s)\n", interval);
		fprintf(f, "  Rx-pps: %12lld          Rx-bps: %12lld\n", gi(p, "Rx-pps"), gi(p, "Rx-bps"));
		fprintf(f, "  Tx-pps: %12lld          Tx-bps: %12lld\n", gi(p, "Tx-pps"), gi(p, "Tx-bps"));
		json_array_foreach(json_object_get(p, "rx_queues"), j, q)
			fprintf(f, "    rxq %lld (lcore %lld): RX-packets: %-10lld RX-dropped: %-8lld "
				"Rx-pps: %lld\n", gi(q, "queue"), gi(q, "lcore"), gi(q, "RX-packets"),
				gi(q, "RX-dropped"), gi(q, "Rx-pps"));
		json_array_foreach(json_object_get(p, "tx_queues"), j, q) {
			const json_t *lc = json_object_get(q, "lcores"), *v;
			char who[128] = "";
			size_t k, used = 0;

			json_array_foreach(lc, k, v)
				used += (size_t)snprintf(who + used, used < sizeof(who) ? sizeof(who) - used : 0,
							 "%s%lld", k ? "," : "", json_integer_value(v));
			if (used >= sizeof(who))
				who[sizeof(who) - 1] = '\0';
			fprintf(f, "    txq %lld (lcore %s%s): TX-packets: %-10lld TX-dropped: %-8lld "
				"Tx-pps: %lld\n", gi(q, "queue"), who[0] ? who : "-",
				json_is_true(json_object_get(q, "shared")) ? ", shared" : "",
				gi(q, "TX-packets"), gi(q, "TX-dropped"), gi(q, "Tx-pps"));
		}
		fprintf(f, "  ############################################################################\n");
	}
	if (tot) {
		fprintf(f, "\n  +++++++++++++++ Accumulated statistics for all ports +++++++++++++++\n");
		fprintf(f, "  RX-packets: %-14lld RX-dropped: %-14lld Rx-pps: %lld\n",
			gi(tot, "RX-packets"), gi(tot, "RX-dropped"), gi(tot, "Rx-pps"));
		fprintf(f, "  TX-packets: %-14lld TX-dropped: %-14lld Tx-pps: %lld\n",
			gi(tot, "TX-packets"), gi(tot, "TX-dropped"), gi(tot, "Tx-pps"));
		fprintf(f, "  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++\n");
	}
	json_array_foreach(lcores, i, p) {
		const json_t *v;
		size_t k;

		fprintf(f, "  lcore %lld (%s): rx queues", gi(p, "lcore"), gs(p, "thread"));
		json_array_foreach(json_object_get(p, "rx_queues"), k, v)
			fprintf(f, " %s", json_string_value(v));
		fprintf(f, "; busy %.1f%% (last interval); CPU cycles/packet: %.1f\n",
			json_number_value(json_object_get(p, "busy_pct")),
			json_number_value(json_object_get(p, "cycles_per_packet")));
	}
	if (l2) {
		fprintf(f, "  l2 table: %lld of %lld MACs (aging %lld s); learned %lld, moved %lld, "
			"flooded %lld, aged %lld, flushed %lld\n", gi(l2, "entries"), gi(l2, "capacity"),
			gi(l2, "aging_s"), gi(l2, "learned"), gi(l2, "moved"), gi(l2, "flooded"),
			gi(l2, "aged"), gi(l2, "flushed"));
		json_array_foreach(json_object_get(l2, "table"), i, p)
			fprintf(f, "    %s  port %lld  seen %lld s ago\n", gs(p, "mac"), gi(p, "port"),
				gi(p, "age_s"));
	}
	fflush(f);
}

/* ---- client ---- */

int dp_stats__query(const char *path, json_t **doc, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	json_error_t je;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rc = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err__set(e, -ENAMETOOLONG, "%s: too long for a unix socket", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__set(e, -errno, "socket: %s", strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		close(fd);
		return err__set(e, rc, "cannot connect to the stats socket %s: %s (is `rtvmm-dataplane "
				"run` running with this --stats-socket?)", path, strerror(-rc));
	}
	for (;;) {
		ssize_t n;

		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap + 65536);

			if (!nb) {
				rc = err__set(e, -ENOMEM, "out of memory");
				goto out;
			}
			buf = nb;
			cap += 65536;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err__set(e, -errno, "%s: read: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*doc = json_loadb(buf, len, 0, &je);
	if (!*doc)
		rc = err__set(e, -EPROTO, "%s: not a stats document: %s (line %d)", path, je.text,
			      je.line);
out:
	free(buf);
	close(fd);
	return rc;
}
