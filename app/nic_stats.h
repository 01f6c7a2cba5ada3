/*
 * A NIC's traffic counters as its vhost-user backend counts them. Frames move between the
 * guest and the backend through shared rings, kicks (ioeventfd) and interrupts (irqfd)
 * without passing the monitor, so only the backend can count them. rtvmm-dataplane serves
 * its per-port counters on its stats socket (dataplane/stats.h: one JSON document per
 * connection); the API thread asks it at request time, bounded in time and size, and reads
 * the port whose vhost-user socket is the NIC's, turned to the guest's point of view.
 */
#ifndef RTVMM_APP_NIC_STATS_H
#define RTVMM_APP_NIC_STATS_H

#include <stddef.h>

#include <jansson.h>

#include "base/err.h"

#define NIC_STATS_TIMEOUT_MS 500          /* connect and the whole reply, per stats socket */
#define NIC_STATS_MAX_BYTES (4u << 20)    /* the dataplane's own limit for a document */

/*
 * Reads one document from the unix socket `path`: connect, then read until the peer closes,
 * at most `max` bytes, all within `timeout_ms`. *text (malloc'd, NUL-terminated), *len.
 */
int nic_stats__fetch(const char *path, int timeout_ms, size_t max, char **text, size_t *len,
		     struct err *e);

/*
 * The guest's view of the dataplane port whose vhost-user socket is `nic_socket`, from the
 * stats document `text`: rx_* are what the port sent to the guest (its TX-*), tx_* what it
 * received from the guest (its RX-*); with port, port_name, link. -EPROTO for a document
 * that is not one, -ENOENT when no port serves `nic_socket`; why in `e`.
 */
int nic_stats__port(const char *text, size_t len, const char *nic_socket, json_t **out,
		    struct err *e);

/*
 * out[i]: NIC i's "backend" object: the port's counters with "source" and "stats_socket", or
 * {"stats_socket", "error"}; json_null() when stats[i] is NULL (the backend is not asked).
 * Each distinct stats socket is asked once, within `timeout_ms`.
 */
void nic_stats__backends(const char *const *stats, const char *const *nic_sockets, unsigned n,
			 int timeout_ms, json_t **out);

#endif
