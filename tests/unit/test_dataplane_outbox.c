/*
 * The stats socket's outbox (dataplane/outbox.h): a client that never reads must not block the
 * housekeeping thread (MAC aging runs there): a document larger than the socket buffer is
 * written as the socket takes it, flushing returns at once, other clients are served meanwhile,
 * and the stalled client is dropped after its timeout; no slot or an oversize document: refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/outbox.h"

#define BIG (4u << 20)     /* far beyond any unix socket buffer */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected pair: [0] the server's end (non-blocking, as accept4 gives it), [1] the client's. */
static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

static char *doc(size_t len, char fill)
{
	char *d = malloc(len);

	assert_non_null(d);
	memset(d, fill, len);
	return d;
}

/* Reads everything until EOF; returns the byte count (-1: no EOF within 2 s). */
static long read_all(int fd)
{
	char buf[65536];
	long total = 0;
	double end = now_s() + 2;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (now_s() < end) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return total;
		if (n > 0)
			total += n;
		else
			usleep(1000);
	}
	return -1;
}

static void test_a_client_that_never_reads_blocks_nothing(void **state)
{
	struct outbox o;
	struct pollfd p[OUTBOX_CLIENTS];
	int stalled[2], good[2];
	double t0, t;
	char *big, c;

	(void)state;
	outbox__init(&o, 2 * BIG, 5.0);
	pair(stalled);
	pair(good);
	big = doc(BIG, 'x');
	t0 = now_s();
	assert_int_equal(outbox__add(&o, stalled[0], big, BIG, t0), 0);
	assert_int_equal(outbox__pollfds(&o, p), 1);      /* still waiting to write */
	t = now_s();
	outbox__flush(&o, t);
	outbox__flush(&o, t);
	/* a blocking write would wait forever: the reader never reads; 2 s is room for a loaded host */
	assert_true(now_s() - t0 < 2.0);
	/* another client gets its whole document meanwhile, then EOF */
	assert_int_equal(outbox__add(&o, good[0], doc(1000, 'y'), 1000, now_s()), 0);
	assert_int_equal(read_all(good[1]), 1000);
	assert_int_equal(outbox__pollfds(&o, p), 1);
	/* past its deadline, the stalled client is dropped: its peer sees the end */
	outbox__flush(&o, t0 + 5.0);
	assert_int_equal(outbox__pollfds(&o, p), 0);
	assert_int_equal(o.expired, 1);
	while (read(stalled[1], &c, 1) == 1 && c == 'x')
		;
	close(stalled[1]);
	close(good[1]);
}

static void test_a_slow_reader_gets_the_whole_document(void **state)
{
	struct outbox o;
	struct pollfd p[OUTBOX_CLIENTS];
	int sv[2];
	char buf[65536];
	long got = 0;
	ssize_t n;

	(void)state;
	outbox__init(&o, BIG, 5.0);
	pair(sv);
	assert_int_equal(outbox__add(&o, sv[0], doc(BIG, 'z'), BIG, now_s()), 0);
	while ((n = read(sv[1], buf, sizeof(buf))) > 0) {
		got += n;
		outbox__flush(&o, now_s());
	}
	assert_int_equal(got, BIG);
	assert_int_equal(outbox__pollfds(&o, p), 0);
	close(sv[1]);
}

static void test_no_free_slot_or_an_oversize_document_is_refused(void **state)
{
	struct outbox o;
	int sv[OUTBOX_CLIENTS + 1][2], big[2];
	unsigned i;

	(void)state;
	outbox__init(&o, BIG, 5.0);
	for (i = 0; i < OUTBOX_CLIENTS; i++) {
		pair(sv[i]);
		assert_int_equal(outbox__add(&o, sv[i][0], doc(BIG, 'a'), BIG, now_s()), 0);
	}
	assert_false(outbox__has_room(&o));
	pair(sv[i]);
	assert_int_equal(outbox__add(&o, sv[i][0], doc(10, 'b'), 10, now_s()), -ENOSPC);
	assert_int_equal(read_all(sv[i][1]), 0);          /* closed at once, nothing sent */
	outbox__close_all(&o);
	assert_true(outbox__has_room(&o));
	pair(big);
	assert_int_equal(outbox__add(&o, big[0], doc(BIG + 1, 'c'), BIG + 1, now_s()), -EMSGSIZE);
	assert_int_equal(read_all(big[1]), 0);
	assert_int_equal(o.refused, 2);
	for (i = 0; i <= OUTBOX_CLIENTS; i++)
		close(sv[i][1]);
	close(big[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_client_that_never_reads_blocks_nothing),
		cmocka_unit_test(test_a_slow_reader_gets_the_whole_document),
		cmocka_unit_test(test_no_free_slot_or_an_oversize_document_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
