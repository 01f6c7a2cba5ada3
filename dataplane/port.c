/*
 * Ports: every port is an ethdev. vhost-user sockets are net_vhost devices, kernel interfaces
 * net_af_packet or net_tap, physical NICs their PCI PMD; all are created with rte_dev_probe
 * from dp_config__devargs, configured with one rx and one tx queue per queue pair, and watched
 * for link events. For net_vhost the link follows the guest: up in the vhost library's
 * new_device, down in destroy_device. On link down we flush the port's MACs and wait until
 * every worker has acknowledged (dp_workers__quiesce) before returning to the PMD, which then
 * lets the vhost library unmap the guest's memory.
 */
#include "base/trust.h"
#include "dataplane/dp.h"
#include "dataplane/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

static int port_index(const struct dp *dp, uint16_t eth)
{
	unsigned i;

	for (i = 0; i < dp->nr_ports; i++)
		if (dp->port[i].eth == eth)
			return (int)i;
	return -1;
}

static const char *port_what(const struct dp *dp, unsigned i, char *buf, size_t len)
{
	const struct dp_port_spec *s = &dp->cfg->ports[i];

	snprintf(buf, len, "port %u (%s, %s %s)", i, s->name, dp_port_kind_name(s->kind), s->target);
	return buf;
}

/* Records a link state change: counts it, flushes the port's MACs when it went down. */
static void set_link(struct dp *dp, unsigned i, bool up)
{
	struct dp_port *p = &dp->port[i];
	char what[256];
	uint8_t old = __atomic_exchange_n(&dp->link_up[i], (uint8_t)up, __ATOMIC_SEQ_CST);
	unsigned flushed = 0;

	if (old == up)
		return;
	port_what(dp, i, what, sizeof(what));
	if (up) {
		__atomic_add_fetch(&p->link_ups, 1, __ATOMIC_RELAXED);
		dp_log("%s: link up%s", what,
		       dp->cfg->ports[i].kind == DP_PORT_VHOST ? " (guest connected)" : "");
		return;
	}
	__atomic_add_fetch(&p->link_downs, 1, __ATOMIC_RELAXED);
	if (dp->fwd == DP_FWD_L2SWITCH) {
		flushed = l2_table__flush_port(&dp->l2, (uint16_t)i);
		__atomic_add_fetch(&dp->l2_flushed, flushed, __ATOMIC_RELAXED);
	}
	dp_log("%s: link down%s; %u MACs flushed", what,
	       dp->cfg->ports[i].kind == DP_PORT_VHOST ? " (guest disconnected)" : "", flushed);
}

/*
 * RTE_ETH_EVENT_INTR_LSC. net_vhost calls this synchronously from new_device and
 * destroy_device (the vhost-events thread), after it stopped its queues: on a down event the
 * guest's memory is still mapped until we return, so wait here for every worker to finish
 * the iteration it is in (the worker-acknowledged removal of DPDK's examples/vhost).
 */
static int on_link_event(uint16_t eth, enum rte_eth_event_type ev, void *arg, void *ret)
{
	struct dp *dp = arg;
	struct rte_eth_link link;
	int i = port_index(dp, eth);

	(void)ret;
	if (ev != RTE_ETH_EVENT_INTR_LSC || i < 0)
		return 0;
	memset(&link, 0, sizeof(link));
	if (rte_eth_link_get_nowait(eth, &link) < 0)
		return 0;
	set_link(dp, (unsigned)i, link.link_status == RTE_ETH_LINK_UP);
	if (link.link_status != RTE_ETH_LINK_UP)
		dp_workers__quiesce(dp);
	return 0;
}

void dp_ports__poll_links(struct dp *dp)
{
	struct rte_eth_link link;
	unsigned i;

	for (i = 0; i < dp->nr_ports; i++) {
		if (dp->port[i].lsc || !dp->port[i].started)
			continue;
		memset(&link, 0, sizeof(link));
		if (rte_eth_link_get_nowait(dp->port[i].eth, &link) == 0)
			set_link(dp, i, link.link_status == RTE_ETH_LINK_UP);
	}
}

/* Whether uid:gid (supplementary groups: gid alone, after the drop) may search `st`. */
static bool searchable(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid == uid)
		return st->st_mode & S_IXUSR;
	if (st->st_gid == gid)
		return st->st_mode & S_IXGRP;
	return st->st_mode & S_IXOTH;
}

/*
 * The service user must reach `dir` after the drop (vhost-user reconnects, removing sockets at
 * exit): every directory from / down to it must let it search.
 */
static int check_reachable(const struct dp *dp, const char *dir, const char *what, struct err *e)
{
	char real[PATH_MAX], part[PATH_MAX];
	struct stat st;
	size_t k;

	if (!realpath(dir, real))
		return err__set(e, -errno, "%s: %s: %s", what, dir, strerror(errno));
	for (k = 0; real[k]; k++) {
		if (real[k + 1] && real[k + 1] != '/')
			continue;
		snprintf(part, sizeof(part), "%.*s", (int)k + 1, real);
		if (stat(part, &st))
			return err__set(e, -errno, "%s: %s: %s", what, part, strerror(errno));
		if (!searchable(&st, dp->service_uid, dp->service_gid))
			return err__set(e, -EACCES, "%s: the service user (uid %u, gid %u) cannot reach "
					"%s: %s is mode %04o, owned by %u:%u; put the sockets in a directory "
					"it can reach, such as %s", what, (unsigned)dp->service_uid,
					(unsigned)dp->service_gid, real, part,
					(unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
					(unsigned)st.st_gid, TRUST_DEFAULT_RUN_DIR);
	}
	return 0;
}

/*
 * The socket's directory is created 0700 for the service user when missing, else it must be
 * trusted (base/trust.h: owned by root, us or the service user, no group/world write, no open
 * ancestors). A server socket's path must then be free: a leftover socket nobody listens on
 * (a dataplane that was killed) is removed; a live one or another kind of file is an error.
 */
int dp_claim_socket_path(const struct dp *dp, const char *path, bool server, const char *what,
			 struct err *e)
{
	const struct trust_uids t = { .service = dp->service_uid, .only = TRUST_NO_UID };
	char dir[PATH_MAX], msg[sizeof(e->msg)];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int rc;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	rc = trust__make_run_dir(dir, dp->service_uid, dp->service_gid, &t, e);
	if (rc) {
		snprintf(msg, sizeof(msg), "%s", e->msg);
		return err__set(e, rc, "%s: %s", what, msg);
	}
	if (dp->service_uid != TRUST_NO_UID) {
		rc = check_reachable(dp, dir, what, e);
		if (rc)
			return rc;
	}
	if (!server)
		return 0;
	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return err__set(e, -errno, "%s: %s: %s", what, path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return err__set(e, -EEXIST, "%s: %s exists and is not a socket", what, path);
	if (trust__socket_in_use(path))
		return err__set(e, -EADDRINUSE, "%s: another process serves %s (a running "
				"rtvmm-dataplane?)", what, path);
	if (unlink(path) && errno != ENOENT)
		return err__set(e, -errno, "%s: cannot remove the stale socket %s: %s", what, path,
				strerror(errno));
	return 0;
}

static int create_port(struct dp *dp, unsigned i, struct err *e)
{
	const struct dp_port_spec *s = &dp->cfg->ports[i];
	struct dp_port *p = &dp->port[i];
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	struct rte_ether_addr mac;
	char devargs[512], name[128], what[256];
	uint16_t eth, nb_rxd = DP_RX_DESC, nb_txd = DP_TX_DESC, q;
	int rc, socket;

	port_what(dp, i, what, sizeof(what));
	if (s->kind == DP_PORT_VHOST || s->kind == DP_PORT_VIRTIO_USER) {
		rc = dp_claim_socket_path(dp, s->target, !s->client, what, e);
		if (rc)
			return rc;
	}
	if (dp_config__devargs(dp->cfg, i, devargs, sizeof(devargs)))
		return err__set(e, -ENAMETOOLONG, "%s: device arguments too long", what);
	dp_config__dev_name(dp->cfg, i, name, sizeof(name));

	/* A PCI device the EAL probed already (allow list) is there; anything else is probed. */
	if (rte_eth_dev_get_port_by_name(name, &eth) != 0) {
		rc = rte_dev_probe(devargs);
		if (rc < 0)
			return err__set(e, rc, "%s: cannot create the device (rte_dev_probe \"%s\": %s)%s",
					what, devargs, strerror(-rc),
					rc == -ENOENT || rc == -EINVAL ?
					"; is DPDK's driver for it installed (Debian package dpdk)?" : "");
		if (rte_eth_dev_get_port_by_name(name, &eth) != 0)
			return err__set(e, -ENODEV, "%s: probed \"%s\" but found no ethdev named %s", what,
					devargs, name);
	}
	p->eth = eth;
	p->peer = dp_config__peer(dp->cfg, i);

	rc = rte_eth_dev_info_get(eth, &info);
	if (rc)
		return err__set(e, rc, "%s: cannot read device info: %s", what, strerror(-rc));
	snprintf(p->driver, sizeof(p->driver), "%s", info.driver_name ? info.driver_name : "?");
	if (s->queues > info.max_rx_queues || s->queues > info.max_tx_queues)
		return err__set(e, -EINVAL, "%s: %u queue pairs asked, the device has at most %u rx "
				"and %u tx queues", what, s->queues, info.max_rx_queues,
				info.max_tx_queues);
	p->nb_queues = s->queues;
	p->lsc = info.dev_flags && (*info.dev_flags & RTE_ETH_DEV_INTR_LSC);

	memset(&conf, 0, sizeof(conf));
	conf.intr_conf.lsc = p->lsc;
	rc = rte_eth_dev_configure(eth, (uint16_t)p->nb_queues, (uint16_t)p->nb_queues, &conf);
	if (rc < 0)
		return err__set(e, rc, "%s: cannot configure %u queue pairs: %s%s", what, p->nb_queues,
				strerror(-rc), s->kind == DP_PORT_VHOST ?
				" (for a vhost-user socket: see the VHOST_CONFIG lines above)" : "");
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(eth, &nb_rxd, &nb_txd);
	if (rc < 0)
		return err__set(e, rc, "%s: descriptor counts: %s", what, strerror(-rc));
	socket = rte_eth_dev_socket_id(eth);
	p->socket = socket;
	if (socket < 0)
		socket = (int)rte_socket_id();
	for (q = 0; q < p->nb_queues; q++) {
		rc = rte_eth_rx_queue_setup(eth, q, nb_rxd, (unsigned)socket, NULL, dp->pool);
		if (rc < 0)
			return err__set(e, rc, "%s: rx queue %u: %s", what, q, strerror(-rc));
		rc = rte_eth_tx_queue_setup(eth, q, nb_txd, (unsigned)socket, NULL);
		if (rc < 0)
			return err__set(e, rc, "%s: tx queue %u: %s", what, q, strerror(-rc));
		rte_spinlock_init(&p->txq_lock[q]);
		p->rx_lcore[q] = -1;
	}
	rc = rte_eth_dev_callback_register(eth, RTE_ETH_EVENT_INTR_LSC, on_link_event, dp);
	if (rc < 0)
		return err__set(e, rc, "%s: cannot register for link events: %s", what, strerror(-rc));
	p->callback = true;
	/* A switch port sees every frame; vhost has no filter to open (-ENOTSUP is fine). */
	if (s->kind != DP_PORT_VHOST)
		(void)rte_eth_promiscuous_enable(eth);
	if (rte_eth_macaddr_get(eth, &mac) == 0)
		memcpy(p->mac, mac.addr_bytes, sizeof(p->mac));
	return 0;
}

int dp_ports__create(struct dp *dp, struct err *e)
{
	unsigned i;
	int rc;

	for (i = 0; i < dp->cfg->nr_ports; i++) {
		dp->port[i].eth = UINT16_MAX;
		dp->nr_ports = i + 1;
		rc = create_port(dp, i, e);
		if (rc)
			return rc;
	}
	return 0;
}

int dp_ports__start(struct dp *dp, struct err *e)
{
	struct rte_eth_link link;
	char what[256];
	unsigned i;
	int rc;

	for (i = 0; i < dp->nr_ports; i++) {
		rc = rte_eth_dev_start(dp->port[i].eth);
		if (rc < 0)
			return err__set(e, rc, "%s: cannot start: %s",
					port_what(dp, i, what, sizeof(what)), strerror(-rc));
		dp->port[i].started = true;
		memset(&link, 0, sizeof(link));
		if (rte_eth_link_get_nowait(dp->port[i].eth, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_UP)
			set_link(dp, i, true);
	}
	return 0;
}

void dp_ports__close(struct dp *dp)
{
	unsigned i;

	for (i = 0; i < dp->nr_ports; i++) {
		struct dp_port *p = &dp->port[i];

		if (p->eth == UINT16_MAX)
			continue;
		if (p->started)
			(void)rte_eth_dev_stop(p->eth);
		p->started = false;
		if (p->callback)
			(void)rte_eth_dev_callback_unregister(p->eth, RTE_ETH_EVENT_INTR_LSC,
							      on_link_event, dp);
		p->callback = false;
		(void)rte_eth_dev_close(p->eth);   /* net_vhost: unregisters (and unlinks) the socket */
		p->eth = UINT16_MAX;
	}
}
