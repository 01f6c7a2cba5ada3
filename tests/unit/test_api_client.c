/* api/client.c against a scripted server thread on a unix socket: answers, and each failure. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/client.h"

struct script {
	char path[108];
	int listen_fd;
	const char *answer;     /* written after the request's head and body; NULL: none */
	int hold_ms;            /* then waits this long before closing */
	char request[4096];     /* what the client sent */
	pthread_t thread;
};

static void *serve_once(void *arg)
{
	struct script *s = arg;
	size_t len = 0;
	int fd = accept(s->listen_fd, NULL, NULL);
	char *end;

	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t n = recv(fd, s->request + len, sizeof(s->request) - 1 - len, 0);

		if (n <= 0)
			break;
		len += (size_t)n;
		s->request[len] = '\0';
		end = strstr(s->request, "\r\n\r\n");
		if (end) {
			const char *cl = strstr(s->request, "Content-Length: ");
			size_t want = cl ? strtoul(cl + 16, NULL, 10) : 0;

			if (len - (size_t)(end + 4 - s->request) >= want)
				break;
		}
	}
	if (s->answer && send(fd, s->answer, strlen(s->answer), MSG_NOSIGNAL) < 0)
		fail_msg("send: %s", strerror(errno));
	if (s->hold_ms)
		usleep((useconds_t)s->hold_ms * 1000);
	close(fd);
	return NULL;
}

static void script__start(struct script *s, const char *answer, int hold_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(s, 0, sizeof(*s));
	snprintf(s->path, sizeof(s->path), "/tmp/rtvmm-api-client-%d.sock", getpid());
	unlink(s->path);
	strcpy(sa.sun_path, s->path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s->listen_fd >= 0);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->listen_fd, 4), 0);
	s->answer = answer;
	s->hold_ms = hold_ms;
	assert_int_equal(pthread_create(&s->thread, NULL, serve_once, s), 0);
}

static void script__stop(struct script *s)
{
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	unlink(s->path);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The server holds the connection open after the body: the client stops at Content-Length. */
static void test_client_reads_status_and_content_length_body(void **state)
{
	struct script s;
	struct api_reply r;
	struct err e = { 0 };
	double t0;

	(void)state;
	script__start(&s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		      "Content-Length: 15\r\n\r\n{\"state\":\"Run\"}", 1000);
	t0 = now_s();
	assert_int_equal(api_client__call(s.path, "GET", "/api/v1/vm.info", NULL, 3000, &r, &e), 0);
	assert_true(now_s() - t0 < 0.8);
	script__stop(&s);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 15);
	assert_string_equal(r.body, "{\"state\":\"Run\"}");
	assert_non_null(strstr(s.request, "GET /api/v1/vm.info HTTP/1.1\r\n"));
	assert_non_null(strstr(s.request, "Connection: close\r\n"));
	api_reply__free(&r);
}

static void test_client_sends_the_json_body(void **state)
{
	struct script s;
	struct api_reply r;
	struct err e = { 0 };

	(void)state;
	script__start(&s, "HTTP/1.1 204 No Content\r\n\r\n", 0);
	assert_int_equal(api_client__call(s.path, "PUT", "/api/v1/vm.pause", "{\"a\":1}", 2000, &r, &e),
			 0);
	script__stop(&s);
	assert_int_equal(r.status, 204);
	assert_string_equal(r.body, "");
	assert_non_null(strstr(s.request, "PUT /api/v1/vm.pause HTTP/1.1\r\n"));
	assert_non_null(strstr(s.request, "Content-Length: 7\r\n"));
	assert_non_null(strstr(s.request, "\r\n\r\n{\"a\":1}"));
	api_reply__free(&r);
}

static void test_client_reads_to_close_without_content_length(void **state)
{
	struct script s;
	struct api_reply r;
	struct err e = { 0 };

	(void)state;
	script__start(&s, "HTTP/1.0 404 Not Found\r\n\r\n{\"error\":\"x\"}", 0);
	assert_int_equal(api_client__call(s.path, "GET", "/nope", NULL, 2000, &r, &e), 0);
	script__stop(&s);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "{\"error\":\"x\"}");
	api_reply__free(&r);
}

static void test_client_says_no_socket(void **state)
{
	struct api_reply r;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(api_client__call("/tmp/rtvmm-no-such-api.sock", "GET", "/", NULL, 500, &r, &e),
			 -ENOENT);
	assert_non_null(strstr(e.msg, "/tmp/rtvmm-no-such-api.sock"));
	assert_null(r.body);
}

static void test_client_says_nobody_serves_a_stale_socket(void **state)
{
	struct script s;
	struct api_reply r;
	struct err e = { 0 };

	(void)state;
	script__start(&s, NULL, 0);
	pthread_cancel(s.thread);
	pthread_join(s.thread, NULL);
	close(s.listen_fd);
	assert_int_equal(api_client__call(s.path, "GET", "/", NULL, 500, &r, &e), -ECONNREFUSED);
	assert_non_null(strstr(e.msg, "nobody serves it"));
	unlink(s.path);
}

static void test_client_times_out_on_a_silent_server(void **state)
{
	struct script s;
	struct api_reply r;
	struct err e = { 0 };

	(void)state;
	script__start(&s, NULL, 800);
	assert_int_equal(api_client__call(s.path, "GET", "/api/v1/vmm.ping", NULL, 200, &r, &e),
			 -ETIMEDOUT);
	assert_non_null(strstr(e.msg, "within 200 ms"));
	script__stop(&s);
}

static void test_client_rejects_malformed_answers(void **state)
{
	static const char *const bad[] = {
		"SMTP 220 hello\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
		"",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct script s;
		struct api_reply r;
		struct err e = { 0 };

		script__start(&s, bad[i], 0);
		assert_int_equal(api_client__call(s.path, "GET", "/", NULL, 2000, &r, &e), -EPROTO);
		assert_non_null(strstr(e.msg, "malformed answer"));
		script__stop(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_reads_status_and_content_length_body),
		cmocka_unit_test(test_client_sends_the_json_body),
		cmocka_unit_test(test_client_reads_to_close_without_content_length),
		cmocka_unit_test(test_client_says_no_socket),
		cmocka_unit_test(test_client_says_nobody_serves_a_stale_socket),
		cmocka_unit_test(test_client_times_out_on_a_silent_server),
		cmocka_unit_test(test_client_rejects_malformed_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
