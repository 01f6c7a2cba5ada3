/*
 * The control API's routes. Every handler runs on the "api" thread and reads the VM live:
 * the state and pause time from vm/, counters through each device's counters op (relaxed
 * loads in the devices), exit counts with relaxed loads, the placement from the kernel now
 * (rt__read per thread, move_pages for guest RAM), a NIC's traffic from its backend's stats
 * socket (nic_stats.h, bounded in time). Nothing here takes a lock a vCPU holds
 * across KVM_RUN. The stopping calls answer first (204) and stop the VM once the answer went
 * out: the process then ends as it does for that stop reason.
 */
#include "app/control.h"

#include <dirent.h>
#include <errno.h>
#include <linux/kvm.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/migration.h"
#include "app/nic_stats.h"
#include "base/cpus.h"
#include "numa/mem.h"
#include "rt/rt.h"
#include "vmm/exit.h"
#include "vmm/snapshot.h"

struct control {
	struct control_config cfg;
	struct api_server *server;
	const char **nic_stats;            /* cfg.nic_stats, copied */
	struct migration_worker *migration; /* vm.send-migration runs there */
};

/* The VM's NIC or disk called `name`: "nics", "disks", or NULL for the machine's own devices. */
static const char *device_kind(const struct vm_config *cfg, const char *name)
{
	unsigned i;

	for (i = 0; i < cfg->nr_nics; i++)
		if (!strcmp(cfg->nics[i].name, name))
			return "nics";
	for (i = 0; i < cfg->nr_disks; i++) {
		const struct vm_disk *d = &cfg->disks[i];

		if (!strcmp(d->kind == VM_DISK_LOCAL ? d->local.name : d->vhost.name, name))
			return "disks";
	}
	return NULL;
}

/* ---- counters: a counter_sink that fills a JSON object ---- */

static void sink_num(void *opaque, const char *name, uint64_t value)
{
	json_object_set_new(opaque, name, json_integer((json_int_t)value));
}

static void sink_str(void *opaque, const char *name, const char *value)
{
	json_object_set_new(opaque, name, json_string(value));
}

/* {"DEVICE": {"counter": n, "link": "up"}, ...}: a device's parts (PCI function, device) merged. */
static json_t *counters_json(const struct vm *vm)
{
	json_t *all = json_object();
	unsigned i;

	for (i = 0; i < vm->devices.nr; i++) {
		const struct device *d = &vm->devices.v[i];
		struct counter_sink sink = { .num = sink_num, .str = sink_str };
		json_t *one;

		if (!d->ops->counters)
			continue;
		one = json_object_get(all, d->name);
		if (!one) {
			one = json_object();
			json_object_set_new(all, d->name, one);
		}
		sink.opaque = one;
		d->ops->counters(d->dev, &sink);
	}
	return all;
}

/* ---- cloud-hypervisor's calls ---- */

static void h_ping(void *opaque, const json_t *body, struct api_answer *out)
{
	(void)opaque;
	(void)body;
	api_answer__json(out, 200, json_pack("{s:s, s:s, s:i, s:[]}", "build_version",
					     "rtvmm " RTVMM_VERSION, "version", RTVMM_VERSION,
					     "pid", (int)getpid(), "features"));
}

/* The KVM knobs the VM was given: {"disabled_exits": ["hlt", ...], "halt_poll_ns": N or null,
 * "dirty_ring": N}. */
static json_t *kvm_knobs_json(const struct vm *vm)
{
	static const unsigned order[] = { KVM_X86_DISABLE_EXITS_HLT, KVM_X86_DISABLE_EXITS_PAUSE,
					  KVM_X86_DISABLE_EXITS_MWAIT, KVM_X86_DISABLE_EXITS_CSTATE };
	json_t *exits = json_array();
	char name[16];
	unsigned i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (vm->disabled_exits & order[i])
			json_array_append_new(exits, json_string(vm_exits__names(order[i], name,
										 sizeof(name))));
	return json_pack("{s:o, s:o, s:I}", "disabled_exits", exits, "halt_poll_ns",
			 vm->halt_poll_ns >= 0 ? json_integer((json_int_t)vm->halt_poll_ns) :
						 json_null(), "dirty_ring", (json_int_t)vm->rings.entries);
}

static json_t *info_json(struct control *c)
{
	const struct vm_config *cfg = c->cfg.cfg;
	struct vm *vm = c->cfg.vm;
	json_t *devices = json_pack("{s:[], s:[], s:[]}", "nics", "disks", "other");
	json_t *counters = counters_json(vm), *config;
	unsigned i;

	for (i = 0; i < vm->devices.nr; i++) {
		const char *name = vm->devices.v[i].name, *kind = device_kind(cfg, name);
		json_t *list = json_object_get(devices, kind ? kind : "other"), *d, *link;
		size_t k;
		bool seen = false;

		json_array_foreach(list, k, d)
			seen |= !strcmp(json_string_value(json_object_get(d, "name")), name);
		if (seen)
			continue;
		d = json_pack("{s:s}", "name", name);
		link = json_object_get(json_object_get(counters, name), "link");
		if (link)
			json_object_set(d, "link", link);
		json_array_append_new(list, d);
	}
	json_decref(counters);
	config = json_pack("{s:{s:i, s:i}, s:{s:I}, s:{s:s, s:s?, s:s?}}",
			   "cpus", "boot_vcpus", (int)vm->nr_vcpus, "max_vcpus", (int)vm->nr_vcpus,
			   "memory", "size", (json_int_t)vm->mem.size,
			   "payload", "kernel", cfg->boot.kernel_path, "initramfs",
			   cfg->boot.initrd_path, "cmdline", cfg->boot.cmdline);
	return json_pack("{s:o, s:s, s:I, s:i, s:I, s:I, s:o, s:o, s:o, s:s?}",
			 "config", config,
			 "state", vm_state__name(vm__state(vm)),
			 "memory_actual_size", (json_int_t)vm->mem.size,
			 "vcpus", (int)vm->nr_vcpus,
			 "paused_ns", (json_int_t)vm__paused_ns(vm),
			 "reboots", (json_int_t)vm__reboots(vm),
			 "devices", devices,
			 "kvm", kvm_knobs_json(vm),
			 "serial", c->cfg.serial_socket ? json_pack("{s:s}", "socket",
								    c->cfg.serial_socket)
							: json_null(),
			 "placed_by", c->cfg.plan ? c->cfg.plan->name : NULL);
}

static void h_info(void *opaque, const json_t *body, struct api_answer *out)
{
	(void)body;
	api_answer__json(out, 200, info_json(opaque));
}

/*
 * Each NIC's "backend": its traffic as the backend counts it (the frames, kicks and
 * interrupts never pass the monitor), asked now; null when the NIC names no stats socket.
 */
static void add_backends(const struct control *c, json_t *all)
{
	const struct vm_config *cfg = c->cfg.cfg;
	unsigned i, n = cfg->nr_nics;
	const char **stats = calloc(n + 1, sizeof(*stats)), **sockets = calloc(n + 1, sizeof(*sockets));
	json_t **backend = calloc(n + 1, sizeof(*backend));

	if (!stats || !sockets || !backend)
		goto out_free;
	for (i = 0; i < n; i++) {
		sockets[i] = cfg->nics[i].socket;
		stats[i] = c->cfg.nic_stats[i];
	}
	nic_stats__backends(stats, sockets, n, NIC_STATS_TIMEOUT_MS, backend);
	for (i = 0; i < n; i++) {
		json_t *one = json_object_get(all, cfg->nics[i].name);

		if (one)
			json_object_set_new(one, "backend", backend[i]);
		else
			json_decref(backend[i]);
	}
out_free:
	free(backend);
	free(sockets);
	free(stats);
}

static void h_counters(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;
	json_t *all = counters_json(c->cfg.vm);

	(void)body;
	add_backends(c, all);
	api_answer__json(out, 200, all);
}

/* 409 naming the state when `err` is -EBUSY, 500 otherwise; 204 when `err` is 0. */
static void state_answer(struct control *c, int err, const char *what, const char *needs,
			 struct api_answer *out)
{
	if (!err)
		api_answer__json(out, 204, NULL);
	else if (err == -EBUSY)
		api_answer__error(out, 409, "%s: the VM is %s, not %s", what,
				  vm_state__name(vm__state(c->cfg.vm)), needs);
	else
		api_answer__error(out, 500, "%s: %s", what, strerror(-err));
}

/*
 * A migration under way owns the VM's run state (it pauses it for the switch-over),
 * and one that succeeded hands the guest over: `call` answers 409 and true then.
 */
static bool migration_holds(struct control *c, const char *call, struct api_answer *out)
{
	struct migration_status ms;

	migration__status(c->migration, &ms);
	if (strcmp(ms.state, "active") && strcmp(ms.state, "succeeded"))
		return false;
	api_answer__error(out, 409, "%s: the migration to %s %s", call, ms.url,
			  strcmp(ms.state, "active") ? "succeeded: the guest runs there" :
			  "is under way (vm.migration-cancel ends it)");
	return true;
}

static void h_pause(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;

	(void)body;
	if (!migration_holds(c, "vm.pause", out))
		state_answer(c, vm__pause(c->cfg.vm), "vm.pause", "Running", out);
}

static void h_resume(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;

	(void)body;
	if (!migration_holds(c, "vm.resume", out))
		state_answer(c, vm__resume(c->cfg.vm), "vm.resume", "Paused", out);
}

static void h_power_button(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;
	int err;

	(void)body;
	err = vm__state(c->cfg.vm) == VM_STATE_RUNNING ? vm__power_button(c->cfg.vm) : -EBUSY;
	if (err == -ENODEV)
		api_answer__error(out, 409, "vm.power-button: the machine has no ACPI PM block");
	else
		state_answer(c, err, "vm.power-button", "Running", out);
}

/*
 * vm.snapshot, as cloud-hypervisor's: {"destination_url": "file:///DIR"}, DIR
 * a new directory. A running VM pauses for it and goes on; 200 with what it cost.
 */
static void h_snapshot(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;
	const char *url = json_string_value(json_object_get(body, "destination_url"));
	struct snapshot_stats st;
	struct err e = { 0 };
	int err;

	if (migration_holds(c, "vm.snapshot", out))
		return;
	if (!url || strncmp(url, "file:///", 8)) {
		api_answer__error(out, 400, "vm.snapshot: \"destination_url\" must be a string "
				  "\"file:///DIR\" (an absolute path), got %s",
				  url ? url : "none");
		return;
	}
	err = snapshot__save(c->cfg.vm, url + 7, &st, &e);
	if (err == -EBUSY)
		api_answer__error(out, 409, "vm.snapshot: %s", e.msg);
	else if (err == -EEXIST)
		api_answer__error(out, 400, "vm.snapshot: %s", e.msg);
	else if (err)
		api_answer__error(out, 500, "vm.snapshot: %s", e.msg);
	else
		api_answer__json(out, 200, json_pack("{s:s, s:I, s:I, s:I, s:I}", "path", url + 7,
						     "memory_bytes", (json_int_t)st.memory_bytes,
						     "memory_written_bytes",
						     (json_int_t)st.memory_written,
						     "state_bytes", (json_int_t)st.state_bytes,
						     "paused_ns", (json_int_t)st.paused_ns));
}

static void stop_migrated(void *opaque)
{
	vm__request_stop(opaque, VM_STOP_MIGRATED, 0);
}

/* One vm.send-migration: its deferred request, answered when the migration ends. */
struct send_request {
	struct control *c;
	struct api_deferred *d;
};

/* migration_done_fn: the deferred vm.send-migration answered, on the migration's thread. */
static void migration_done(void *opaque, int err, const struct migrate_stats *st,
			   const struct err *e)
{
	struct send_request *req = opaque;
	struct control *c = req->c;
	struct api_deferred *d = req->d;
	struct api_answer out = { 0 };
	struct migration_status ms;

	free(req);
	migration__status(c->migration, &ms);
	if (err == -EBUSY)
		api_answer__error(&out, 409, "vm.send-migration: %s", e->msg);
	else if (err == -EINPROGRESS)
		api_answer__error(&out, 500, "vm.send-migration: %s", e->msg);
	else if (err)
		api_answer__error(&out, 500, "vm.send-migration: %s; the guest runs on here", e->msg);
	if (err) {
		api_deferred__answer(d, &out);
		return;
	}
	fprintf(stderr, "rtvmm: migrated to %s: %u rounds, %llu pages, %llu bytes, downtime %.3f s, "
		"total %.3f s, KVM's dirty %s\n", ms.url, st->rounds,
		(unsigned long long)st->pages_sent, (unsigned long long)st->bytes_sent,
		(double)st->downtime_ns / 1e9, (double)st->total_ns / 1e9, st->dirty_log);
	api_answer__json(&out, 200, json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I}",
					      "destination_url", ms.url, "rounds", (int)st->rounds,
					      "pages_sent", (json_int_t)st->pages_sent,
					      "zero_bytes", (json_int_t)st->zero_bytes,
					      "bytes_sent", (json_int_t)st->bytes_sent,
					      "last_dirty_pages", (json_int_t)st->last_dirty_pages,
					      "bandwidth_bps", (json_int_t)st->bandwidth_bps,
					      "downtime_ns", (json_int_t)st->downtime_ns,
					      "total_ns", (json_int_t)st->total_ns,
					      "dirty_log", st->dirty_log,
					      "ring_full_exits", (json_int_t)st->ring_full_exits));
	out.after = stop_migrated;
	out.after_opaque = c->cfg.vm;
	api_deferred__answer(d, &out);
}

/*
 * vm.send-migration, as cloud-hypervisor's: {"destination_url": "tcp:HOST:PORT"}, with
 * rtvmm's "downtime_ms" (default 300) and "max_rounds" (default 30). Answers once the
 * destination runs the guest (200 with the figures), and then this VM stops (exit 0); on a
 * failure the guest runs on here and the answer says why. The API serves other calls
 * meanwhile (vm.migration, vm.migration-cancel, vm.info).
 */
static void h_send_migration(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;
	const char *url = json_string_value(json_object_get(body, "destination_url"));
	json_t *dt = json_object_get(body, "downtime_ms"), *mr = json_object_get(body, "max_rounds");
	struct migrate_params p = { .downtime_ms = 300, .max_rounds = 30 };
	struct send_request *req;
	struct err e = { 0 };
	int err;

	if (!url) {
		api_answer__error(out, 400, "vm.send-migration: \"destination_url\" must be a string "
				  "\"tcp:HOST:PORT\"");
		return;
	}
	if ((dt && (!json_is_integer(dt) || json_integer_value(dt) < 1 ||
		    json_integer_value(dt) > 60000)) ||
	    (mr && (!json_is_integer(mr) || json_integer_value(mr) < 1 ||
		    json_integer_value(mr) > 1000))) {
		api_answer__error(out, 400, "vm.send-migration: \"downtime_ms\" must be 1..60000 and "
				  "\"max_rounds\" 1..1000");
		return;
	}
	if (dt)
		p.downtime_ms = (unsigned)json_integer_value(dt);
	if (mr)
		p.max_rounds = (unsigned)json_integer_value(mr);
	req = malloc(sizeof(*req));
	if (!req) {
		api_answer__error(out, 500, "vm.send-migration: out of memory");
		return;
	}
	/* Deferred first: the worker may finish before this returns. */
	*req = (struct send_request){ .c = c, .d = api_answer__defer(out) };
	err = migration__start_send(c->migration, c->cfg.vm, url, &p, migration_done, req, &e);
	if (err) {
		struct api_answer now = { 0 };

		api_answer__error(&now, err == -EBUSY ? 409 : 400, "vm.send-migration: %s", e.msg);
		api_deferred__answer(req->d, &now);
		free(req);
	}
}

/* vm.migration: the migration under way or the last one. */
static void h_migration(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;
	struct migration_status ms;

	(void)body;
	migration__status(c->migration, &ms);
	api_answer__json(out, 200, json_pack("{s:s, s:s, s:I, s:s}", "state", ms.state,
					     "destination_url", ms.url, "elapsed_ns",
					     (json_int_t)ms.elapsed_ns, "error", ms.error));
}

/* vm.migration-cancel: the migration under way gives up before its switch-over; 409 when none. */
static void h_migration_cancel(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;

	(void)body;
	if (!migration__cancel(c->migration))
		api_answer__error(out, 409, "vm.migration-cancel: no migration is under way");
}

static void stop_poweroff(void *opaque)
{
	vm__request_stop(opaque, VM_STOP_POWEROFF, 0);
}

static void stop_reboot(void *opaque)
{
	vm__request_stop(opaque, VM_STOP_REBOOT, 0);
}

/* Answers 204 now and stops the VM with `stop` once the answer went out. */
static void stop_after(struct control *c, const char *what, void (*stop)(void *),
		       struct api_answer *out)
{
	if (vm__state(c->cfg.vm) == VM_STATE_SHUTDOWN) {
		api_answer__error(out, 409, "%s: the VM is already shutting down", what);
		return;
	}
	api_answer__json(out, 204, NULL);
	out->after = stop;
	out->after_opaque = c->cfg.vm;
}

static void h_shutdown(void *opaque, const json_t *body, struct api_answer *out)
{
	(void)body;
	stop_after(opaque, "vm.shutdown", stop_poweroff, out);
}

static void h_reboot(void *opaque, const json_t *body, struct api_answer *out)
{
	(void)body;
	if (!migration_holds(opaque, "vm.reboot", out))
		stop_after(opaque, "vm.reboot", stop_reboot, out);
}

static void h_vmm_shutdown(void *opaque, const json_t *body, struct api_answer *out)
{
	(void)body;
	stop_after(opaque, "vmm.shutdown", stop_poweroff, out);
}

/* ---- rtvmm's extensions ---- */

static const char *policy_name(int policy)
{
	switch (policy) {
	case SCHED_FIFO:
		return "fifo";
	case SCHED_RR:
		return "rr";
	case SCHED_OTHER:
		return "other";
	case SCHED_BATCH:
		return "batch";
	case SCHED_IDLE:
		return "idle";
	}
	return "?";
}

/* A thread's planned placement matches what the kernel says (cpus when pinned, policy, priority). */
static bool sched_as_planned(const struct plan_sched *s, const struct rt_thread *t)
{
	struct rt_sched want = { .cpus = s->cpus, .policy = s->policy, .priority = s->priority };

	return rt__matches(t, &want);
}

/* One row of vm.placement: a thread as the kernel sees it now. */
static json_t *thread_json(struct control *c, const struct rt_thread *t)
{
	struct vm *vm = c->cfg.vm;
	char cpus[256];
	json_t *row;
	unsigned i;

	row = json_pack("{s:i, s:s, s:s, s:s, s:i, s:i, s:i}", "tid", (int)t->tid, "name", t->name,
			"cpus", cpus__format(&t->cpus, cpus, sizeof(cpus)), "policy",
			policy_name(t->policy), "priority", t->priority, "last_cpu", t->last_cpu,
			"node", t->node);
	/* This thread serves the API: "role" api, placed as the plan's emulator threads. */
	if (t->tid == gettid()) {
		json_object_set_new(row, "role", json_string("api"));
		if (c->cfg.plan)
			json_object_set_new(row, "as_planned",
					    json_boolean(sched_as_planned(&c->cfg.plan->emulator, t)));
	}
	if (!c->cfg.plan)
		return row;
	for (i = 0; i < vm->nr_vcpus && i < c->cfg.plan->nr_vcpus; i++)
		if (__atomic_load_n(&vm->vcpus[i].tid, __ATOMIC_RELAXED) == t->tid)
			json_object_set_new(row, "as_planned",
					    json_boolean(sched_as_planned(&c->cfg.plan->vcpus[i], t)));
	return row;
}

/* Guest RAM: its size, page size and the nodes its pages are on now (move_pages). */
static json_t *memory_json(const struct vm *vm)
{
	struct numa_mem ram = { .fd = vm->mem.fd, .base = vm->mem.base, .size = vm->mem.size,
				.page_size = vm->mem.page_size };
	json_t *nodes = json_object(), *mem;
	struct numa_placement p;
	int node = -1, nr_nodes = 0;
	unsigned n;

	mem = json_pack("{s:I, s:I}", "size_mib", (json_int_t)(vm->mem.size >> 20), "page_size",
			(json_int_t)vm->mem.page_size);
	if (numa_mem__placement(&ram, &p) < 0) {
		json_decref(nodes);
		json_object_set_new(mem, "node", json_integer(-1));
		return mem;
	}
	for (n = 0; n < p.nr_nodes && n < sizeof(p.pages_per_node) / sizeof(p.pages_per_node[0]); n++) {
		char key[12];

		if (!p.pages_per_node[n])
			continue;
		snprintf(key, sizeof(key), "%u", n);
		json_object_set_new(nodes, key, json_integer((json_int_t)p.pages_per_node[n]));
		node = (int)n;
		nr_nodes++;
	}
	/* "node": the one node holding every touched page, -1 when they are spread or none is. */
	json_object_set_new(mem, "node", json_integer(nr_nodes == 1 ? node : -1));
	json_object_set_new(mem, "pages_per_node", nodes);
	json_object_set_new(mem, "pages_not_touched", json_integer((json_int_t)p.pages_unknown));
	return mem;
}

static void h_placement(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;
	json_t *threads = json_array();
	struct dirent *d;
	DIR *dir;

	(void)body;
	dir = opendir("/proc/self/task");
	if (!dir) {
		json_decref(threads);
		api_answer__error(out, 500, "vm.placement: /proc/self/task: %s", strerror(errno));
		return;
	}
	while ((d = readdir(dir))) {
		struct rt_thread t;

		if (d->d_name[0] != '.' && rt__read((pid_t)atoi(d->d_name), &t) == 0)
			json_array_append_new(threads, thread_json(c, &t));
	}
	closedir(dir);
	api_answer__json(out, 200, json_pack("{s:b, s:o, s:o, s:o}", "planned", c->cfg.plan != NULL,
					     "threads", threads, "memory", memory_json(c->cfg.vm),
					     "kvm", kvm_knobs_json(c->cfg.vm)));
}

static void h_exits(void *opaque, const json_t *body, struct api_answer *out)
{
	struct control *c = opaque;
	struct vm *vm = c->cfg.vm;
	json_t *vcpus = json_array();
	unsigned i, r;

	(void)body;
	for (i = 0; i < vm->nr_vcpus; i++) {
		const struct exit_ctx *x = &vm->vcpus[i].exits;
		json_t *by = json_object();
		uint64_t total = 0;

		for (r = 0; r < sizeof(x->count) / sizeof(x->count[0]); r++) {
			uint64_t n = __atomic_load_n(&x->count[r], __ATOMIC_RELAXED);

			if (!n)
				continue;
			total += n;
			json_object_set_new(by, r == 63 ? "other" : exit__name(r), json_integer((json_int_t)n));
		}
		json_array_append_new(vcpus, json_pack("{s:i, s:i, s:I, s:I, s:o}", "index", (int)i,
						       "tid", (int)__atomic_load_n(&vm->vcpus[i].tid,
										   __ATOMIC_RELAXED),
						       "total", (json_int_t)total, "emulated",
						       (json_int_t)__atomic_load_n(&x->emulated,
										   __ATOMIC_RELAXED),
						       "by_reason", by));
	}
	api_answer__json(out, 200, json_pack("{s:o}", "vcpus", vcpus));
}

static const struct api_route routes[] = {
	{ "GET", "/api/v1/vmm.ping", h_ping },
	{ "GET", "/api/v1/vm.info", h_info },
	{ "GET", "/api/v1/vm.counters", h_counters },
	{ "PUT", "/api/v1/vm.pause", h_pause },
	{ "PUT", "/api/v1/vm.resume", h_resume },
	{ "PUT", "/api/v1/vm.power-button", h_power_button },
	{ "PUT", "/api/v1/vm.shutdown", h_shutdown },
	{ "PUT", "/api/v1/vm.reboot", h_reboot },
	{ "PUT", "/api/v1/vm.snapshot", h_snapshot },
	{ "PUT", "/api/v1/vm.send-migration", h_send_migration },
	{ "GET", "/api/v1/vm.migration", h_migration },
	{ "PUT", "/api/v1/vm.migration-cancel", h_migration_cancel },
	{ "PUT", "/api/v1/vmm.shutdown", h_vmm_shutdown },
	{ "GET", "/api/v1/vm.placement", h_placement },
	{ "GET", "/api/v1/vm.exits", h_exits },
};

const struct api_route *control__routes(unsigned *nr)
{
	*nr = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

int control__start(struct control **out, const struct control_config *cfg, struct err *e)
{
	struct control *c = calloc(1, sizeof(*c));
	struct api_server_config sc = {
		.socket_path = cfg->socket_path, .routes = routes,
		.nr_routes = sizeof(routes) / sizeof(routes[0]), .owner = cfg->owner,
		.group = cfg->group,
	};
	unsigned i;
	int err;

	if (!c)
		return err__set(e, -ENOMEM, "API socket %s: out of memory", cfg->socket_path);
	c->cfg = *cfg;
	c->nic_stats = calloc(cfg->cfg->nr_nics + 1, sizeof(*c->nic_stats));
	if (!c->nic_stats) {
		free(c);
		return err__set(e, -ENOMEM, "API socket %s: out of memory", cfg->socket_path);
	}
	for (i = 0; cfg->nic_stats && i < cfg->cfg->nr_nics; i++)
		c->nic_stats[i] = cfg->nic_stats[i];
	c->cfg.nic_stats = c->nic_stats;
	sc.opaque = c;
	/* Before the API answers anything, and before the sandbox: its thread confines itself. */
	err = migration__start_worker(&c->migration);
	if (err) {
		free(c->nic_stats);
		free(c);
		return err__set(e, err, "migration thread: %s", strerror(-err));
	}
	err = api_server__start(&c->server, &sc, e);
	if (err) {
		migration__stop_worker(c->migration);
		free(c->nic_stats);
		free(c);
		return err;
	}
	*out = c;
	return 0;
}

void control__stop(struct control *c)
{
	if (!c)
		return;
	/* A migration under way ends (cancelled) and answers while the API still serves; the
	 * worker, idle and refusing new ones, goes after the API (whose calls look at it). */
	migration__quit(c->migration);
	api_server__stop(c->server);
	migration__stop_worker(c->migration);
	free(c->nic_stats);
	free(c);
}
