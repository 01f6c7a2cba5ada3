/* test=net: the virtio-net driver against a real vhost-user backend (test_net.c, test_net_user.c). */
#ifndef RTVMM_GUEST_TEST_NET_H
#define RTVMM_GUEST_TEST_NET_H

#include "virtio_net.h"

#define ST_NET 108   /* exit status of a failed net check */

/* Ping frames: EtherType 0x88B5 (IEEE local experimental), magic, sequence, TSC at send, pattern. */
#define NET_ETHERTYPE   0x88b5
#define NET_MAGIC       0x4e565452u   /* "RTVN" */
#define NET_PING_HDR    30            /* 14 Ethernet + 4 magic + 4 seq + 8 tsc */
#define NET_PROBE_SEQ   0x80000000u   /* probes (before the counted run) have this bit */
#define NET_NO_SEQ      0x7fffffffu   /* no frame has it (count is below it): waiting for nothing */

enum net_role { NET_PING = 1, NET_ECHO };

/* How the data path ended (net_run.status). */
enum net_status {
	NET_DONE = 0,        /* ran to its end (replies may still have been lost: see the counts) */
	NET_DEVICE,          /* the device broke the ring contract: vnet.error */
	NET_NO_PEER,         /* ping: no answer to any probe within wait; echo: no frame within wait */
	NET_TX_STUCK,        /* the device kept every tx buffer for longer than the reply timeout */
	NET_LIMIT,           /* the overall time limit passed */
};

/*
 * One run of the data path: filled in at CPL0, updated by the loop (in
 * .user.bss, so the loop can run at CPL3). Times are TSC cycles.
 */
struct net_run {
	struct vnet *dev;
	uint32_t role, count, frame_len;
	uint8_t peer[6];
	uint64_t reply_tsc;          /* ping: wait for each reply; also the tx-stuck limit */
	uint64_t wait_tsc;           /* ping: for the peer's first answer; echo: for the first frame (0: forever) */
	uint64_t probe_tsc;          /* ping: between probes */
	uint64_t idle_tsc;           /* echo: stop after this long without a frame, once one came (0: never) */
	uint64_t limit_tsc;          /* the whole run (0: none) */
	uint64_t interval_tsc;       /* ping: from one send to the next, at least (0: at once) */
	/* results */
	uint32_t status;             /* enum net_status */
	uint32_t sent, received, lost, late, corrupt, ignored, probes, dropped;
	uint64_t rtt_min, rtt_max, rtt_sum;
	uint64_t peer_tsc;           /* ping: first probe to the first answer */
	uint64_t run_tsc;            /* the counted run (ping) or the whole echo loop */
};

/* test_net_user.c, .user.text: the loop, as a plain call (CPL0) ... */
uint32_t net_user_run(struct net_run *r);
/* ... or the user__call entry (CPL3): RDI = struct net_run *, ends with `jmp user_exit`. */
extern const uint8_t net_user_entry[];

/* test_net.c: test=net (options at the top of test_net.c). */
void check_net(void);

#endif
