/*
 * `rtvmm ctl SOCKET VERB`: one call to a running rtvmm's control API (api/client.c), its
 * answer printed as text for people or, with --json, as the server sent it.
 */
#include "app/ctl.h"

#include <errno.h>
#include <getopt.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/client.h"
#include "app/console_attach.h"

#define CTL_DEFAULT_TIMEOUT_MS 5000
#define CTL_SNAPSHOT_TIMEOUT_MS 600000  /* a snapshot or migration moves all of guest RAM */

struct verb {
	const char *name;
	const char *method;
	const char *uri;
	void (*print)(json_t *answer);  /* NULL: the call has no answer body (204) */
	const char *help;
	const char *arg;                /* the argument it takes after VERB ("DIR"), or NULL */
};

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

static long long num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void print_ping(json_t *a)
{
	printf("%s (pid %lld)\n", str(a, "build_version"), num(a, "pid"));
}

/* "net0 (link up), net1" from a list of {"name", "link"}. */
static void print_devices(const char *label, json_t *list)
{
	json_t *d;
	size_t i;

	printf("%-16s", label);
	if (!json_array_size(list))
		printf("-");
	json_array_foreach(list, i, d) {
		json_t *link = json_object_get(d, "link");

		printf("%s%s", i ? ", " : "", str(d, "name"));
		if (link)
			printf(" (link %s)", json_string_value(link));
	}
	printf("\n");
}

/* vm.info's "kvm": the exits the guest runs without and its halt polling ("-": KVM's default). */
static void print_kvm(json_t *kvm)
{
	json_t *exits = json_object_get(kvm, "disabled_exits"), *x;
	size_t i;

	printf("%-16s", "Exits disabled:");
	if (!json_array_size(exits))
		printf("-");
	json_array_foreach(exits, i, x)
		printf("%s%s", i ? ", " : "", json_string_value(x));
	if (json_is_integer(json_object_get(kvm, "halt_poll_ns")))
		printf("\n%-16s%lld ns\n", "Halt polling:", num(kvm, "halt_poll_ns"));
	else
		printf("\n%-16s%s\n", "Halt polling:", "KVM's default");
	if (num(kvm, "dirty_ring"))
		printf("%-16s%lld entries per vCPU\n", "Dirty ring:", num(kvm, "dirty_ring"));
	else
		printf("%-16s%s\n", "Dirty ring:", "off (KVM's dirty bitmap)");
}

static void print_info(json_t *a)
{
	json_t *cfg = json_object_get(a, "config"), *devs = json_object_get(a, "devices");
	json_t *payload = json_object_get(cfg, "payload");

	printf("%-16s%s\n", "State:", str(a, "state"));
	printf("%-16s%lld\n", "vCPUs:", num(a, "vcpus"));
	printf("%-16s%lld MiB\n", "Memory:", num(a, "memory_actual_size") >> 20);
	printf("%-16s%s\n", "Kernel:", str(payload, "kernel"));
	if (json_is_string(json_object_get(payload, "initramfs")))
		printf("%-16s%s\n", "Initramfs:", str(payload, "initramfs"));
	printf("%-16s%s\n", "Cmdline:", str(payload, "cmdline"));
	printf("%-16s%.3f s\n", "Time paused:", (double)num(a, "paused_ns") / 1e9);
	printf("%-16s%lld\n", "Reboots:", num(a, "reboots"));
	printf("%-16s%s\n", "Serial socket:", str(json_object_get(a, "serial"), "socket"));
	if (json_is_string(json_object_get(a, "placed_by")))
		printf("%-16splan VM %s\n", "Placement:", str(a, "placed_by"));
	print_kvm(json_object_get(a, "kvm"));
	print_devices("NICs:", json_object_get(devs, "nics"));
	print_devices("Disks:", json_object_get(devs, "disks"));
	print_devices("Other devices:", json_object_get(devs, "other"));
}

/* A NIC's backend counters, indented under it: what the backend said, or why not. */
static void print_backend(json_t *b)
{
	const char *key;
	json_t *v;

	if (json_is_null(b)) {
		printf("  %-24s not asked (the NIC names no rtvmm-dataplane stats socket)\n", "backend");
		return;
	}
	if (json_object_get(b, "error")) {
		printf("  %-24s %s\n", "backend", str(b, "error"));
		return;
	}
	printf("  backend: %s port %lld", str(b, "source"), num(b, "port"));
	if (json_object_get(b, "port_name"))
		printf(" (%s)", str(b, "port_name"));
	printf(", stats socket %s\n", str(b, "stats_socket"));
	json_object_foreach(b, key, v)
		if (json_is_integer(v) && strcmp(key, "port"))
			printf("    %-22s %lld\n", key, (long long)json_integer_value(v));
	if (json_object_get(b, "link"))
		printf("    %-22s %s\n", "link", str(b, "link"));
}

static void print_counters(json_t *a)
{
	const char *dev, *key;
	json_t *one, *v;

	json_object_foreach(a, dev, one) {
		printf("%s:\n", dev);
		json_object_foreach(one, key, v) {
			if (json_is_integer(v))
				printf("  %-24s %lld\n", key, (long long)json_integer_value(v));
			else if (json_is_string(v))
				printf("  %-24s %s\n", key, json_string_value(v));
		}
		if ((v = json_object_get(one, "backend")))
			print_backend(v);
	}
}

static void print_placement(json_t *a)
{
	json_t *mem = json_object_get(a, "memory"), *t, *ok;
	size_t i;

	printf("%-12s %7s  %-12s %-6s %4s %8s %4s  %s\n", "THREAD", "TID", "CPUS", "POLICY", "PRIO",
	       "LAST_CPU", "NODE", "AS_PLANNED");
	json_array_foreach(json_object_get(a, "threads"), i, t) {
		ok = json_object_get(t, "as_planned");
		printf("%-12s %7lld  %-12s %-6s %4lld %8lld %4lld  %s\n", str(t, "name"), num(t, "tid"),
		       str(t, "cpus"), str(t, "policy"), num(t, "priority"), num(t, "last_cpu"),
		       num(t, "node"), ok ? (json_is_true(ok) ? "yes" : "NO") : "-");
	}
	printf("memory: %lld MiB, %lld KiB pages, ", num(mem, "size_mib"), num(mem, "page_size") >> 10);
	if (num(mem, "node") >= 0)
		printf("node %lld", num(mem, "node"));
	else
		printf("no single node");
	printf(", %lld pages not touched yet\n", num(mem, "pages_not_touched"));
}

static void print_exits(json_t *a)
{
	const char *key;
	json_t *v, *n;
	size_t i;

	json_array_foreach(json_object_get(a, "vcpus"), i, v) {
		printf("vcpu%lld (tid %lld): %lld exits", num(v, "index"), num(v, "tid"), num(v, "total"));
		json_object_foreach(json_object_get(v, "by_reason"), key, n)
			printf(", %s %lld", key, (long long)json_integer_value(n));
		printf("\n");
	}
}

static void print_snapshot(json_t *a)
{
	printf("snapshot %s: %lld MiB of memory (%lld MiB written), state %lld KiB, guest paused "
	       "%.3f s\n", str(a, "path"), num(a, "memory_bytes") >> 20,
	       num(a, "memory_written_bytes") >> 20, num(a, "state_bytes") >> 10,
	       (double)num(a, "paused_ns") / 1e9);
}

static void print_migration(json_t *a)
{
	printf("migrated to %s: %lld rounds, %lld pages sent (%lld MiB zero not sent), %lld MiB on "
	       "the wire at %.0f MiB/s, %lld pages after the stop; downtime %.3f s, total %.3f s; "
	       "KVM's dirty %s (%lld full-ring exits)\n",
	       str(a, "destination_url"), num(a, "rounds"), num(a, "pages_sent"),
	       num(a, "zero_bytes") >> 20, num(a, "bytes_sent") >> 20,
	       (double)num(a, "bandwidth_bps") / 1048576.0, num(a, "last_dirty_pages"),
	       (double)num(a, "downtime_ns") / 1e9, (double)num(a, "total_ns") / 1e9,
	       str(a, "dirty_log"), num(a, "ring_full_exits"));
}

static void print_migration_status(json_t *a)
{
	printf("migration: %s", str(a, "state"));
	if (strcmp(str(a, "state"), "none"))
		printf(" to %s, %.3f s", str(a, "destination_url"), (double)num(a, "elapsed_ns") / 1e9);
	if (*str(a, "error"))
		printf(": %s", str(a, "error"));
	printf("\n");
}

static const struct verb verbs[] = {
	{ "ping", "GET", "/api/v1/vmm.ping", print_ping, "rtvmm's version and pid" },
	{ "info", "GET", "/api/v1/vm.info", print_info,
	  "state, vCPUs, memory, payload, devices, time paused, reboots, serial socket, KVM knobs" },
	{ "counters", "GET", "/api/v1/vm.counters", print_counters,
	  "every device's counters and backend link state, a NIC's traffic from its dataplane" },
	{ "placement", "GET", "/api/v1/vm.placement", print_placement,
	  "every thread's cpus, policy, priority and node, and guest RAM's nodes, read back now" },
	{ "exits", "GET", "/api/v1/vm.exits", print_exits, "each vCPU's exits by reason" },
	{ "pause", "PUT", "/api/v1/vm.pause", NULL, "park every vCPU out of the guest" },
	{ "resume", "PUT", "/api/v1/vm.resume", NULL, "let the vCPUs run again" },
	{ "power-button", "PUT", "/api/v1/vm.power-button", NULL,
	  "press the ACPI power button (the guest shuts down in order)" },
	{ "shutdown", "PUT", "/api/v1/vm.shutdown", NULL, "stop the VM now (rtvmm exits 0)" },
	{ "reboot", "PUT", "/api/v1/vm.reboot", NULL,
	  "reset the VM as a guest reset does: it boots again in place (--on-reboot exit: "
	  "rtvmm exits 0)" },
	{ "shutdown-vmm", "PUT", "/api/v1/vmm.shutdown", NULL, "stop the VM and rtvmm" },
	{ "snapshot", "PUT", "/api/v1/vm.snapshot", print_snapshot,
	  "write a snapshot into the new directory DIR (a running VM pauses for it and goes on; "
	  "rtvmm run --restore DIR starts it again)", "DIR" },
	{ "migrate", "PUT", "/api/v1/vm.send-migration", print_migration,
	  "live-migrate the VM to an `rtvmm run --incoming tcp:HOST:PORT` there (pre-copy, then "
	  "a stop of at most about 300 ms); this rtvmm exits 0 once the guest runs there",
	  "tcp:HOST:PORT" },
	{ "migration", "GET", "/api/v1/vm.migration", print_migration_status,
	  "the migration under way or the last one: active, succeeded, failed or cancelled" },
	{ "migrate-cancel", "PUT", "/api/v1/vm.migration-cancel", NULL,
	  "give up the migration under way before its switch-over: the guest runs on here" },
	{ "console", "GET", "/api/v1/vm.info", NULL,
	  "attach this terminal to the VM's serial socket (Ctrl-] detaches)" },
};

static void usage(FILE *out)
{
	unsigned i;

	fprintf(out, "usage: rtvmm ctl SOCKET VERB [ARG] [--json] [--timeout MS]\n"
		"       rtvmm ctl SOCKET migrate tcp:HOST:PORT [--downtime-ms N] [--max-rounds N]\n"
		"       rtvmm ctl list [--run-dir DIR] [--json]   (the VMs 'rtvmm up' started)\n\n"
		"SOCKET is a running rtvmm's --api-socket. VERB is one of:\n");
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "%s%s%s", verbs[i].name, verbs[i].arg ? " " : "",
			 verbs[i].arg ? verbs[i].arg : "");
		fprintf(out, "  %-14s %s %s: %s\n", name, verbs[i].method, verbs[i].uri, verbs[i].help);
	}
	fprintf(out, "\n--json prints the server's JSON answer as it is (nothing for a 204).\n"
		"Exit status: 0 when the call succeeded, 1 when the server refused it (its error\n"
		"is printed) or could not be reached, 2 for a usage error.\n");
}

/* One call; 0 with `out` filled on a 2xx answer, else 1 after saying why on stderr. */
static int call(const char *sock, const struct verb *v, const char *body, int timeout_ms,
		struct api_reply *out)
{
	struct err e = { 0 };
	json_t *j;

	if (api_client__call(sock, v->method, v->uri, body, timeout_ms, out, &e)) {
		fprintf(stderr, "rtvmm ctl: %s: %s\n", v->name, e.msg);
		return 1;
	}
	if (out->status >= 200 && out->status < 300)
		return 0;
	j = json_loadb(out->body, out->len, 0, NULL);
	fprintf(stderr, "rtvmm ctl: %s: HTTP %d: %s\n", v->name, out->status,
		json_is_string(json_object_get(j, "error")) ? str(j, "error") : out->body);
	json_decref(j);
	api_reply__free(out);
	return 1;
}

/* `console`: vm.info's serial socket, then this terminal relayed to it until detached. */
static int attach_console(const char *verb, const struct api_reply *info)
{
	json_t *j = json_loadb(info->body, info->len, 0, NULL);
	const char *path = json_string_value(json_object_get(json_object_get(j, "serial"), "socket"));
	struct err e = { 0 };
	int status = 0;

	if (!path) {
		fprintf(stderr, "rtvmm ctl: %s: the VM has no serial socket (rtvmm run --serial "
			"socket=PATH, or a plan VM's serial: socket=PATH)\n", verb);
		status = 1;
	} else if (console_attach__run(path, &e)) {
		fprintf(stderr, "rtvmm ctl: %s: %s\n", verb, e.msg);
		status = 1;
	}
	json_decref(j);
	return status;
}

/*
 * The vm.snapshot body for DIR, as cloud-hypervisor's: {"destination_url":
 * "file:///abs/DIR"}; a relative DIR is taken from this directory (the
 * monitor's may differ). NULL after saying why.
 */
static char *snapshot_body(const char *dir)
{
	char cwd[4096], *url = NULL, *out = NULL;
	json_t *j;

	if (!*dir) {
		fprintf(stderr, "rtvmm ctl: snapshot: empty directory name\n");
		return NULL;
	}
	if (dir[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		fprintf(stderr, "rtvmm ctl: snapshot %s: cannot read this directory: %s\n", dir,
			strerror(errno));
		return NULL;
	}
	if (asprintf(&url, "file://%s%s%s", dir[0] == '/' ? "" : cwd, dir[0] == '/' ? "" : "/",
		     dir) < 0)
		return NULL;
	j = json_pack("{s:s}", "destination_url", url);
	if (j)
		out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	free(url);
	return out;
}

/* The vm.send-migration body for URL, with downtime_ms and max_rounds when given (> 0). */
static char *migrate_body(const char *url, long downtime_ms, long max_rounds)
{
	json_t *j = json_pack("{s:s}", "destination_url", url);
	char *out;

	if (j && downtime_ms > 0)
		json_object_set_new(j, "downtime_ms", json_integer(downtime_ms));
	if (j && max_rounds > 0)
		json_object_set_new(j, "max_rounds", json_integer(max_rounds));
	out = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return out;
}

/* After pause or resume: the state and the time paused, from vm.info. */
static void print_state_after(const char *sock, const char *verb, int timeout_ms)
{
	const struct verb *info = &verbs[1];
	struct api_reply r;
	json_t *j;

	if (call(sock, info, NULL, timeout_ms, &r))
		return;
	j = json_loadb(r.body, r.len, 0, NULL);
	printf("%s: the VM is %s; time paused in all %.3f s\n", verb, str(j, "state"),
	       (double)num(j, "paused_ns") / 1e9);
	json_decref(j);
	api_reply__free(&r);
}

int ctl__main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "max-rounds", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct verb *v = NULL;
	int c, timeout_ms = CTL_DEFAULT_TIMEOUT_MS, status;
	bool json = false, timeout_set = false;
	long downtime_ms = 0, max_rounds = 0;
	char *body = NULL;
	struct api_reply r;
	const char *sock;
	json_t *answer;
	char *end;
	unsigned i;

	optind = 1;
	argv[0] = "rtvmm ctl";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			errno = 0;
			timeout_ms = (int)strtol(optarg, &end, 10);
			timeout_set = true;
			if (errno || *end || timeout_ms <= 0) {
				fprintf(stderr, "rtvmm ctl: --timeout '%s': expected milliseconds > 0\n",
					optarg);
				return 2;
			}
			break;
		case 'd':
		case 'r':
			errno = 0;
			*(c == 'd' ? &downtime_ms : &max_rounds) = strtol(optarg, &end, 10);
			if (errno || *end || (c == 'd' ? downtime_ms : max_rounds) <= 0) {
				fprintf(stderr, "rtvmm ctl: --%s '%s': expected a number > 0\n",
					c == 'd' ? "downtime-ms" : "max-rounds", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 && argc - optind != 3) {
		fprintf(stderr, "rtvmm ctl: expected SOCKET VERB [ARG]\n");
		usage(stderr);
		return 2;
	}
	sock = argv[optind];
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, argv[optind + 1]))
			v = &verbs[i];
	if (!v) {
		fprintf(stderr, "rtvmm ctl: unknown verb '%s' (rtvmm ctl --help lists them)\n",
			argv[optind + 1]);
		return 2;
	}
	if (!v->arg != (argc - optind == 2)) {
		fprintf(stderr, "rtvmm ctl: %s %s%s\n", v->name, v->arg ? "needs its argument " :
			"takes no argument", v->arg ? v->arg : "");
		return 2;
	}
	if (v->arg && !strcmp(v->name, "migrate")) {
		body = migrate_body(argv[optind + 2], downtime_ms, max_rounds);
		if (!body)
			return 2;
		if (!timeout_set)
			timeout_ms = CTL_SNAPSHOT_TIMEOUT_MS;
	} else if (v->arg) {
		body = snapshot_body(argv[optind + 2]);
		if (!body)
			return 2;
		if (!timeout_set)
			timeout_ms = CTL_SNAPSHOT_TIMEOUT_MS;
	}
	status = call(sock, v, body, timeout_ms, &r);
	free(body);
	if (status)
		return status;
	if (!strcmp(v->name, "console")) {
		status = attach_console(v->name, &r);
	} else if (json) {
		if (r.len)
			printf("%s\n", r.body);
	} else if (v->print) {
		answer = json_loadb(r.body, r.len, 0, NULL);
		if (!answer) {
			fprintf(stderr, "rtvmm ctl: %s: the answer is not JSON: %s\n", v->name, r.body);
			status = 1;
		} else {
			v->print(answer);
		}
		json_decref(answer);
	} else if (!strcmp(v->name, "pause") || !strcmp(v->name, "resume")) {
		print_state_after(sock, v->name, timeout_ms);
	} else {
		printf("%s: done\n", v->name);
	}
	api_reply__free(&r);
	return status;
}
