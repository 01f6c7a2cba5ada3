/* api/server.c on a real unix socket, driven by api/client.c: routes, bad input, slow clients. */
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
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/client.h"
#include "api/server.h"

struct fixture {
	char path[108];
	struct api_server *srv;
	int paused;
	int after_calls;
	int echo_calls;
	struct api_deferred *slow;   /* the deferred request of h_slow, until answered */
};

static void h_ping(void *opaque, const json_t *body, struct api_answer *out)
{
	(void)opaque;
	(void)body;
	api_answer__json(out, 200, json_pack("{s:s}", "version", "test"));
}

static void h_echo(void *opaque, const json_t *body, struct api_answer *out)
{
	struct fixture *f = opaque;

	f->echo_calls++;
	api_answer__json(out, 200, body ? json_deep_copy(body) : json_null());
}

static void after_pause(void *opaque)
{
	__atomic_add_fetch(&((struct fixture *)opaque)->after_calls, 1, __ATOMIC_RELAXED);
}

static void h_pause(void *opaque, const json_t *body, struct api_answer *out)
{
	struct fixture *f = opaque;

	(void)body;
	if (f->paused) {
		api_answer__error(out, 409, "already paused");
		return;
	}
	f->paused = 1;
	out->after = after_pause;
	out->after_opaque = f;
}

/* Answers later: the test answers it from its own thread (api_deferred__answer). */
static void h_slow(void *opaque, const json_t *body, struct api_answer *out)
{
	struct fixture *f = opaque;

	(void)body;
	api_answer__json(out, 500, json_pack("{s:s}", "error", "dropped: the answer comes later"));
	__atomic_store_n(&f->slow, api_answer__defer(out), __ATOMIC_RELEASE);
}

static const struct api_route routes[] = {
	{ "GET", "/api/v1/vmm.ping", h_ping },
	{ "PUT", "/api/v1/slow", h_slow },
	{ "PUT", "/api/v1/echo", h_echo },
	{ "PUT", "/api/v1/vm.pause", h_pause },
	{ "GET", "/api/v1/echo", h_ping },
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct api_server_config cfg = {
		.routes = routes, .nr_routes = sizeof(routes) / sizeof(routes[0]),
		.max_connections = 4, .timeout_s = 1, .max_body = 1024,
		.owner = (uid_t)-1, .group = (gid_t)-1,
	};
	struct err e = { 0 };

	snprintf(f->path, sizeof(f->path), "/tmp/rtvmm-api-server-%d.sock", getpid());
	cfg.socket_path = f->path;
	cfg.opaque = f;
	if (api_server__start(&f->srv, &cfg, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	api_server__stop(f->srv);
	free(f);
	return 0;
}

/* One call that must reach the server; returns the status, the body in `body` (freed by caller). */
static int call(struct fixture *f, const char *method, const char *uri, const char *body,
		json_t **json)
{
	struct api_reply r;
	struct err e = { 0 };
	int status;

	if (api_client__call(f->path, method, uri, body, 3000, &r, &e))
		fail_msg("%s %s: %s", method, uri, e.msg);
	status = r.status;
	if (json)
		*json = r.len ? json_loadb(r.body, r.len, 0, NULL) : NULL;
	api_reply__free(&r);
	return status;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *error_of(const json_t *j)
{
	return json_string_value(json_object_get(j, "error"));
}

static void test_server_answers_a_route_with_json(void **state)
{
	struct fixture *f = *state;
	json_t *j;

	assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, &j), 200);
	assert_string_equal(json_string_value(json_object_get(j, "version")), "test");
	json_decref(j);
	assert_int_equal(call(f, "PUT", "/api/v1/echo", "{\"a\":[1,2]}", &j), 200);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "a"), 1)), 2);
	json_decref(j);
}

static void test_server_socket_is_0600(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_server_unknown_path_is_404_json(void **state)
{
	struct fixture *f = *state;
	json_t *j;

	assert_int_equal(call(f, "GET", "/api/v1/nope", NULL, &j), 404);
	assert_non_null(strstr(error_of(j), "/api/v1/nope"));
	json_decref(j);
}

static void test_server_wrong_verb_is_405(void **state)
{
	struct fixture *f = *state;
	json_t *j;

	assert_int_equal(call(f, "DELETE", "/api/v1/echo", NULL, &j), 405);
	assert_non_null(strstr(error_of(j), "GET"));
	assert_non_null(strstr(error_of(j), "PUT"));
	json_decref(j);
	assert_int_equal(call(f, "GET", "/api/v1/vm.pause", NULL, NULL), 405);
}

static void test_server_malformed_and_oversized_bodies_are_400(void **state)
{
	struct fixture *f = *state;
	char *big = malloc(4096);
	json_t *j;

	assert_int_equal(call(f, "PUT", "/api/v1/echo", "{\"a\":", &j), 400);
	assert_non_null(strstr(error_of(j), "not JSON"));
	json_decref(j);
	memset(big, ' ', 4095);
	big[0] = '[';
	big[4093] = ']';
	big[4094] = '\0';
	assert_int_equal(call(f, "PUT", "/api/v1/echo", big, &j), 400);
	assert_non_null(strstr(error_of(j), "larger than 1024 bytes"));
	json_decref(j);
	free(big);
	assert_int_equal(f->echo_calls, 0);
	/* and it keeps serving */
	assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, NULL), 200);
}

static void test_server_wrong_state_is_409_and_after_runs_once_answered(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	int i;

	assert_int_equal(call(f, "PUT", "/api/v1/vm.pause", NULL, &j), 204);
	assert_null(j);
	/* It runs once the answer went out: the client may see the answer a moment before. */
	for (i = 0; i < 100 && !__atomic_load_n(&f->after_calls, __ATOMIC_RELAXED); i++)
		usleep(10000);
	assert_int_equal(__atomic_load_n(&f->after_calls, __ATOMIC_RELAXED), 1);
	assert_int_equal(call(f, "PUT", "/api/v1/vm.pause", NULL, &j), 409);
	assert_string_equal(error_of(j), "already paused");
	json_decref(j);
	assert_int_equal(f->after_calls, 1);
}

struct slow_call {
	struct fixture *f;
	int status;
	json_t *body;
};

static void *slow_caller(void *arg)
{
	struct slow_call *s = arg;
	struct api_reply r;
	struct err e = { 0 };

	if (api_client__call(s->f->path, "PUT", "/api/v1/slow", NULL, 10000, &r, &e) == 0) {
		s->status = r.status;
		s->body = r.len ? json_loadb(r.body, r.len, 0, NULL) : NULL;
		api_reply__free(&r);
	}
	return NULL;
}

/*
 * A deferred request waits, past the idle timeout (1 s here), while the server answers
 * others; another thread's answer then reaches it, and its after-action runs once.
 */
static void test_server_answers_others_while_a_deferred_request_waits(void **state)
{
	struct fixture *f = *state;
	struct slow_call s = { .f = f, .status = -1 };
	struct api_answer a = { 0 };
	pthread_t t;
	int i;

	assert_int_equal(pthread_create(&t, NULL, slow_caller, &s), 0);
	for (i = 0; i < 300 && !__atomic_load_n(&f->slow, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	assert_non_null(f->slow);
	for (i = 0; i < 15; i++) {
		assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, NULL), 200);
		usleep(100000);
	}
	assert_int_equal(s.status, -1);   /* still waiting, 1.5 s on */
	api_answer__json(&a, 200, json_pack("{s:b}", "done", 1));
	a.after = after_pause;
	a.after_opaque = f;
	api_deferred__answer(f->slow, &a);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(s.status, 200);
	assert_true(json_is_true(json_object_get(s.body, "done")));
	json_decref(s.body);
	for (i = 0; i < 100 && !__atomic_load_n(&f->after_calls, __ATOMIC_RELAXED); i++)
		usleep(10000);
	assert_int_equal(__atomic_load_n(&f->after_calls, __ATOMIC_RELAXED), 1);
	assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, NULL), 200);
}

static int connect_raw(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Clients that connect and never send, or send and never read, do not stop the others. */
static void test_server_serves_past_silent_and_deaf_clients(void **state)
{
	struct fixture *f = *state;
	static const char req[] = "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\n\r\n";
	int silent = connect_raw(f->path), deaf = connect_raw(f->path);
	char buf[256];
	int i;

	assert_int_equal(send(deaf, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
	for (i = 0; i < 50; i++)
		assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, NULL), 200);
	/* The idle timeout (1 s here) closes the silent one: it reads end of file. */
	alarm(5);
	assert_int_equal(recv(silent, buf, sizeof(buf), 0), 0);
	alarm(0);
	close(silent);
	close(deaf);
}

/*
 * Past the connection limit (4 here) a client waits in the backlog and is answered once an
 * idle one times out (1 s here).
 */
static void test_server_answers_past_the_limit_once_idle_ones_time_out(void **state)
{
	struct fixture *f = *state;
	int fds[4], i;
	double t0;

	for (i = 0; i < 4; i++)
		fds[i] = connect_raw(f->path);
	usleep(200000);
	t0 = now_s();
	assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, NULL), 200);
	assert_true(now_s() - t0 > 0.5);
	assert_true(now_s() - t0 < 2.5);
	for (i = 0; i < 4; i++)
		close(fds[i]);
}

static void test_server_refuses_a_live_socket_and_replaces_a_stale_one(void **state)
{
	struct fixture *f = *state;
	struct api_server_config cfg = { .socket_path = f->path, .routes = routes, .nr_routes = 1,
					 .owner = (uid_t)-1 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct api_server *s2;
	struct err e = { 0 };
	char stale[108];
	int fd;

	assert_int_equal(api_server__start(&s2, &cfg, &e), -EADDRINUSE);
	assert_non_null(strstr(e.msg, "refusing to replace"));
	assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, NULL), 200);

	snprintf(stale, sizeof(stale), "/tmp/rtvmm-api-stale-%d.sock", getpid());
	strcpy(sa.sun_path, stale);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cfg.socket_path = stale;
	assert_int_equal(api_server__start(&s2, &cfg, &e), 0);
	memcpy(f->path, stale, sizeof(f->path));
	assert_int_equal(call(f, "GET", "/api/v1/vmm.ping", NULL, NULL), 200);
	api_server__stop(s2);
	assert_int_equal(access(stale, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_server_answers_a_route_with_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_socket_is_0600, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_unknown_path_is_404_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_wrong_verb_is_405, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_malformed_and_oversized_bodies_are_400,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_wrong_state_is_409_and_after_runs_once_answered,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_answers_others_while_a_deferred_request_waits,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_serves_past_silent_and_deaf_clients, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_server_answers_past_the_limit_once_idle_ones_time_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_refuses_a_live_socket_and_replaces_a_stale_one,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
