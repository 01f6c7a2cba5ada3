/*
 * app/nic_stats.c: a NIC's counters from its backend rtvmm-dataplane's stats socket. The
 * document is matched to the NIC by its vhost-user socket and turned to the guest's point of
 * view; hostile documents (not JSON, wrong shapes, negative or missing counts, two ports on one
 * socket, deep nesting) are refused with a reason; the socket is read within a deadline and a
 * size limit against peers that are absent, silent, slow or flood; NICs on one dataplane cost
 * one connection.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/nic_stats.h"

/* Two ports as rtvmm-dataplane lists them (l2switch, trimmed to what matters and a bit more). */
#define PORT(n, sock, rxp, rxb, rxd, txp, txb, txd)                                            \
	"{\"port\": " #n ", \"name\": \"vm.net" #n "\", \"type\": \"vhost\", \"target\": \""  \
	sock "\", \"mode\": \"server\", \"link\": \"up\", \"link_ups\": 1, "                   \
	"\"RX-packets\": " #rxp ", \"RX-bytes\": " #rxb ", \"RX-dropped\": " #rxd ", "          \
	"\"TX-packets\": " #txp ", \"TX-bytes\": " #txb ", \"TX-dropped\": " #txd ", "          \
	"\"RX-missed\": 0, \"rx_queues\": [], \"tx_queues\": []}"
static const char good_doc[] =
	"{\"version\": 1, \"fwd\": \"l2switch\", \"uptime_s\": 3.5, \"ports\": ["
	PORT(0, "/run/a.sock", 10, 640, 1, 20, 1280, 2) ", "
	PORT(1, "/run/b.sock", 7, 448, 0, 9, 576, 3) "], \"lcores\": []}\n";

static long long num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void test_port_is_matched_by_socket_and_seen_from_the_guest(void **state)
{
	struct err e = { 0 };
	json_t *p = NULL;

	(void)state;
	assert_int_equal(nic_stats__port(good_doc, strlen(good_doc), "/run/b.sock", &p, &e), 0);
	/* the port sent 9 frames (576 bytes) to the guest and failed 3: the guest's rx */
	assert_int_equal(num(p, "rx_packets"), 9);
	assert_int_equal(num(p, "rx_bytes"), 576);
	assert_int_equal(num(p, "rx_dropped"), 3);
	/* it received 7 from the guest: the guest's tx */
	assert_int_equal(num(p, "tx_packets"), 7);
	assert_int_equal(num(p, "tx_bytes"), 448);
	assert_int_equal(num(p, "tx_dropped"), 0);
	assert_int_equal(num(p, "port"), 1);
	assert_string_equal(json_string_value(json_object_get(p, "port_name")), "vm.net1");
	assert_string_equal(json_string_value(json_object_get(p, "link")), "up");
	assert_string_equal(json_string_value(json_object_get(p, "source")), "rtvmm-dataplane");
	json_decref(p);
}

static void test_no_port_for_the_socket_is_named(void **state)
{
	struct err e = { 0 };
	json_t *p = NULL;

	(void)state;
	assert_int_equal(nic_stats__port(good_doc, strlen(good_doc), "/run/c.sock", &p, &e), -ENOENT);
	assert_null(p);
	assert_string_equal(e.msg, "no port of the dataplane serves /run/c.sock (2 ports)");
}

/* Each hostile document is refused (-EPROTO) with a message holding `why`. */
static void refused(const char *doc, size_t len, const char *why)
{
	struct err e = { 0 };
	json_t *p = NULL;

	assert_int_equal(nic_stats__port(doc, len, "/run/a.sock", &p, &e), -EPROTO);
	assert_null(p);
	if (!strstr(e.msg, why))
		fail_msg("document %.60s: message '%s' lacks '%s'", doc, e.msg, why);
}

static void test_hostile_documents_are_refused_with_a_reason(void **state)
{
	static const struct {
		const char *doc, *why;
	} cases[] = {
		{ "", "not a stats document" },
		{ "garbage", "not a stats document" },
		{ "{\"version\": 1, \"ports\": [", "not a stats document" },
		{ "[1, 2, 3]", "not a stats document of rtvmm-dataplane" },
		{ "{\"version\": 2, \"ports\": []}", "not a stats document of rtvmm-dataplane" },
		{ "{\"version\": \"1\", \"ports\": []}", "not a stats document of rtvmm-dataplane" },
		{ "{\"version\": 1, \"ports\": {}}", "not a stats document of rtvmm-dataplane" },
		{ "{\"version\": 1, \"ports\": [7]}", "ports[0]: not a port with a target" },
		{ "{\"version\": 1, \"ports\": [{\"target\": 5}]}", "ports[0]: not a port with a target" },
		{ "{\"version\": 1, \"version\": 1, \"ports\": []}", "duplicate object key" },
		{ "{\"version\": 1, \"ports\": [" PORT(0, "/run/a.sock", -1, 0, 0, 0, 0, 0) "]}",
		  "ports[0].RX-packets: not a count" },
		{ "{\"version\": 1, \"ports\": [" PORT(0, "/run/a.sock", 1, 0, 0, 0, "\"9\"", 0) "]}",
		  "ports[0].TX-bytes: not a count" },
		{ "{\"version\": 1, \"ports\": [" PORT(0, "/run/a.sock", 1, 0, 0, 0, 0, 1.5) "]}",
		  "ports[0].TX-dropped: not a count" },
		{ "{\"version\": 1, \"ports\": [" PORT(0, "/run/a.sock", 99999999999999999999, 0, 0, 0,
						       0, 0) "]}", "not a stats document" },
		{ "{\"version\": 1, \"ports\": [{\"port\": 0, \"target\": \"/run/a.sock\"}]}",
		  "ports[0].TX-packets: not a count" },
		{ "{\"version\": 1, \"ports\": [{\"port\": -3, \"target\": \"/run/a.sock\"}]}",
		  "ports[0].port: not a port number" },
		{ "{\"version\": 1, \"ports\": [{\"port\": 0, \"link\": \"sideways\", \"target\": "
		  "\"/run/a.sock\"}]}", "ports[0].link: neither" },
		{ "{\"version\": 1, \"ports\": [{\"port\": 0, \"name\": [], \"target\": "
		  "\"/run/a.sock\"}]}", "ports[0].name: not a string" },
		{ "{\"version\": 1, \"ports\": [" PORT(0, "/run/a.sock", 1, 1, 1, 1, 1, 1) ", "
		  PORT(1, "/run/a.sock", 1, 1, 1, 1, 1, 1) "]}", "ports[0] and ports[1] both serve /run/a.sock" },
	};
	static char deep[200001];
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		refused(cases[i].doc, strlen(cases[i].doc), cases[i].why);
	/* a NUL inside the document, and nesting far deeper than any parser stack should follow */
	refused("{\"version\": 1,\0 \"ports\": []}", 29, "not a stats document");
	memset(deep, '[', sizeof(deep) - 1);
	refused(deep, sizeof(deep) - 1, "not a stats document");
}

/* ---- the socket: a peer in a child process ---- */

enum peer_mode { PEER_GOOD, PEER_SILENT, PEER_FLOOD, PEER_TRICKLE };

struct peer {
	char dir[64], path[96];
	pid_t pid;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Serves connections as `mode` says until killed; exits with the number served after `serve`. */
static void peer_start(struct peer *p, enum peer_mode mode, unsigned serve)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char junk[4096];
	pid_t parent;
	unsigned n;
	int lfd, fd;

	snprintf(p->dir, sizeof(p->dir), "/tmp/rtvmm-nicstats-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/dp.sock", p->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	parent = getpid();
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid) {
		close(lfd);
		return;
	}
	/* a failed assertion leaves the test without stopping us: go with it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(102);
	signal(SIGPIPE, SIG_IGN);
	memset(junk, '[', sizeof(junk));
	for (n = 0; n < serve; n++) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(100);
		switch (mode) {
		case PEER_GOOD:
			if (write(fd, good_doc, strlen(good_doc)) != (ssize_t)strlen(good_doc))
				_exit(101);
			close(fd);
			break;
		case PEER_SILENT:
			pause();
			break;
		case PEER_FLOOD:
			while (write(fd, junk, sizeof(junk)) > 0)
				;
			close(fd);
			break;
		case PEER_TRICKLE:
			while (write(fd, junk, 1) > 0)
				usleep(20000);
			close(fd);
			break;
		}
	}
	_exit((int)n);
}

/* Stops the peer; its exit status (connections served) or -1 when it was killed. */
static int peer_stop(struct peer *p, bool kill_it)
{
	int st;

	if (kill_it)
		kill(p->pid, SIGKILL);
	assert_int_equal(waitpid(p->pid, &st, 0), p->pid);
	unlink(p->path);
	rmdir(p->dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_fetch_reads_a_whole_document(void **state)
{
	struct err e = { 0 };
	struct peer p;
	char *text = NULL;
	size_t len = 0;

	(void)state;
	peer_start(&p, PEER_GOOD, 1);
	assert_int_equal(nic_stats__fetch(p.path, 2000, NIC_STATS_MAX_BYTES, &text, &len, &e), 0);
	assert_int_equal(len, strlen(good_doc));
	assert_string_equal(text, good_doc);
	free(text);
	assert_int_equal(peer_stop(&p, false), 1);
}

static void test_fetch_without_a_dataplane_fails_at_once(void **state)
{
	struct err e = { 0 };
	char *text = NULL;
	size_t len;
	double t0 = now_s();

	(void)state;
	assert_int_equal(nic_stats__fetch("/tmp/rtvmm-no-such-dir/dp.sock", 2000, 100, &text, &len, &e),
			 -ENOENT);
	assert_true(now_s() - t0 < 0.1);
	assert_null(text);
	assert_non_null(strstr(e.msg, "stats socket /tmp/rtvmm-no-such-dir/dp.sock: connect: "));
}

/* A peer that never answers, or answers a byte at a time forever: the deadline ends it. */
static void test_fetch_gives_up_on_a_silent_or_slow_peer_at_its_deadline(void **state)
{
	enum peer_mode modes[] = { PEER_SILENT, PEER_TRICKLE };
	unsigned i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct err e = { 0 };
		struct peer p;
		char *text = NULL;
		size_t len;
		double t0, dt;

		peer_start(&p, modes[i], 1);
		t0 = now_s();
		assert_int_equal(nic_stats__fetch(p.path, 300, NIC_STATS_MAX_BYTES, &text, &len, &e),
				 -ETIMEDOUT);
		dt = now_s() - t0;
		assert_true(dt >= 0.29 && dt < 0.6);
		assert_null(text);
		assert_non_null(strstr(e.msg, "no complete reply within 300 ms"));
		peer_stop(&p, true);
	}
}

static void test_fetch_refuses_a_reply_over_the_limit(void **state)
{
	struct err e = { 0 };
	struct peer p;
	char *text = NULL;
	size_t len;

	(void)state;
	peer_start(&p, PEER_FLOOD, 1);
	assert_int_equal(nic_stats__fetch(p.path, 2000, 100000, &text, &len, &e), -EFBIG);
	assert_null(text);
	assert_non_null(strstr(e.msg, "the reply exceeds 100000 bytes"));
	peer_stop(&p, true);
}

/* Two NICs on one dataplane: one connection; a NIC without a stats socket: null; a dead one. */
static void test_backends_ask_each_socket_once(void **state)
{
	const char *nic_sockets[] = { "/run/a.sock", "/run/x.sock", "/run/b.sock", "/run/c.sock",
				      "/run/a.sock" };
	const char *stats[5];
	json_t *out[5];
	struct peer p;
	unsigned i;

	(void)state;
	peer_start(&p, PEER_GOOD, 2);
	stats[0] = stats[2] = stats[3] = p.path;
	stats[1] = NULL;
	stats[4] = "/tmp/rtvmm-no-such-dir/dp.sock";
	nic_stats__backends(stats, nic_sockets, 5, 2000, out);
	assert_int_equal(num(out[0], "rx_packets"), 20);
	assert_int_equal(num(out[0], "tx_packets"), 10);
	assert_string_equal(json_string_value(json_object_get(out[0], "stats_socket")), p.path);
	assert_true(json_is_null(out[1]));
	assert_int_equal(num(out[2], "rx_packets"), 9);
	assert_non_null(strstr(json_string_value(json_object_get(out[3], "error")),
			       "no port of the dataplane serves /run/c.sock"));
	assert_non_null(strstr(json_string_value(json_object_get(out[4], "error")), "connect: "));
	assert_string_equal(json_string_value(json_object_get(out[4], "stats_socket")), stats[4]);
	for (i = 0; i < 5; i++)
		json_decref(out[i]);
	/* the peer served one connection for the three NICs: a second would still be waiting */
	kill(p.pid, SIGTERM);
	assert_int_equal(peer_stop(&p, false), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_is_matched_by_socket_and_seen_from_the_guest),
		cmocka_unit_test(test_no_port_for_the_socket_is_named),
		cmocka_unit_test(test_hostile_documents_are_refused_with_a_reason),
		cmocka_unit_test(test_fetch_reads_a_whole_document),
		cmocka_unit_test(test_fetch_without_a_dataplane_fails_at_once),
		cmocka_unit_test(test_fetch_gives_up_on_a_silent_or_slow_peer_at_its_deadline),
		cmocka_unit_test(test_fetch_refuses_a_reply_over_the_limit),
		cmocka_unit_test(test_backends_ask_each_socket_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
