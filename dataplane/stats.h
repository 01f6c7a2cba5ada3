/*
 * Counters out: the housekeeping thread (dp-stats) samples every counter each interval for
 * rates, ages the MAC table, polls links that raise no events, and serves a unix socket that
 * answers every connection with one JSON document and closes it. Clients are written without
 * blocking (outbox.h): one that never reads cannot hold up aging. `rtvmm-dataplane stats`
 * reads that socket and prints the document as testpmd prints its port statistics.
 *
 * JSON (version 1), names in testpmd's vocabulary:
 *   { "version": 1, "fwd": "xconnect"|"l2switch", "uptime_s": s, "interval_s": s,
 *     "ports": [ { "port", "name", "type", "target", "mode", "driver", "ethdev", "mac",
 *                  "link": "up"|"down", "link_ups", "link_downs", "queues", "peer",
 *                  "RX-packets", "RX-bytes", "RX-dropped", "RX-missed", "RX-errors",
 *                  "RX-nombuf", "TX-packets", "TX-bytes", "TX-dropped", "TX-errors",
 *                  "Rx-pps", "Rx-bps", "Tx-pps", "Tx-bps",
 *                  "spoofed", "unlearned", "macs",                          (l2switch only)
 *                  "rx_queues": [ { "queue", "lcore", "RX-packets", "RX-bytes", "RX-dropped",
 *                                   "Rx-pps" } ],
 *                  "tx_queues": [ { "queue", "lcores": [..], "shared", "TX-packets",
 *                                   "TX-bytes", "TX-dropped", "Tx-pps" } ] } ],
 *     "lcores": [ { "lcore", "thread", "rx_queues": ["port:queue", ..], "loops",
 *                   "busy_loops", "busy_pct", "cycles_per_packet" } ],
 *     (busy_pct: share of the last interval's time spent in loop iterations that moved packets;
 *      cycles_per_packet: TSC cycles of those iterations per packet received, since start)
 *     "l2": { "entries", "capacity", "aging_s", "per_port", "learned", "moved", "flooded", "aged",
 *             "flushed", "table": [ { "mac", "port", "age_s" } ] },        (l2switch only)
 *     "totals": { "RX-packets", "RX-dropped", "TX-packets", "TX-dropped", "Rx-pps",
 *                 "Tx-pps" },
 *     "stats_clients": { "refused", "expired", "peers_refused" } }
 * stats_clients: connections turned away (16 waiting already, or a document over 4 MiB),
 * dropped for not reading their document within 2 s, refused for their uid (SO_PEERCRED: only
 * root, the dataplane's uid and the service user may read).
 * RX-dropped: received but not forwarded (no destination: an unpaired xconnect port, an
 * l2switch frame for the ingress port or with no port up to flood to, a runt, a spoofed one).
 * spoofed: l2switch frames from a guest port with another source MAC than the NIC's (dropped);
 * unlearned: new source MACs a port could not add, holding --mac-per-port MACs already
 * (forwarded, not learned); macs: MACs the port holds.
 * TX-dropped: offered to the port's tx burst and not taken (ring full, guest absent).
 * RX-missed/RX-errors/RX-nombuf/TX-errors: the device's own counters (rte_eth_stats).
 */
#ifndef RTVMM_DATAPLANE_STATS_H
#define RTVMM_DATAPLANE_STATS_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "base/err.h"

struct dp;

/* Binds the stats socket (dp->cfg->stats_socket) and starts the dp-stats thread. */
int dp_stats__start(struct dp *dp, struct err *e);
/* Stops and joins the thread, removes the socket. */
void dp_stats__stop(struct dp *dp);

/* A document as described above: counters now, rates over the last full interval. */
json_t *dp_stats__json(struct dp *dp);

/* Prints a document in testpmd's layout; `title` heads it ("Statistics", "Summary at exit"). */
void dp_stats__print(FILE *f, const json_t *doc, const char *title);

/* Client: reads one document from the socket at `path`. */
int dp_stats__query(const char *path, json_t **doc, struct err *e);

#endif
