/*
 * test=net: the data-path loops, built from virtio_net.h's inline ring
 * operations. Everything here is .user.text and touches only the user
 * region (struct net_run, struct vnet, rings, buffers) and the queue notify
 * address, so it runs natively at CPL3 (user__call(net_user_entry, r)) on a
 * host that emulates CPL0; it runs unchanged as a plain call at CPL0.
 * No runtime calls, no .rodata: see USER_TEXT in rt.h.
 */
#include "test_net.h"

/* The CPL3 entry: user__call arrives here with RDI = struct net_run * and no return address. */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl net_user_entry\n"
	"net_user_entry:\n"
	"	call net_user_run\n"
	"	jmp user_exit\n"
	".popsection");

USER_INLINE uint64_t u_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

USER_INLINE void u_pause(void)
{
	__asm__ volatile("pause" ::: "memory");
}

USER_INLINE void u_copy(uint8_t *d, const uint8_t *s, uint32_t n)
{
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
}

USER_INLINE bool u_eq6(const uint8_t *a, const uint8_t *b)
{
	return !((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5]));
}

USER_INLINE void u_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

USER_INLINE uint32_t u_get32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

USER_INLINE uint64_t u_get64(const uint8_t *p)
{
	return u_get32(p) | (uint64_t)u_get32(p + 4) << 32;
}

/* Ping frame `seq` to the peer: header, magic, seq, TSC, then a pattern that depends on seq. */
USER_INLINE void build_ping(uint8_t *f, const struct net_run *r, uint32_t seq, uint64_t tsc)
{
	u_copy(f, r->peer, 6);
	u_copy(f + 6, r->dev->mac, 6);
	f[12] = NET_ETHERTYPE >> 8;
	f[13] = NET_ETHERTYPE & 0xff;
	u_put32(f + 14, NET_MAGIC);
	u_put32(f + 18, seq);
	u_put32(f + 22, (uint32_t)tsc);
	u_put32(f + 26, (uint32_t)(tsc >> 32));
	for (uint32_t i = NET_PING_HDR; i < r->frame_len; i++)
		f[i] = (uint8_t)(seq + i);
}

/* 1: a reply from the peer to us, intact (seq, tsc out); -1: one that came back damaged; 0: not ours. */
USER_INLINE int parse_reply(const uint8_t *f, uint32_t len, const struct net_run *r, uint32_t *seq, uint64_t *tsc)
{
	if (len < NET_PING_HDR || !u_eq6(f, r->dev->mac) || !u_eq6(f + 6, r->peer) ||
	    f[12] != NET_ETHERTYPE >> 8 || f[13] != (NET_ETHERTYPE & 0xff) || u_get32(f + 14) != NET_MAGIC)
		return 0;
	*seq = u_get32(f + 18);
	*tsc = u_get64(f + 22);
	if (len != r->frame_len)
		return -1;
	for (uint32_t i = NET_PING_HDR; i < len; i++)
		if (f[i] != (uint8_t)(*seq + i))
			return -1;
	return 1;
}

/* Sends ping `seq`; waits (up to reply_tsc) for a free tx buffer. NET_DONE or why not. */
USER_INLINE uint32_t send_ping(struct net_run *r, uint32_t seq, uint64_t now)
{
	struct vnet *n = r->dev;
	uint16_t id;
	uint8_t *f;

	while (!(f = vnet_tx_buf(n, &id))) {
		if (n->error)
			return NET_DEVICE;
		if (u_rdtsc() - now > r->reply_tsc)
			return NET_TX_STUCK;
		u_pause();
	}
	build_ping(f, r, seq, now);
	vnet_tx_send(n, id, r->frame_len);
	vnet_kick(n, &n->tx);
	return NET_DONE;
}

/* Waits (up to reply_tsc) until the device gave back every tx buffer. */
USER_INLINE void drain_tx(struct net_run *r)
{
	struct vnet *n = r->dev;
	uint64_t t0 = u_rdtsc();

	while (n->tx.inflight && !n->error && u_rdtsc() - t0 < r->reply_tsc) {
		vnet_tx_reclaim(n);
		u_pause();
	}
}

/*
 * Every received frame: is it the reply to `want` (or, with want ==
 * NET_PROBE_SEQ, to any probe)? Counts the others. Returns true if it came.
 */
USER_INLINE bool poll_replies(struct net_run *r, uint32_t want)
{
	struct vnet *n = r->dev;
	bool got = false;
	uint16_t id;
	uint8_t *f;
	uint32_t len;

	while (vnet_rx_next(n, &id, &f, &len)) {
		uint64_t now = u_rdtsc(), tsc;
		uint32_t seq;
		int k = parse_reply(f, len, r, &seq, &tsc);

		if (k < 0) {
			r->corrupt++;
		} else if (k == 0) {
			r->ignored++;
		} else if (want == NET_PROBE_SEQ ? (seq & NET_PROBE_SEQ) != 0 : seq == want) {
			if (want != NET_PROBE_SEQ && !got) {
				uint64_t rtt = now - tsc;
				r->received++;
				r->rtt_sum += rtt;
				if (rtt < r->rtt_min)
					r->rtt_min = rtt;
				if (rtt > r->rtt_max)
					r->rtt_max = rtt;
			}
			got = true;
		} else {
			r->late++;   /* an earlier probe or a reply that came after its timeout */
		}
		vnet_rx_post(n, id);
	}
	vnet_kick(n, &n->rx);
	return got;
}

static USER_TEXT uint32_t run_ping(struct net_run *r)
{
	struct vnet *n = r->dev;
	uint64_t t0 = u_rdtsc(), next_probe = t0;
	uint32_t st;

	/* 1. Probe until the peer answers: the switch learns, the far side comes up. */
	for (;;) {
		uint64_t now = u_rdtsc();
		if (now - t0 > r->wait_tsc)
			return NET_NO_PEER;
		if (now >= next_probe) {
			st = send_ping(r, NET_PROBE_SEQ | r->probes, now);
			if (st == NET_DEVICE)
				return st;
			r->probes++;   /* a probe that found the ring full is counted and retried later */
			next_probe = now + r->probe_tsc;
		}
		if (poll_replies(r, NET_PROBE_SEQ))
			break;
		if (n->error)
			return NET_DEVICE;
		u_pause();
	}
	r->peer_tsc = u_rdtsc() - t0;

	/* 2. The counted run: one frame in flight, each waits for its reply up to reply_tsc. */
	uint64_t start = u_rdtsc();
	for (uint32_t seq = 0; seq < r->count; seq++) {
		uint64_t sent_at = u_rdtsc();
		st = send_ping(r, seq, sent_at);
		if (st != NET_DONE)
			return st;
		r->sent++;
		while (!poll_replies(r, seq)) {
			if (n->error)
				return NET_DEVICE;
			if (u_rdtsc() - sent_at > r->reply_tsc) {
				r->lost++;
				break;
			}
			u_pause();
		}
		while (u_rdtsc() - sent_at < r->interval_tsc) {
			poll_replies(r, NET_NO_SEQ);   /* anything now is late; its buffer goes back */
			u_pause();
		}
		if (r->limit_tsc && u_rdtsc() - t0 > r->limit_tsc)
			return NET_LIMIT;
	}
	r->run_tsc = u_rdtsc() - start;
	drain_tx(r);
	return n->error ? NET_DEVICE : NET_DONE;
}

static USER_TEXT uint32_t run_echo(struct net_run *r)
{
	struct vnet *n = r->dev;
	uint64_t start = u_rdtsc(), last = 0;

	for (;;) {
		uint64_t now = u_rdtsc();
		bool any = false;
		uint16_t id, tid;
		uint8_t *f, *o;
		uint32_t len;

		while (vnet_rx_next(n, &id, &f, &len)) {
			r->received++;
			any = true;
			if (len < 14 || !u_eq6(f, n->mac)) {
				r->ignored++;   /* a runt, broadcast, multicast or someone else's */
			} else if (!(o = vnet_tx_buf(n, &tid))) {
				r->dropped++;   /* the device holds every tx buffer */
			} else {
				u_copy(o, f + 6, 6);         /* to the sender */
				u_copy(o + 6, n->mac, 6);    /* from us */
				u_copy(o + 12, f + 12, len - 12);
				vnet_tx_send(n, tid, len);
				r->sent++;
			}
			vnet_rx_post(n, id);
			if (r->count && r->sent >= r->count)
				break;
		}
		vnet_kick(n, &n->tx);
		vnet_kick(n, &n->rx);
		if (n->error)
			return NET_DEVICE;
		if (any)
			last = now;
		if (r->count && r->sent >= r->count)
			break;
		if (last && r->idle_tsc && now - last > r->idle_tsc)
			break;
		if (!last && r->wait_tsc && now - start > r->wait_tsc)
			return NET_NO_PEER;
		if (r->limit_tsc && now - start > r->limit_tsc)
			return NET_LIMIT;
		if (!any)
			u_pause();
	}
	r->run_tsc = u_rdtsc() - start;
	drain_tx(r);
	return n->error ? NET_DEVICE : NET_DONE;
}

USER_TEXT uint32_t net_user_run(struct net_run *r)
{
	r->rtt_min = ~0ull;
	r->status = r->role == NET_ECHO ? run_echo(r) : run_ping(r);
	return r->status;
}
