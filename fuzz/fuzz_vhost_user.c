/*
 * Fuzz target: a vhost-user backend's replies (vmm/virtio/vhost_user.c). The frontend runs the
 * handshake a session runs (features, protocol features, queue count, owner, memory table, two
 * rings set up, then stopped) against a socketpair whose far end already holds what the fuzzer
 * wrote and then reaches end of file: every reply is hostile, none is waited for.
 *
 * Input: byte 0 options (bit 0: pass the kick fd, bit 1: enable the rings), 8 bytes of protocol
 * features to ask for (ANDed with the backend's), then the backend's stream as chunks
 * [length byte][flags byte][bytes]; flags bit 0 sends an fd (SCM_RIGHTS) with the chunk.
 * Beyond the sanitizers: a failed request leaves the connection broken (unless it was refused
 * before anything was sent), every later request fails, a reply to GET_VRING_BASE names a 16-bit
 * index, and no file descriptor outlives the connection.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/virtio/vhost_user.h"

#include "fuzz.h"

#define BIT(n) (1ULL << (n))

static struct guest_mem mem;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(!guest_mem__create(&mem, 1 << 20), "cannot create guest RAM");
	return 0;
}

/* Writes the backend's stream into `fd` (as much as the socket takes), then ends it. */
static void backend_write(int fd, struct fuzz_in *in)
{
	while (in->n) {
		uint8_t len = fuzz_in__u8(in), flags = fuzz_in__u8(in);
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		size_t n;
		const uint8_t *bytes = fuzz_in__bytes(in, len, &n);
		struct iovec iov = { .iov_base = (void *)bytes, .iov_len = n };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		int extra = -1;

		if (!n)
			break;
		if (flags & 1) {
			struct cmsghdr *c;

			extra = eventfd(0, EFD_CLOEXEC);
			FUZZ_CHECK(extra >= 0, "eventfd: %s", strerror(errno));
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &extra, sizeof(int));
		}
		if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (extra >= 0)
				close(extra);
			break;
		}
		if (extra >= 0)
			close(extra);
	}
	shutdown(fd, SHUT_WR);
}

/* What must hold after each request: a failure breaks the connection, and it stays broken. */
static void after(struct vhost_user *vu, int err, const struct err *e, bool *broken,
		  const char *what)
{
	if (*broken)
		FUZZ_CHECK(err == -ENOTCONN || err == -EOPNOTSUPP,
			   "%s on a broken connection returned %d", what, err);
	if (err) {
		FUZZ_CHECK(err < 0 && e->msg[0], "%s: %d without a message", what, err);
		if (err != -EOPNOTSUPP && err != -EINVAL)
			FUZZ_CHECK(vu->broken && !vhost_user__connected(vu),
				   "%s failed (%s) but the connection is not marked broken", what, e->msg);
	}
	*broken = vu->broken;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct vhost_user vu;
	struct err e = { 0 };
	uint64_t features = 0, proto = 0, want, num = 0;
	unsigned fds_before = fuzz_open_fds(), ring, base;
	bool broken = false;
	uint8_t opts;
	int sv[2], kick, err;

	opts = fuzz_in__u8(&in);
	want = fuzz_in__u64(&in);
	FUZZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair: %s",
		   strerror(errno));
	vhost_user__init(&vu, "fuzz0");
	vu.timeout_ms = 100;
	FUZZ_CHECK(!vhost_user__attach(&vu, sv[0]), "attach");
	backend_write(sv[1], &in);
	kick = eventfd(0, EFD_CLOEXEC);
	FUZZ_CHECK(kick >= 0, "eventfd: %s", strerror(errno));

	err = vhost_user__get_features(&vu, &features, &e);
	after(&vu, err, &e, &broken, "GET_FEATURES");
	FUZZ_CHECK(err || vu.features == features, "features not recorded");
	err = vhost_user__set_features(&vu, features & ~BIT(VHOST_USER_F_PROTOCOL_FEATURES), &e);
	after(&vu, err, &e, &broken, "SET_FEATURES");
	err = vhost_user__get_protocol_features(&vu, &proto, &e);
	after(&vu, err, &e, &broken, "GET_PROTOCOL_FEATURES");
	if (!err) {
		err = vhost_user__set_protocol_features(&vu, proto & want, &e);
		after(&vu, err, &e, &broken, "SET_PROTOCOL_FEATURES");
		FUZZ_CHECK(err || vu.protocol == (proto & want), "protocol features not recorded");
	}
	err = vhost_user__get_queue_num(&vu, &num, &e);
	after(&vu, err, &e, &broken, "GET_QUEUE_NUM");
	err = vhost_user__set_owner(&vu, &e);
	after(&vu, err, &e, &broken, "SET_OWNER");
	err = vhost_user__set_mem_table_guest(&vu, &mem, &e);
	after(&vu, err, &e, &broken, "SET_MEM_TABLE");
	for (ring = 0; ring < 2; ring++) {
		struct vhost_user_vring_addr a = { .index = ring, .desc = 0x1000, .avail = 0x2000,
						   .used = 0x3000, .log = 0x3000 };

		err = vhost_user__set_vring_num(&vu, ring, 256, &e);
		after(&vu, err, &e, &broken, "SET_VRING_NUM");
		err = vhost_user__set_vring_addr(&vu, &a, &e);
		after(&vu, err, &e, &broken, "SET_VRING_ADDR");
		err = vhost_user__set_vring_base(&vu, ring, 0, &e);
		after(&vu, err, &e, &broken, "SET_VRING_BASE");
		err = vhost_user__set_vring_kick(&vu, ring, opts & 1 ? kick : -1, &e);
		after(&vu, err, &e, &broken, "SET_VRING_KICK");
		err = vhost_user__set_vring_call(&vu, ring, -1, &e);
		after(&vu, err, &e, &broken, "SET_VRING_CALL");
		err = vhost_user__set_vring_enable(&vu, ring, opts & 2, &e);
		after(&vu, err, &e, &broken, "SET_VRING_ENABLE");
	}
	for (ring = 0; ring < 2; ring++) {
		base = 0x10000;
		err = vhost_user__get_vring_base(&vu, ring, &base, &e);
		after(&vu, err, &e, &broken, "GET_VRING_BASE");
		FUZZ_CHECK(err || base <= 0xffff, "GET_VRING_BASE gave base %u", base);
	}
	FUZZ_CHECK(vu.nr_sent >= vu.nr_replies, "%llu replies to %llu requests",
		   (unsigned long long)vu.nr_replies, (unsigned long long)vu.nr_sent);

	vhost_user__close(&vu);
	close(sv[1]);
	close(kick);
	FUZZ_CHECK(fuzz_open_fds() == fds_before, "%u fds open after the connection closed, %u before",
		   fuzz_open_fds(), fds_before);
	return 0;
}
