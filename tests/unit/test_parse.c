/*
 * Host-plan parser: the shipped examples load, every key lands in the plan,
 * and every class of bad input fails with -EINVAL and a message naming the
 * file, the line and the key. Plans are written to a temporary directory
 * from the strings below (line numbers are counted in the comments).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/cpus.h"
#include "config/parse.h"
#include "config/plan.h"

static char tmpdir[64];
static char plan_path[128];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rtvmm-test-parse-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(plan_path, sizeof(plan_path), "%s/plan.yaml", tmpdir);
	return 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	unlink(plan_path);
	rmdir(tmpdir);
	return 0;
}

static void write_plan(const char *yaml)
{
	FILE *f = fopen(plan_path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(yaml, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void load_ok(const char *yaml, struct plan *p)
{
	struct err e = { 0 };
	int rc;

	write_plan(yaml);
	rc = plan__load(p, plan_path, &e);
	if (rc)
		print_error("plan__load: %d: %s\n", rc, e.msg);
	assert_int_equal(rc, 0);
}

/*
 * Loading `yaml` fails with -EINVAL and a message "PATH:LINE: KEY: ..."
 * containing `fragment` (if not NULL); the plan holds nothing afterwards.
 */
static void expect_error(const char *yaml, unsigned line, const char *key, const char *fragment)
{
	struct plan p;
	struct err e = { 0 };
	char want[256];
	int rc;

	write_plan(yaml);
	rc = plan__load(&p, plan_path, &e);
	if (key && *key)
		snprintf(want, sizeof(want), "%s:%u: %s: ", plan_path, line, key);
	else
		snprintf(want, sizeof(want), "%s:%u: ", plan_path, line);
	if (rc != -EINVAL || strncmp(e.msg, want, strlen(want)) ||
	    (fragment && !strstr(e.msg, fragment))) {
		print_error("rc %d, message: %s\nwanted -EINVAL and: %s ... %s\n", rc, e.msg, want,
			    fragment ? fragment : "");
		fail();
	}
	assert_int_equal(e.code, -EINVAL);
	assert_null(p.vms);
	assert_int_equal(p.nr_vms, 0);
}

static unsigned cpus_of(const cpu_set_t *set, const char *want)
{
	cpu_set_t w;

	assert_int_equal(cpus__parse(want, &w), 0);
	return CPU_EQUAL(&w, set);
}

/* Lines 1-3 of many cases: a VM that still lacks memory and vcpus. */
#define VM_HEAD "vms:\n  - name: vnf1\n    kernel: bzImage\n"

/* ---- the shipped examples ---------------------------------------------------------------- */

/* The examples directory, from this file's path at compile time or from the cwd upwards. */
static const char *example(const char *name)
{
	static char path[PATH_MAX];
	static const char *const roots[] = { "", "..", "../..", "../../.." };
	const char *src = __FILE__, *tail = strstr(src, "tests/unit/test_parse.c");
	unsigned i;

	if (tail) {
		snprintf(path, sizeof(path), "%.*sexamples/%s", (int)(tail - src), src, name);
		if (!access(path, R_OK))
			return path;
	}
	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		snprintf(path, sizeof(path), "%s%sexamples/%s", roots[i], *roots[i] ? "/" : "", name);
		if (!access(path, R_OK))
			return path;
	}
	print_error("cannot find examples/%s from %s\n", name, src);
	fail();
	return NULL;
}

static void test_parse_example_small_vm(void **state)
{
	struct err e = { 0 };
	const struct plan_vm *vm;
	const char *path = example("small-vm.yaml");
	struct plan p;
	int rc;

	(void)state;
	rc = plan__load(&p, path, &e);
	if (rc)
		print_error("%s\n", e.msg);
	assert_int_equal(rc, 0);
	assert_int_equal(p.nr_vms, 1);
	assert_true(p.host.housekeeping_set);
	assert_true(cpus_of(&p.host.housekeeping, "0"));
	assert_false(p.host.dataplane.present);
	vm = &p.vms[0];
	assert_string_equal(vm->name, "small");
	assert_non_null(strstr(vm->kernel, "examples/../build/bench/guest/rtvmm-guest.elf"));
	assert_int_equal(vm->memory.size, 64ULL << 20);
	assert_int_equal(vm->memory.page_size, PAGE_2M);
	assert_int_equal(vm->memory.node, 0);
	assert_true(vm->memory.prefault && vm->memory.mlock && vm->memory.allow_fallback);
	assert_int_equal(vm->nr_vcpus, 1);
	assert_int_equal(vm->vcpus[0].policy, RT_POLICY_FIFO);
	assert_int_equal(vm->vcpus[0].priority, 50);
	assert_true(cpus_of(&vm->vcpus[0].cpus, "1"));
	assert_true(cpus_of(&vm->emulator.cpus, "0"));
	assert_int_equal(vm->nr_nics, 0);
	plan__free(&p);
}

static void test_parse_example_telco_host(void **state)
{
	struct err e = { 0 };
	const struct plan_vm *vm;
	const char *path = example("telco-host.yaml");
	struct plan p;
	unsigned i;
	int rc;

	(void)state;
	rc = plan__load(&p, path, &e);
	if (rc)
		print_error("%s\n", e.msg);
	assert_int_equal(rc, 0);
	assert_int_equal(p.nr_vms, 2);
	assert_true(cpus_of(&p.host.housekeeping, "0,8,16,24"));
	assert_true(p.host.dataplane.present);
	assert_true(cpus_of(&p.host.dataplane.cores, "1-2"));
	assert_int_equal(p.host.dataplane.main_core, 0);
	assert_int_equal(p.host.dataplane.node, 0);
	assert_string_equal(p.host.dataplane.extra_eal, "--log-level=5");

	vm = plan__find_vm(&p, "vnf1");
	assert_non_null(vm);
	assert_int_equal(vm->memory.size, 4ULL << 30);
	assert_int_equal(vm->memory.page_size, PAGE_1G);
	assert_int_equal(vm->memory.node, 0);
	assert_true(vm->memory.strict);
	assert_int_equal(vm->nr_vcpus, 4);
	for (i = 0; i < 4; i++) {
		char cpu[4];

		snprintf(cpu, sizeof(cpu), "%u", 3 + i);
		assert_true(cpus_of(&vm->vcpus[i].cpus, cpu));
		assert_int_equal(vm->vcpus[i].policy, RT_POLICY_FIFO);
		assert_int_equal(vm->vcpus[i].priority, 50);
	}
	assert_int_equal(vm->disable_exits, PLAN_EXIT_HLT | PLAN_EXIT_PAUSE);
	assert_false(vm->halt_poll_set);
	assert_int_equal(vm->nr_nics, 2);
	assert_int_equal(vm->nics[0].queues, 2);
	assert_int_equal(vm->nr_disks, 2);
	assert_int_equal(vm->disks[0].kind, PLAN_DISK_LOCAL);
	assert_string_equal(vm->disks[0].serial, "VNF1-ROOT");
	assert_true(cpus_of(&vm->disks[0].io.cpus, "0,16"));
	assert_int_equal(vm->disks[1].kind, PLAN_DISK_VHOST_USER);
	assert_true(vm->disks[1].readonly);

	vm = plan__find_vm(&p, "vnf2");
	assert_non_null(vm);
	assert_int_equal(vm->memory.page_size, PAGE_2M);
	assert_int_equal(vm->memory.node, 1);
	assert_int_equal(vm->nr_vcpus, 3);
	assert_int_equal(vm->vcpus[0].policy, RT_POLICY_OTHER);
	assert_true(cpus_of(&vm->vcpus[0].cpus, "9,25"));
	assert_int_equal(vm->vcpus[2].policy, RT_POLICY_FIFO);
	assert_int_equal(vm->vcpus[2].priority, 40);
	assert_int_equal(vm->nr_nics, 2);
	assert_int_equal(vm->nics[1].queues, 1);
	assert_false(plan__find_vm(&p, "vnf3"));
	plan__free(&p);
}

/* ---- what lands in the plan -------------------------------------------------------------- */

static void test_parse_full_vm_fills_every_field(void **state)
{
	static const char yaml[] =
		"host:\n"                                          /* 1 */
		"  housekeeping_cpus: 0\n"                         /* 2 */
		"  dataplane:\n"                                   /* 3 */
		"    cores: \"2-3\"\n"                             /* 4 */
		"    no_huge: yes\n"                               /* 5 */
		"vms:\n"                                           /* 6 */
		"  - name: vnf1\n"                                 /* 7 */
		"    kernel: img/bzImage\n"                        /* 8 */
		"    initrd: /abs/initrd\n"                        /* 9 */
		"    cmdline: \"console=ttyS0 quiet\"\n"           /* 10 */
		"    memory:\n"                                    /* 11 */
		"      size: 1GiB\n"                               /* 12 */
		"      page_size: 2m\n"                            /* 13 */
		"      numa_node: 0\n"                             /* 14 */
		"      strict: on\n"                               /* 15 */
		"      prefault: false\n"                          /* 16 */
		"      mlock: True\n"                              /* 17 */
		"      fallback_4k: true\n"                        /* 18 */
		"    vcpus:\n"                                     /* 19 */
		"      count: 2\n"                                 /* 20 */
		"      policy: RR\n"                               /* 21 */
		"      priority: 10\n"                             /* 22 */
		"      pin:\n"                                     /* 23 */
		"        - 2\n"                                    /* 24 */
		"        - \"3,5\"\n"                              /* 25 */
		"    emulator_cpus: \"0\"\n"                       /* 26 */
		"    nics:\n"                                      /* 27 */
		"      - name: net0\n"                             /* 28 */
		"        socket: /run/rtvmm/vnf1-net0.sock\n"      /* 29 */
		"        mac: \"52:54:00:AB:cd:ef\"\n"             /* 30 */
		"        queues: 4\n"                              /* 31 */
		"        mode: server\n"                           /* 32 */
		"      - name: net1\n"                             /* 33 */
		"        socket: net1.sock\n";                     /* 34 */
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	const struct plan_vm *vm;
	char want[256];
	struct plan p;

	(void)state;
	load_ok(yaml, &p);
	assert_string_equal(p.file, plan_path);
	assert_true(cpus_of(&p.host.housekeeping, "0"));
	assert_int_equal(p.host.loc.line, 2);
	assert_string_equal(p.host.loc.key, "host.housekeeping_cpus");
	assert_true(p.host.dataplane.present);
	assert_true(p.host.dataplane.no_huge);
	assert_int_equal(p.host.dataplane.main_core, -1);
	assert_int_equal(p.host.dataplane.node, -1);
	assert_int_equal(p.host.dataplane.loc.line, 4);

	assert_int_equal(p.nr_vms, 1);
	vm = &p.vms[0];
	assert_int_equal(vm->loc.line, 7);
	assert_string_equal(vm->loc.key, "vms[0]");
	snprintf(want, sizeof(want), "%s/img/bzImage", tmpdir);
	assert_string_equal(vm->kernel, want);
	assert_string_equal(vm->initrd, "/abs/initrd");
	assert_string_equal(vm->cmdline, "console=ttyS0 quiet");
	assert_int_equal(vm->memory.size, 1ULL << 30);
	assert_int_equal(vm->memory.page_size, PAGE_2M);
	assert_int_equal(vm->memory.node, 0);
	assert_true(vm->memory.strict);
	assert_false(vm->memory.prefault);
	assert_true(vm->memory.mlock);
	assert_true(vm->memory.allow_fallback);
	assert_int_equal(vm->memory.loc.line, 11);
	assert_string_equal(vm->memory.loc.key, "vms[0].memory");

	assert_int_equal(vm->nr_vcpus, 2);
	assert_int_equal(vm->vcpus[1].policy, RT_POLICY_RR);
	assert_int_equal(vm->vcpus[1].priority, 10);
	assert_true(cpus_of(&vm->vcpus[0].cpus, "2"));
	assert_true(cpus_of(&vm->vcpus[1].cpus, "3,5"));
	assert_int_equal(vm->vcpus[1].loc.line, 25);
	assert_string_equal(vm->vcpus[1].loc.key, "vms[0].vcpus.pin[1]");
	assert_true(cpus_of(&vm->emulator.cpus, "0"));
	assert_int_equal(vm->emulator.policy, RT_POLICY_OTHER);
	assert_int_equal(vm->emulator.loc.line, 26);

	assert_int_equal(vm->nr_nics, 2);
	assert_string_equal(vm->nics[0].name, "net0");
	assert_string_equal(vm->nics[0].socket, "/run/rtvmm/vnf1-net0.sock");
	assert_true(vm->nics[0].mac_set);
	assert_memory_equal(vm->nics[0].mac, mac, 6);
	assert_int_equal(vm->nics[0].queues, 4);
	assert_int_equal(vm->nics[0].mode, PLAN_NIC_SERVER);
	assert_int_equal(vm->nics[0].loc.line, 28);
	assert_string_equal(vm->nics[0].loc.key, "vms[0].nics[0]");
	snprintf(want, sizeof(want), "%s/net1.sock", tmpdir);
	assert_string_equal(vm->nics[1].socket, want);
	assert_false(vm->nics[1].mac_set);
	assert_int_equal(vm->nics[1].queues, 1);
	assert_int_equal(vm->nics[1].mode, PLAN_NIC_CLIENT);
	plan__free(&p);
	assert_null(p.vms);
	assert_int_equal(p.nr_vms, 0);
}

static void test_parse_defaults_for_a_minimal_vm(void **state)
{
	char want[256];
	struct plan p;

	(void)state;
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 2\n", &p);
	assert_false(p.host.housekeeping_set);
	assert_false(p.host.dataplane.present);
	assert_int_equal(p.vms[0].memory.size, 64ULL << 20);
	assert_int_equal(p.vms[0].memory.page_size, PAGE_4K);
	assert_int_equal(p.vms[0].memory.node, -1);
	assert_false(p.vms[0].memory.prefault);
	assert_false(p.vms[0].memory.mlock);
	assert_false(p.vms[0].memory.strict);
	assert_false(p.vms[0].memory.allow_fallback);
	assert_int_equal(p.vms[0].nr_vcpus, 2);
	assert_int_equal(CPU_COUNT(&p.vms[0].vcpus[1].cpus), 0);
	assert_int_equal(p.vms[0].vcpus[1].policy, RT_POLICY_OTHER);
	assert_int_equal(p.vms[0].vcpus[1].loc.line, 5);
	assert_string_equal(p.vms[0].vcpus[1].loc.key, "vms[0].vcpus");
	assert_int_equal(CPU_COUNT(&p.vms[0].emulator.cpus), 0);
	assert_int_equal(p.vms[0].emulator.loc.line, 0);
	assert_string_equal(p.vms[0].initrd, "");
	assert_string_equal(p.vms[0].cmdline, "");
	assert_int_equal(p.vms[0].nr_nics, 0);
	assert_int_equal(p.vms[0].shutdown_grace_s, PLAN_DEFAULT_SHUTDOWN_GRACE_S);
	snprintf(want, sizeof(want), "%s/bzImage", tmpdir);
	assert_string_equal(p.vms[0].kernel, want);
	plan__free(&p);
}

/* shutdown_grace_s: 30 s unless given; 0 (SIGTERM stops at once) up to an hour. */
static void test_parse_shutdown_grace(void **state)
{
	struct plan p;

	(void)state;
	assert_int_equal(PLAN_DEFAULT_SHUTDOWN_GRACE_S, 30);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    shutdown_grace_s: 0\n", &p);
	assert_int_equal(p.vms[0].shutdown_grace_s, 0);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    shutdown_grace_s: 3600\n", &p);
	assert_int_equal(p.vms[0].shutdown_grace_s, 3600);
	plan__free(&p);
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    shutdown_grace_s: 3601\n", 6,
		     "vms[0].shutdown_grace_s", "out of range 0..3600");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    shutdown_grace_s: -1\n", 6,
		     "vms[0].shutdown_grace_s", NULL);
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    shutdown_grace_s: soon\n", 6,
		     "vms[0].shutdown_grace_s", NULL);
}

/* on_reboot: restart unless given (QEMU's and cloud-hypervisor's default), or exit; else an error. */
static void test_parse_on_reboot(void **state)
{
	struct plan p;

	(void)state;
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n", &p);
	assert_int_equal(p.vms[0].on_reboot, PLAN_ON_REBOOT_RESTART);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    on_reboot: exit\n", &p);
	assert_int_equal(p.vms[0].on_reboot, PLAN_ON_REBOOT_EXIT);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    on_reboot: restart\n", &p);
	assert_int_equal(p.vms[0].on_reboot, PLAN_ON_REBOOT_RESTART);
	plan__free(&p);
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    on_reboot: destroy\n", 6,
		     "vms[0].on_reboot", "expected one of: restart, exit (value 'destroy')");
}

/*
 * disable_exits: none unless given; a list or one comma-separated value (as --disable-exits
 * gives it), names in any case, each once. halt_poll_ns: KVM's default unless given, 0 a value.
 */
static void test_parse_disable_exits_and_halt_poll(void **state)
{
	const struct plan_arg args[] = {
		{ "--kernel", "kernel", "/boot/vmlinuz" },
		{ "--memory", "memory", "64M" },
		{ "--vcpus", "vcpus", "1" },
		{ "--disable-exits", "disable_exits", "hlt,cstate" },
		{ "--halt-poll-ns", "halt_poll_ns", "0" },
	};
	struct err e = { 0 };
	struct plan p;
	char names[64];

	(void)state;
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n", &p);
	assert_int_equal(p.vms[0].disable_exits, 0);
	assert_false(p.vms[0].halt_poll_set);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disable_exits: [hlt, PAUSE, mwait, cstate]\n"
		"    halt_poll_ns: 200000\n", &p);
	assert_int_equal(p.vms[0].disable_exits,
			 PLAN_EXIT_HLT | PLAN_EXIT_PAUSE | PLAN_EXIT_MWAIT | PLAN_EXIT_CSTATE);
	assert_int_equal(p.vms[0].disable_exits_loc.line, 6);
	assert_string_equal(p.vms[0].disable_exits_loc.key, "vms[0].disable_exits");
	assert_string_equal(plan_exit__names(p.vms[0].disable_exits, names, sizeof(names)),
			    "hlt, pause, mwait, cstate");
	assert_true(p.vms[0].halt_poll_set);
	assert_int_equal(p.vms[0].halt_poll_ns, 200000);
	assert_int_equal(p.vms[0].halt_poll_loc.line, 7);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disable_exits: pause\n    halt_poll_ns: 0\n",
		&p);
	assert_int_equal(p.vms[0].disable_exits, PLAN_EXIT_PAUSE);
	assert_true(p.vms[0].halt_poll_set);
	assert_int_equal(p.vms[0].halt_poll_ns, 0);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disable_exits: []\n", &p);
	assert_int_equal(p.vms[0].disable_exits, 0);
	plan__free(&p);

	assert_int_equal(plan__from_args(&p, args, 5, &e), 0);
	assert_int_equal(p.vms[0].disable_exits, PLAN_EXIT_HLT | PLAN_EXIT_CSTATE);
	assert_int_equal(p.vms[0].disable_exits_loc.line, 4);   /* the flag's index + 1 */
	assert_true(p.vms[0].halt_poll_set);
	assert_int_equal(p.vms[0].halt_poll_ns, 0);
	plan__free(&p);

	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disable_exits:\n      - hlt\n"
		     "      - idle\n", 8, "vms[0].disable_exits",
		     "'idle': expected hlt, pause, mwait or cstate (a list, or one value with commas: "
		     "hlt,pause) (value 'idle')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disable_exits: [hlt, hlt]\n", 6,
		     "vms[0].disable_exits", "'hlt' listed twice");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disable_exits: {hlt: true}\n", 6,
		     "vms[0].disable_exits", "expected a list of hlt, pause, mwait, cstate, got a mapping");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disable_exits: [[hlt]]\n", 6,
		     "vms[0].disable_exits", "got a list");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    halt_poll_ns: 1000000001\n", 6,
		     "vms[0].halt_poll_ns", "out of range 0..1000000000 (value '1000000001')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    halt_poll_ns: -5\n", 6,
		     "vms[0].halt_poll_ns", "out of range");
}

/* dirty_ring: KVM's ring where it has one unless given; 0 its bitmap; a power of two 1024..65536. */
static void test_parse_dirty_ring(void **state)
{
	const struct plan_arg args[] = {
		{ "--kernel", "kernel", "/boot/vmlinuz" },
		{ "--memory", "memory", "64M" },
		{ "--vcpus", "vcpus", "1" },
		{ "--dirty-ring", "dirty_ring", "1000" },
	};
	struct err e = { 0 };
	struct plan p;

	(void)state;
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n", &p);
	assert_false(p.vms[0].dirty_ring_set);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    dirty_ring: 0\n", &p);
	assert_true(p.vms[0].dirty_ring_set);
	assert_int_equal(p.vms[0].dirty_ring, 0);
	assert_string_equal(p.vms[0].dirty_ring_loc.key, "vms[0].dirty_ring");
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    dirty_ring: 65536\n", &p);
	assert_int_equal(p.vms[0].dirty_ring, 65536);
	assert_int_equal(p.vms[0].dirty_ring_loc.line, 6);
	plan__free(&p);
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    dirty_ring: 3000\n", 6,
		     "vms[0].dirty_ring", "a power of two from 1024 to 65536 entries per vCPU, or 0 "
		     "for its dirty bitmap (value '3000')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    dirty_ring: 512\n", 6,
		     "vms[0].dirty_ring", "a power of two");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    dirty_ring: 131072\n", 6,
		     "vms[0].dirty_ring", "out of range 0..65536");
	assert_int_equal(plan__from_args(&p, args, 4, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--dirty-ring '1000': vm.dirty_ring: KVM's dirty ring takes "
				      "a power of two"));
}

/* api_socket: none unless given; a relative path resolves against the plan's directory. */
static void test_parse_api_socket(void **state)
{
	struct plan p;

	(void)state;
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n", &p);
	assert_string_equal(p.vms[0].api_socket, "");
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    api_socket: /run/rtvmm/vm0.sock\n", &p);
	assert_string_equal(p.vms[0].api_socket, "/run/rtvmm/vm0.sock");
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    api_socket: api.sock\n", &p);
	assert_true(p.vms[0].api_socket[0] == '/');
	assert_non_null(strstr(p.vms[0].api_socket, "/api.sock"));
	plan__free(&p);
}

/* A NIC's stats_socket (its backend rtvmm-dataplane's): a path, in the file and in --net. */
static void test_parse_nic_stats_socket(void **state)
{
	const struct plan_arg args[] = {
		{ "--kernel", "kernel", "/boot/vmlinuz" },
		{ "--memory", "memory", "64M" },
		{ "--vcpus", "vcpus", "1" },
		{ "--net", "nics", "socket=/run/a.sock,stats_socket=/run/dp.sock" },
	};
	char yaml[512], sock[200];
	struct err e = { 0 };
	struct plan p;

	(void)state;
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		"      - {name: net0, socket: /s0, stats_socket: /run/rtvmm/dataplane.sock}\n"
		"      - {name: net1, socket: /s1}\n", &p);
	assert_string_equal(p.vms[0].nics[0].stats_socket, "/run/rtvmm/dataplane.sock");
	assert_string_equal(p.vms[0].nics[1].stats_socket, "");
	plan__free(&p);
	if (plan__from_args(&p, args, 4, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(p.vms[0].nics[0].stats_socket, "/run/dp.sock");
	plan__free(&p);
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, stats_socket: [a]}\n", 7,
		     "vms[0].nics[0].stats_socket", "expected");
	memset(sock, 'a', 108);
	sock[0] = '/';
	sock[108] = '\0';
	snprintf(yaml, sizeof(yaml), VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		 "      - {name: net0, socket: /s0, stats_socket: %s}\n", sock);
	expect_error(yaml, 7, "vms[0].nics[0].stats_socket", "path too long: 108 bytes, at most 107");
}

/* The command line's flags go through the same schema: the same VM as the file would give. */
static void test_flags_make_the_plan_a_file_would(void **state)
{
	const struct plan_arg args[] = {
		{ "--kernel", "kernel", "/boot/vmlinuz" },
		{ "--memory", "memory", "64M" },
		{ "--vcpus", "vcpus", "2" },
		{ "--net", "nics", "socket=/run/a.sock,queues=2,mode=server,queue_size=4096" },
		{ "--net", "nics", "name=up,socket=/run/b.sock,mac=52:54:00:00:00:02" },
		{ "--shutdown-grace", "shutdown_grace_s", "5" },
	};
	struct err e = { 0 };
	struct plan p;

	(void)state;
	assert_int_equal(plan__from_args(&p, args, 6, &e), 0);
	assert_int_equal(p.vms[0].shutdown_grace_s, 5);
	assert_int_equal(p.nr_vms, 1);
	assert_string_equal(p.vms[0].name, "vm");
	assert_string_equal(p.vms[0].kernel, "/boot/vmlinuz");
	assert_int_equal(p.vms[0].memory.size, 64ULL << 20);
	assert_int_equal(p.vms[0].memory.page_size, PAGE_4K);
	assert_int_equal(p.vms[0].memory.node, -1);
	assert_int_equal(p.vms[0].nr_vcpus, 2);
	assert_int_equal(p.vms[0].vcpus[1].policy, RT_POLICY_OTHER);
	assert_int_equal(p.vms[0].nr_nics, 2);
	assert_string_equal(p.vms[0].nics[0].name, "net0");
	assert_string_equal(p.vms[0].nics[0].socket, "/run/a.sock");
	assert_int_equal(p.vms[0].nics[0].queues, 2);
	assert_int_equal(p.vms[0].nics[0].queue_size, 4096);
	assert_int_equal(p.vms[0].nics[1].queue_size, 0);   /* the device's default */
	assert_int_equal(p.vms[0].nics[0].mode, PLAN_NIC_SERVER);
	assert_false(p.vms[0].nics[0].mac_set);
	assert_string_equal(p.vms[0].nics[1].name, "up");
	assert_int_equal(p.vms[0].nics[1].queues, 1);
	assert_int_equal(p.vms[0].nics[1].mode, PLAN_NIC_CLIENT);
	assert_true(p.vms[0].nics[1].mac_set);
	assert_int_equal(p.vms[0].nics[1].mac[5], 2);
	plan__free(&p);
}

/* A flag's bad value is refused by the schema's own rule, naming the flag, its value and the key. */
static void test_flags_errors_name_the_flag(void **state)
{
	static const struct {
		struct plan_arg bad;
		const char *message;
	} cases[] = {
		{ { "--vcpus", "vcpus", "0" }, "--vcpus '0': vm.vcpus: out of range 1..254" },
		{ { "--memory", "memory", "1M" }, "--memory '1M': vm.memory: too small: at least 4M" },
		{ { "--net", "nics", "socket=/x,queues=17" },
		  "--net 'socket=/x,queues=17': vm.nics[0].queues: out of range 1..16" },
		{ { "--net", "nics", "socket=/x,mode=both" },
		  "--net 'socket=/x,mode=both': vm.nics[0].mode: expected one of: client, server" },
		{ { "--net", "nics", "socket=/x,colour=red" },
		  "--net 'socket=/x,colour=red': vm.nics[0].colour: unknown key in NIC" },
		{ { "--shutdown-grace", "shutdown_grace_s", "3601" },
		  "--shutdown-grace '3601': vm.shutdown_grace_s: out of range 0..3600" },
		{ { "--net", "nics", "socket=/x,,mac=52:54:00:00:00:01" },
		  "--net 'socket=/x,,mac=52:54:00:00:00:01': '': expected KEY=VALUE" },
		{ { "--net", "nics", "socket=/x,queue_size=1000" },
		  "--net 'socket=/x,queue_size=1000': vm.nics[0].queue_size: not a power of two (64, "
		  "128, ... 32768: split rings are)" },
		{ { "--net", "nics", "socket=/x,queue_size=65536" },
		  "--net 'socket=/x,queue_size=65536': vm.nics[0].queue_size: out of range 64..32768" },
		{ { "--disable-exits", "disable_exits", "hlt,idle" },
		  "--disable-exits 'hlt,idle': vm.disable_exits: 'idle': expected hlt, pause, mwait or "
		  "cstate" },
		{ { "--disable-exits", "disable_exits", "pause,pause" },
		  "--disable-exits 'pause,pause': vm.disable_exits: 'pause' listed twice" },
		{ { "--halt-poll-ns", "halt_poll_ns", "1000000001" },
		  "--halt-poll-ns '1000000001': vm.halt_poll_ns: out of range 0..1000000000" },
		{ { "--halt-poll-ns", "halt_poll_ns", "50us" },
		  "--halt-poll-ns '50us': vm.halt_poll_ns: expected an integer" },
	};
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct plan_arg args[4] = {
			{ "--kernel", "kernel", "/boot/vmlinuz" },
			{ "--memory", "memory", "64M" },
			{ "--vcpus", "vcpus", "1" },
		};
		struct err e = { 0 };
		struct plan p;
		unsigned j;

		/* The bad flag replaces the good one with its key, or comes last (a NIC). */
		for (j = 0; j < 3 && strcmp(args[j].key, cases[i].bad.key); j++)
			;
		args[j] = cases[i].bad;
		assert_int_equal(plan__from_args(&p, args, j == 3 ? 4 : 3, &e), -EINVAL);
		if (!strstr(e.msg, cases[i].message))
			print_error("case %u: '%s' lacks '%s'\n", i, e.msg, cases[i].message);
		assert_non_null(strstr(e.msg, cases[i].message));
		assert_int_equal(p.nr_vms, 0);
	}
}

static void test_parse_hugepages_prefault_by_default(void **state)
{
	struct plan p;

	(void)state;
	load_ok(VM_HEAD "    memory: {size: 2G, page_size: 1G}\n    vcpus: 1\n", &p);
	assert_int_equal(p.vms[0].memory.page_size, PAGE_1G);
	assert_true(p.vms[0].memory.prefault);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: {size: 64M, page_size: 2MiB, prefault: off}\n    vcpus: 1\n", &p);
	assert_int_equal(p.vms[0].memory.page_size, PAGE_2M);
	assert_false(p.vms[0].memory.prefault);
	plan__free(&p);
}

static void test_parse_emulator_cpus_default_to_housekeeping(void **state)
{
	struct plan p;

	(void)state;
	load_ok("host:\n  housekeeping_cpus: \"0,8\"\n" VM_HEAD "    memory: 64M\n    vcpus: 1\n"
		"  - name: vnf2\n    kernel: bzImage\n    memory: 64M\n    vcpus: 1\n"
		"    emulator_cpus: \"9\"\n", &p);
	assert_true(cpus_of(&p.vms[0].emulator.cpus, "0,8"));
	assert_int_equal(p.vms[0].emulator.loc.line, 2);
	assert_true(cpus_of(&p.vms[1].emulator.cpus, "9"));
	plan__free(&p);
	/* Without a host section nothing is pinned. */
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n", &p);
	assert_int_equal(CPU_COUNT(&p.vms[0].emulator.cpus), 0);
	plan__free(&p);
}

static void test_parse_single_vm_document(void **state)
{
	static const char yaml[] =
		"vm:\n"                                  /* 1 */
		"  name: solo\n"                         /* 2 */
		"  kernel: /boot/vmlinuz\n"              /* 3 */
		"  memory: 256M\n"                       /* 4 */
		"  vcpus: {count: 1, cpus: 1}\n";        /* 5 */
	struct plan p;

	(void)state;
	load_ok(yaml, &p);
	assert_int_equal(p.nr_vms, 1);
	assert_string_equal(p.vms[0].name, "solo");
	assert_string_equal(p.vms[0].loc.key, "vm");
	assert_int_equal(p.vms[0].loc.line, 1);
	assert_true(cpus_of(&p.vms[0].vcpus[0].cpus, "1"));
	assert_string_equal(p.vms[0].vcpus[0].loc.key, "vm.vcpus.cpus");
	assert_non_null(plan__find_vm(&p, "solo"));
	plan__free(&p);

	expect_error("vm:\n  name: solo\n  kernel: k\n  memory: 64M\n  vcpus: 1\n  vcpu: 2\n", 6,
		     "vm.vcpu", "did you mean 'vcpus'?");
	expect_error("vms: []\nvm:\n  name: solo\n", 2, "vm", "not both");
}

static void test_parse_vcpu_list_form(void **state)
{
	static const char yaml[] =
		VM_HEAD                                  /* 1-3 */
		"    memory: 64M\n"                      /* 4 */
		"    vcpus:\n"                           /* 5 */
		"      - cpus: \"0-1\"\n"                /* 6 */
		"      - {cpus: 2, policy: fifo, priority: 99}\n"  /* 7 */
		"      - policy: rr\n"                   /* 8 */
		"        priority: 1\n";                 /* 9 */
	struct plan p;

	(void)state;
	load_ok(yaml, &p);
	assert_int_equal(p.vms[0].nr_vcpus, 3);
	assert_true(cpus_of(&p.vms[0].vcpus[0].cpus, "0-1"));
	assert_int_equal(p.vms[0].vcpus[0].policy, RT_POLICY_OTHER);
	assert_int_equal(p.vms[0].vcpus[1].policy, RT_POLICY_FIFO);
	assert_int_equal(p.vms[0].vcpus[1].priority, 99);
	assert_int_equal(p.vms[0].vcpus[1].loc.line, 7);
	assert_string_equal(p.vms[0].vcpus[1].loc.key, "vms[0].vcpus[1].cpus");
	assert_int_equal(p.vms[0].vcpus[2].policy, RT_POLICY_RR);
	assert_int_equal(CPU_COUNT(&p.vms[0].vcpus[2].cpus), 0);
	assert_string_equal(p.vms[0].vcpus[2].loc.key, "vms[0].vcpus[2]");
	plan__free(&p);

	expect_error(VM_HEAD "    memory: 64M\n    vcpus: []\n", 5, "vms[0].vcpus", "1..254");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      - cpu: 2\n", 6, "vms[0].vcpus[0].cpu",
		     "did you mean 'cpus'?");
}

/* ---- bad input: one test per class ------------------------------------------------------- */

static void test_parse_unknown_key_names_line_and_key(void **state)
{
	(void)state;
	expect_error(VM_HEAD
		     "    memory:\n"                  /* 4 */
		     "      size: 64M\n"              /* 5 */
		     "      pagesize: 2M\n"           /* 6 */
		     "    vcpus: 1\n",
		     6, "vms[0].memory.pagesize", "did you mean 'page_size'?");
	/* Nothing close: the allowed keys are listed instead. */
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    storage: []\n", 6, "vms[0].storage",
		     "(allowed: name, kernel, initrd, cmdline, memory, vcpus, emulator_cpus, nics, disks, "
		     "serial, shutdown_grace_s, api_socket, on_reboot, disable_exits, halt_poll_ns, dirty_ring)");
	expect_error("hosts:\n  housekeeping_cpus: 0\n", 1, "hosts", "did you mean 'host'?");
	expect_error("host:\n  dataplane:\n    cores: 1\n    lcores: 2\n", 4, "host.dataplane.lcores",
		     "allowed: cores, main_core, numa_node, no_huge, eal_args, mac_per_port, policy, "
		     "priority");
}

/* host.dataplane.policy and priority: the poll threads' scheduling, as sched_setscheduler takes it. */
static void test_parse_dataplane_policy_and_priority(void **state)
{
	struct plan p;
	const char *ok = "host:\n  dataplane:\n    cores: 1\n    policy: fifo\n    priority: 50\n";

	(void)state;
	load_ok(ok, &p);
	assert_int_equal(p.host.dataplane.policy, RT_POLICY_FIFO);
	assert_int_equal(p.host.dataplane.priority, 50);
	assert_int_equal(p.host.dataplane.sched_loc.line, 4);
	assert_string_equal(p.host.dataplane.sched_loc.key, "host.dataplane.policy");
	plan__free(&p);
	load_ok("host:\n  dataplane:\n    cores: 1\n", &p);
	assert_int_equal(p.host.dataplane.policy, RT_POLICY_OTHER);
	plan__free(&p);

	expect_error("host:\n  dataplane:\n    cores: 1\n    policy: fifo\n", 4,
		     "host.dataplane.priority", "missing: policy 'fifo' needs a priority 1..99");
	expect_error("host:\n  dataplane:\n    cores: 1\n    policy: rr\n    priority: 100\n", 5,
		     "host.dataplane.priority", "out of range 1..99 for policy 'rr'");
	expect_error("host:\n  dataplane:\n    cores: 1\n    priority: 5\n", 4,
		     "host.dataplane.priority", "policy 'other' takes no priority");
	expect_error("host:\n  dataplane:\n    cores: 1\n    policy: deadline\n", 4,
		     "host.dataplane.policy", "fifo");
}

static void test_parse_wrong_type_names_expected_and_got(void **state)
{
	(void)state;
	expect_error(VM_HEAD "    memory: [64M]\n    vcpus: 1\n", 4, "vms[0].memory", "got a list");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    name2: x\n", 6, "vms[0].name2",
		     "did you mean 'name'?");
	expect_error("vms:\n  - name: {a: 1}\n", 2, "vms[0].name", "expected a single value, got a mapping");
	expect_error("vms:\n  name: vnf1\n", 1, "vms", "expected a list of VMs, got a mapping");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: {count: 1, pin: \"2\"}\n", 5,
		     "vms[0].vcpus.pin", "expected a list of cpu lists");
	expect_error("- a\n- b\n", 1, "", "expected a mapping, got a list");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics: {name: net0}\n", 6,
		     "vms[0].nics", "expected a list of NICs");
}

static void test_parse_bad_scalar_values_name_the_value(void **state)
{
	(void)state;
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: two\n", 5, "vms[0].vcpus",
		     "expected an integer (value 'two')");
	expect_error(VM_HEAD "    memory: 64Q\n    vcpus: 1\n", 4, "vms[0].memory",
		     "expected a size such as 512M, 2G or 1GiB (value '64Q')");
	expect_error(VM_HEAD "    memory: {size: 64M, mlock: maybe}\n    vcpus: 1\n", 4,
		     "vms[0].memory.mlock", "expected true or false");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: {count: 1, policy: deadline, priority: 5}\n", 5,
		     "vms[0].vcpus.policy", "expected one of: other, fifo, rr (value 'deadline')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n      - {name: n0, socket: s, "
		     "mode: listen}\n", 7, "vms[0].nics[0].mode", "expected one of: client, server");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1.5\n", 5, "vms[0].vcpus", "(value '1.5')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    kernel: k2\n", 6, "vms[0].kernel",
		     "duplicate key (first at line 3)");
	expect_error("vms:\n  - name: \"bad name\"\n    kernel: k\n    memory: 64M\n    vcpus: 1\n", 2,
		     "vms[0].name", "invalid name");
}

static void test_parse_missing_required_keys(void **state)
{
	(void)state;
	expect_error("vms:\n  - kernel: k\n    memory: 64M\n    vcpus: 1\n", 2, "vms[0].name",
		     "every VM needs 'name'");
	expect_error("vms:\n  - name: a\n    memory: 64M\n    vcpus: 1\n", 2, "vms[0].kernel",
		     "every VM needs 'kernel'");
	expect_error(VM_HEAD "    vcpus: 1\n", 2, "vms[0].memory", "needs 'memory'");
	expect_error(VM_HEAD "    memory: 64M\n", 2, "vms[0].vcpus", "needs 'vcpus'");
	expect_error(VM_HEAD "    memory:\n      page_size: 2M\n    vcpus: 1\n", 4, "vms[0].memory.size",
		     "needs 'size'");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      policy: fifo\n", 5, "vms[0].vcpus.count",
		     "needs 'count'");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n      - name: net0\n", 7,
		     "vms[0].nics[0].socket", "every NIC needs 'socket'");
	expect_error(VM_HEAD "    memory:\n    vcpus: 1\n", 4, "vms[0].memory", "needs a value");
	expect_error("host:\n  dataplane:\n    numa_node: 0\n", 2, "host.dataplane.cores", "needs 'cores'");
}

static void test_parse_duplicate_vm_name_points_to_first(void **state)
{
	static const char yaml[] =
		"vms:\n"                                           /* 1 */
		"  - name: vnf1\n"                                 /* 2 */
		"    kernel: k\n"                                  /* 3 */
		"    memory: 64M\n"                                /* 4 */
		"    vcpus: 1\n"                                   /* 5 */
		"  - kernel: k\n"                                  /* 6 */
		"    memory: 64M\n"                                /* 7 */
		"    name: vnf1\n"                                 /* 8 */
		"    vcpus: 1\n";                                  /* 9 */

	(void)state;
	expect_error(yaml, 8, "vms[1].name", "duplicate VM name (first defined at line 2, vms[0]) "
		     "(value 'vnf1')");
}

static void test_parse_syntax_error_reports_line(void **state)
{
	(void)state;
	expect_error(VM_HEAD
		     "    memory: 64M\n"                  /* 4 */
		     "   vcpus: 1\n",                     /* 5: bad indentation */
		     5, NULL, "syntax error: ");
	expect_error("vms:\n  - name: [vnf1\n    kernel: k\n", 3, NULL, "syntax error: ");
	expect_error("vms:\n\t- name: vnf1\n", 2, NULL, "syntax error: found character that cannot "
		     "start any token");
	expect_error("vm: *nowhere\n", 1, NULL, "undefined alias");
	expect_error("", 1, NULL, "empty plan");
	expect_error("# only a comment\n", 1, NULL, "empty plan");
	expect_error("vms: []\n---\nvms: []\n", 2, NULL, "a second YAML document");
	expect_error("vms:\n  - name: \"\xff\"\n", 2, NULL, "not valid YAML text");
}

static void test_parse_fifo_priority_out_of_range(void **state)
{
	(void)state;
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      count: 1\n      policy: fifo\n"
		     "      priority: 100\n", 8, "vms[0].vcpus.priority",
		     "out of range 1..99 for policy 'fifo' (value '100')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      count: 1\n      policy: rr\n"
		     "      priority: 0\n", 8, "vms[0].vcpus.priority", "out of range 1..99 for policy 'rr'");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      - {policy: fifo, priority: -5}\n", 6,
		     "vms[0].vcpus[0].priority", "out of range 1..99");
	/* fifo without a priority, and a priority without an RT policy. */
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      count: 1\n      policy: fifo\n", 7,
		     "vms[0].vcpus.priority", "policy 'fifo' needs a priority 1..99");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      count: 1\n      priority: 50\n", 7,
		     "vms[0].vcpus.priority", "policy 'other' takes no priority");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: {count: 1, policy: fifo, priority: "
		     "99999999999999999999}\n", 5, "vms[0].vcpus.priority", "out of range");
}

static void test_parse_vcpu_count_out_of_range(void **state)
{
	(void)state;
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 0\n", 5, "vms[0].vcpus",
		     "out of range 1..254 (value '0')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      count: 255\n", 6, "vms[0].vcpus.count",
		     "out of range 1..254");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: -1\n", 5, "vms[0].vcpus", "out of range");
}

static void test_parse_vcpu_pin_list_length_must_match_count(void **state)
{
	(void)state;
	expect_error(VM_HEAD
		     "    memory: 64M\n"                  /* 4 */
		     "    vcpus:\n"                       /* 5 */
		     "      count: 2\n"                   /* 6 */
		     "      pin: [\"2\"]\n",              /* 7 */
		     7, "vms[0].vcpus.pin", "1 entry for count 2");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      count: 1\n      cpus: 1\n"
		     "      pin: [1]\n", 8, "vms[0].vcpus.pin", "not both");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus:\n      count: 2\n      pin:\n        - 1\n"
		     "        - \"1-\"\n", 9, "vms[0].vcpus.pin[1]", "expected a cpu list");
}

static void test_parse_memory_values_out_of_range(void **state)
{
	(void)state;
	expect_error(VM_HEAD "    memory: {size: 64M, page_size: 3M}\n    vcpus: 1\n", 4,
		     "vms[0].memory.page_size", "expected a page size: 4K, 2M or 1G (value '3M')");
	expect_error(VM_HEAD "    memory: {size: 1536M, page_size: 1G}\n    vcpus: 1\n", 4,
		     "vms[0].memory.size", "not a multiple of the 1G page size");
	expect_error(VM_HEAD "    memory: 1M\n    vcpus: 1\n", 4, "vms[0].memory", "too small");
	expect_error(VM_HEAD "    memory:\n      size: 64M\n      numa_node: -1\n    vcpus: 1\n", 6,
		     "vms[0].memory.numa_node",
		     "out of range 0..1023 (leave the key out for the default) (value '-1')");
	expect_error(VM_HEAD "    memory: 99999999999T\n    vcpus: 1\n", 4, "vms[0].memory",
		     "size too large");
}

static void test_parse_cpu_list_syntax_errors(void **state)
{
	static const char *const bad[] = { "\"1-\"", "x", "\"3-1\"", "\"1,,2\"", "\"-1\"", "\"1 2\"" };
	char yaml[256];
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(yaml, sizeof(yaml), VM_HEAD "    memory: 64M\n    vcpus: 1\n    emulator_cpus: %s\n",
			 bad[i]);
		expect_error(yaml, 6, "vms[0].emulator_cpus", "expected a cpu list");
	}
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    emulator_cpus: 5000\n", 6,
		     "vms[0].emulator_cpus", "cpu number too large");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    emulator_cpus: \"\"\n", 6,
		     "vms[0].emulator_cpus", "empty cpu list");
	expect_error("host:\n  housekeeping_cpus: 0-\n", 2, "host.housekeeping_cpus", "(value '0-')");
}

static void test_parse_nic_errors(void **state)
{
	char yaml[512], sock[200];

	(void)state;
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, mac: \"52:54:00:12:34\"}\n", 7,
		     "vms[0].nics[0].mac", "expected a MAC address");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, mac: \"01:00:5e:00:00:01\"}\n", 7,
		     "vms[0].nics[0].mac", "multicast");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, queues: 0}\n", 7, "vms[0].nics[0].queues",
		     "out of range 1..16 (value '0')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, queues: 17}\n", 7, "vms[0].nics[0].queues",
		     "out of range 1..16");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, queue_size: 3000}\n", 7,
		     "vms[0].nics[0].queue_size", "not a power of two (64, 128, ... 32768: split rings "
		     "are) (value '3000')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, queue_size: 32}\n", 7,
		     "vms[0].nics[0].queue_size", "out of range 64..32768 (value '32')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0}\n"           /* 7 */
		     "      - {name: net0, socket: /s1}\n", 8,       /* 8 */
		     "vms[0].nics[1].name", "duplicate NIC name in this VM (first at line 7, vms[0].nics[0])");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0}\n"           /* 7 */
		     "  - name: vnf2\n    kernel: k\n    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0}\n", 13,      /* 13 */
		     "vms[1].nics[0].socket", "socket already used by vms[0].nics[0] (line 7)");

	/* A path reaches DPDK's --vdev argument list: ',' or '=' would add device arguments. */
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: \"/run/x.sock,queues=8\"}\n", 7,
		     "vms[0].nics[0].socket", "character ',' at offset 11 is not allowed");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: \"/run/a=b\"}\n", 7,
		     "vms[0].nics[0].socket", "character '=' at offset 6");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, backend_user: \"a b\"}\n", 7,
		     "vms[0].nics[0].backend_user", "not a user or group");

	memset(sock, 'a', 108);
	sock[0] = '/';
	sock[108] = '\0';
	snprintf(yaml, sizeof(yaml), VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		 "      - name: net0\n        socket: %s\n", sock);
	expect_error(yaml, 8, "vms[0].nics[0].socket", "path too long: 108 bytes, at most 107");
	sock[107] = '\0';
	snprintf(yaml, sizeof(yaml), VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		 "      - name: net0\n        socket: %s\n", sock);
	{
		struct plan p;

		load_ok(yaml, &p);
		assert_int_equal(strlen(p.vms[0].nics[0].socket), 107);
		plan__free(&p);
	}
}

static void test_parse_duplicate_mac_across_vms_points_to_first(void **state)
{
	(void)state;
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s0, mac: \"52:54:00:00:00:01\"}\n"  /* 7 */
		     "      - {name: net1, socket: /s1}\n"                             /* 8 */
		     "  - name: vnf2\n    kernel: k\n    memory: 64M\n    vcpus: 1\n    nics:\n"
		     "      - {name: net0, socket: /s2, mac: \"52:54:00:00:00:01\"}\n", 14,
		     "vms[1].nics[0].mac", "MAC address already used by vms[0].nics[0] (line 7)");
}

/* Writes `head`, then `fill` up to `len` bytes in all, the last one a newline. */
static void write_big(size_t len, char fill, const char *head)
{
	FILE *f = fopen(plan_path, "w");
	size_t i;

	assert_non_null(f);
	assert_true(fputs(head, f) >= 0);
	for (i = strlen(head); i + 1 < len; i++)
		assert_int_equal(fputc(fill, f), fill);
	assert_int_equal(fputc('\n', f), '\n');
	assert_int_equal(fclose(f), 0);
}

static void test_parse_file_over_16m_is_refused_by_its_size(void **state)
{
	struct err e = { 0 };
	char want[256];
	struct plan p;

	(void)state;
	/* At the limit: a valid plan padded with a comment loads. */
	write_big(PLAN_MAX_BYTES, 'x', "vm: {name: a, kernel: k, memory: 64M, vcpus: 1}\n# ");
	assert_int_equal(plan__load(&p, plan_path, &e), 0);
	plan__free(&p);

	write_big(PLAN_MAX_BYTES + 1, 'x', "vm: {name: a, kernel: k, memory: 64M, vcpus: 1}\n# ");
	assert_int_equal(plan__load(&p, plan_path, &e), -EFBIG);
	snprintf(want, sizeof(want), "%s: too large (%u bytes): a plan file is at most 16 MiB",
		 plan_path, PLAN_MAX_BYTES + 1);
	assert_string_equal(e.msg, want);
	assert_null(p.vms);
}

/* "x:\n" then `depth - 1` nested flow lists on line 2: `depth` levels with the top mapping. */
static void write_nested(unsigned depth)
{
	char yaml[256] = "x:\n  ";
	size_t n = strlen(yaml);
	unsigned i;

	for (i = 0; i + 1 < depth; i++)
		yaml[n++] = '[';
	for (i = 0; i + 1 < depth; i++)
		yaml[n++] = ']';
	yaml[n++] = '\n';
	yaml[n] = '\0';
	write_plan(yaml);
}

static void test_parse_nesting_over_32_levels_is_refused(void **state)
{
	struct err e = { 0 };
	char want[256];
	struct plan p;

	(void)state;
	/* 32 levels get past the limit to the schema, which knows no 'x'. */
	write_nested(PLAN_MAX_DEPTH);
	assert_int_equal(plan__load(&p, plan_path, &e), -EINVAL);
	assert_non_null(strstr(e.msg, ":1: x: unknown key in plan"));

	write_nested(PLAN_MAX_DEPTH + 1);
	assert_int_equal(plan__load(&p, plan_path, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: nested deeper than 32 levels of lists and mappings: "
		 "a plan needs at most 5", plan_path);
	assert_string_equal(e.msg, want);
	assert_null(p.vms);
}

static void test_parse_more_than_64_anchors_are_refused(void **state)
{
	char yaml[2048] = "x:\n", want[256];
	struct err e = { 0 };
	struct plan p;
	size_t n = strlen(yaml);
	unsigned i;

	(void)state;
	for (i = 0; i < PLAN_MAX_ANCHORS; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "  - &a%u %u\n", i, i);
	write_plan(yaml);
	assert_int_equal(plan__load(&p, plan_path, &e), -EINVAL);
	assert_non_null(strstr(e.msg, ":1: x: unknown key in plan"));

	snprintf(yaml + n, sizeof(yaml) - n, "  - &last 1\n");
	write_plan(yaml);
	assert_int_equal(plan__load(&p, plan_path, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s:%u: more than 64 YAML anchors (&NAME): a plan has at "
		 "most 64", plan_path, PLAN_MAX_ANCHORS + 2);
	assert_string_equal(e.msg, want);
}

/* `nr` one-line VMs of 254 vCPUs after "vms:" (VM i on line i + 2). */
static void write_vcpu_heavy(unsigned nr)
{
	FILE *f = fopen(plan_path, "w");
	unsigned i;

	assert_non_null(f);
	assert_true(fputs("vms:\n", f) >= 0);
	for (i = 0; i < nr; i++)
		assert_true(fprintf(f, "  - {name: v%u, kernel: k, memory: 4M, vcpus: 254}\n", i) > 0);
	assert_int_equal(fclose(f), 0);
}

static void test_parse_more_than_65536_vcpus_in_all_are_refused(void **state)
{
	unsigned fit = PLAN_MAX_VCPUS / 254;
	struct err e = { 0 };
	char want[256];
	struct plan p;

	(void)state;
	write_vcpu_heavy(fit);
	assert_int_equal(plan__load(&p, plan_path, &e), 0);
	assert_int_equal(p.nr_vms, fit);
	plan__free(&p);

	write_vcpu_heavy(fit + 1);
	assert_int_equal(plan__load(&p, plan_path, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s:%u: vms[%u].vcpus: %u vCPUs in the plan's VMs up to this "
		 "one: a plan has at most 65536 in all", plan_path, fit + 2, fit, (fit + 1) * 254);
	assert_string_equal(e.msg, want);
	assert_null(p.vms);
}

static void test_parse_host_user_group_and_run_dir(void **state)
{
	struct plan p;

	(void)state;
	load_ok("host:\n  user: rtvmm\n  group: \"65534\"\n  run_dir: /run/vnf\n"
		VM_HEAD "    memory: 64M\n    vcpus: 1\n    nics:\n"
		"      - {name: net0, socket: /run/vnf/n0.sock, backend_user: dpdk}\n", &p);
	assert_string_equal(p.host.user, "rtvmm");
	assert_string_equal(p.host.group, "65534");
	assert_string_equal(p.host.run_dir, "/run/vnf");
	assert_int_equal(p.host.user_loc.line, 2);
	assert_string_equal(p.vms[0].nics[0].backend_user, "dpdk");
	plan__free(&p);

	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n", &p);
	assert_string_equal(p.host.user, "");
	assert_string_equal(p.host.run_dir, "/run/rtvmm");
	assert_null(p.vms[0].nics);
	plan__free(&p);

	expect_error("host:\n  group: rtvmm\n" VM_HEAD "    memory: 64M\n    vcpus: 1\n", 2,
		     "host.group", "a group without host.user");
	expect_error("host:\n  user: \"r;m\"\n" VM_HEAD "    memory: 64M\n    vcpus: 1\n", 2,
		     "host.user", "not a user or group");
	expect_error("host:\n  run_dir: \"/run/a,b\"\n" VM_HEAD "    memory: 64M\n    vcpus: 1\n", 2,
		     "host.run_dir", "character ','");
}

static void test_parse_missing_file_is_enoent(void **state)
{
	struct err e = { 0 };
	struct plan p;

	(void)state;
	assert_int_equal(plan__load(&p, "/nonexistent/rtvmm/plan.yaml", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "/nonexistent/rtvmm/plan.yaml: cannot open"));
	assert_null(p.vms);
}

/* ---- cpu lists and names ----------------------------------------------------------------- */

static void test_plan_cpu_lists_round_trip(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "0", "0" }, { "0-3,8", "0-3,8" }, { "3,2,1", "1-3" }, { " 1 , 4-5 ", "1,4-5" },
		{ "", "" }, { "0-1023", "0-1023" }, { "7-7", "7" },
	};
	static const char *const bad[] = { "a", "1-", "-1", "3-1", "1,", ",1", "1 2", "1;2", "0x1" };
	char buf[64];
	cpu_set_t set;
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(cpus__parse(cases[i].in, &set), 0);
		assert_string_equal(cpus__format(&set, buf, sizeof(buf)), cases[i].out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cpus__parse(bad[i], &set), -EINVAL);
	assert_int_equal(cpus__parse("1024", &set), -ERANGE);
	assert_int_equal(cpus__parse("1-99999999999999999999", &set), -ERANGE);
	assert_int_equal(cpus__parse(NULL, &set), -EINVAL);

	/* A short buffer holds whole items only. */
	assert_int_equal(cpus__parse("0-3,8,10-11", &set), 0);
	assert_string_equal(cpus__format(&set, buf, 8), "0-3,8");
}

static void test_plan_names_and_sizes(void **state)
{
	(void)state;
	assert_string_equal(rt__policy_name(RT_POLICY_FIFO), "fifo");
	assert_string_equal(rt__policy_name(RT_POLICY_RR), "rr");
	assert_string_equal(rt__policy_name(RT_POLICY_OTHER), "other");
	assert_string_equal(page_size__name(PAGE_4K), "4K");
	assert_string_equal(page_size__name(PAGE_2M), "2M");
	assert_string_equal(page_size__name(PAGE_1G), "1G");
	assert_int_equal(page_size__bytes(PAGE_4K), 4096);
	assert_int_equal(page_size__bytes(PAGE_2M), 2ULL << 20);
	assert_int_equal(page_size__bytes(PAGE_1G), 1ULL << 30);
	assert_null(plan__find_vm(NULL, "x"));
	plan__free(NULL);
}


/* ---- disks ---------------------------------------------------------------------------------- */

static void test_parse_disks_fill_every_field_and_default(void **state)
{
	static const char yaml[] =
		"host:\n"                                          /* 1 */
		"  housekeeping_cpus: \"0-1\"\n"                   /* 2 */
		"vm:\n"                                            /* 3 */
		"  name: vnf\n"                                    /* 4 */
		"  kernel: /k\n"                                   /* 5 */
		"  memory: 64M\n"                                  /* 6 */
		"  vcpus: 1\n"                                     /* 7 */
		"  disks:\n"                                       /* 8 */
		"    - path: root.img\n"                           /* 9 */
		"      serial: ROOT-0001\n"                        /* 10 */
		"      queues: 4\n"                                /* 11 */
		"      io:\n"                                      /* 12 */
		"        cpus: \"3\"\n"                            /* 13 */
		"        policy: fifo\n"                           /* 14 */
		"        priority: 5\n"                            /* 15 */
		"    - name: data\n"                               /* 16 */
		"      path: /dev/sdb\n"                           /* 17 */
		"      readonly: on\n"                             /* 18 */
		"    - socket: /run/rtvmm/qsd.sock\n"              /* 19 */
		"      mode: server\n"                             /* 20 */
		"      backend_user: \"0\"\n"                      /* 21 */
		"      queues: 2\n";                               /* 22 */
	const struct plan_disk *d;
	char want[256];
	struct plan p;

	(void)state;
	load_ok(yaml, &p);
	assert_int_equal(p.vms[0].nr_disks, 3);
	d = &p.vms[0].disks[0];
	assert_string_equal(d->name, "disk0");
	assert_int_equal(d->kind, PLAN_DISK_LOCAL);
	snprintf(want, sizeof(want), "%s/root.img", tmpdir);
	assert_string_equal(d->path, want);
	assert_false(d->readonly);
	assert_string_equal(d->serial, "ROOT-0001");
	assert_int_equal(d->queues, 4);
	assert_true(d->io_cpus_set);
	assert_true(cpus_of(&d->io.cpus, "3"));
	assert_int_equal(d->io.policy, RT_POLICY_FIFO);
	assert_int_equal(d->io.priority, 5);
	assert_int_equal(d->io.loc.line, 13);
	assert_string_equal(d->io.loc.key, "vm.disks[0].io.cpus");
	assert_int_equal(d->image_loc.line, 9);
	assert_string_equal(d->image_loc.key, "vm.disks[0].path");
	assert_int_equal(d->loc.line, 9);
	assert_string_equal(d->loc.key, "vm.disks[0]");

	/* No io: the emulator's cpus (here housekeeping's) and policy. */
	d = &p.vms[0].disks[1];
	assert_string_equal(d->name, "data");
	assert_int_equal(d->kind, PLAN_DISK_LOCAL);
	assert_string_equal(d->path, "/dev/sdb");
	assert_true(d->readonly);
	assert_string_equal(d->serial, "");
	assert_int_equal(d->queues, 1);
	assert_false(d->io_cpus_set);
	assert_true(cpus_of(&d->io.cpus, "0-1"));
	assert_int_equal(d->io.policy, RT_POLICY_OTHER);
	assert_int_equal(d->io.loc.line, 2);

	d = &p.vms[0].disks[2];
	assert_string_equal(d->name, "disk2");
	assert_int_equal(d->kind, PLAN_DISK_VHOST_USER);
	assert_string_equal(d->socket, "/run/rtvmm/qsd.sock");
	assert_int_equal(d->mode, PLAN_NIC_SERVER);
	assert_string_equal(d->backend_user, "0");
	assert_int_equal(d->queues, 2);
	assert_int_equal(d->image_loc.line, 19);
	assert_string_equal(d->image_loc.key, "vm.disks[2].socket");
	plan__free(&p);
	assert_null(p.vms);
}

#define DISKS_HEAD VM_HEAD "    memory: 64M\n    vcpus: 1\n    disks:\n"   /* disks on line 7 */

static void test_parse_disk_errors(void **state)
{
	char yaml[1024];
	unsigned i;

	(void)state;
	expect_error(DISKS_HEAD "      - {readonly: on}\n", 7, "vms[0].disks[0].path",
		     "every disk needs 'path' (a raw image file or block device) or 'socket'");
	expect_error(DISKS_HEAD "      - {path: /a.img, socket: /s}\n", 7, "vms[0].disks[0].socket",
		     "use either 'path' (an image rtvmm serves) or 'socket'");
	expect_error(DISKS_HEAD "      - {path: /a.img}\n      - {path: /b.img, name: disk0}\n", 8,
		     "vms[0].disks[1].name",
		     "duplicate disk name in this VM (first at line 7, vms[0].disks[0])");
	expect_error(DISKS_HEAD "      - {path: /a.img, queues: 0}\n", 7, "vms[0].disks[0].queues",
		     "out of range 1..16");
	expect_error(DISKS_HEAD "      - {path: /a.img, queues: 17}\n", 7, "vms[0].disks[0].queues",
		     "out of range 1..16");
	expect_error(DISKS_HEAD "      - {path: /a.img, serial: ABCDEFGHIJKLMNOPQRSTU}\n", 7,
		     "vms[0].disks[0].serial", "too long: 21 bytes, at most 20");
	expect_error(DISKS_HEAD "      - {path: /a.img, serial: \"a b\"}\n", 7,
		     "vms[0].disks[0].serial", "character ' ' at offset 1 is not allowed in a serial");
	expect_error(DISKS_HEAD "      - {path: /a.img, readonly: maybe}\n", 7,
		     "vms[0].disks[0].readonly", "expected true or false");
	expect_error(DISKS_HEAD "      - {path: /a.img, mode: server}\n", 7, "vms[0].disks[0].mode",
		     "only a vhost-user disk ('socket') connects or listens");
	expect_error(DISKS_HEAD "      - {path: /a.img, backend_user: root}\n", 7,
		     "vms[0].disks[0].backend_user", "only a vhost-user disk ('socket') has a backend");
	expect_error(DISKS_HEAD "      - {socket: /s, serial: X}\n", 7, "vms[0].disks[0].serial",
		     "a vhost-user disk's serial comes from its backend");
	expect_error(DISKS_HEAD "      - {socket: /s, io: {cpus: 1}}\n", 7, "vms[0].disks[0].io",
		     "a vhost-user disk's I/O runs in its backend");
	expect_error(DISKS_HEAD "      - {socket: /s, mode: both}\n", 7, "vms[0].disks[0].mode",
		     "expected one of: client, server");
	expect_error(DISKS_HEAD "      - {path: /a.img, name: \"-x\"}\n", 7, "vms[0].disks[0].name",
		     "invalid name");
	expect_error(DISKS_HEAD "      - {path: /a.img, size: 1G}\n", 7, "vms[0].disks[0].size",
		     "unknown key in disk");
	expect_error(DISKS_HEAD "      - {path: /a.img, io: {cpus: 1, policy: fifo}}\n", 7,
		     "vms[0].disks[0].io.priority", "policy 'fifo' needs a priority 1..99");
	expect_error(DISKS_HEAD "      - {path: /a.img, io: {cpus: 1, colour: red}}\n", 7,
		     "vms[0].disks[0].io.colour", "unknown key in disk I/O thread");
	expect_error(DISKS_HEAD "      - {path: /a.img, io: 3}\n", 7, "vms[0].disks[0].io",
		     "expected a mapping (cpus, policy, priority)");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    disks: /a.img\n", 6, "vms[0].disks",
		     "expected a list of disks");

	/* At most VM_MAX_DISKS (16) per VM. */
	snprintf(yaml, sizeof(yaml), "%s", DISKS_HEAD);
	for (i = 0; i < 17; i++)
		snprintf(yaml + strlen(yaml), sizeof(yaml) - strlen(yaml), "      - {path: /d%u}\n", i);
	expect_error(yaml, 6, "vms[0].disks", "17 disks: a VM has at most 16");
	yaml[strlen(yaml) - strlen("      - {path: /d16}\n")] = '\0';
	{
		struct plan p;

		load_ok(yaml, &p);
		assert_int_equal(p.vms[0].nr_disks, 16);
		assert_string_equal(p.vms[0].disks[15].name, "disk15");
		plan__free(&p);
	}
}

/* --disk is an entry of `disks:`, like --net one of `nics:`; its errors name the flag. */
static void test_flags_make_disks(void **state)
{
	const struct plan_arg args[] = {
		{ "--kernel", "kernel", "/boot/vmlinuz" },
		{ "--disk", "disks", "path=/img/root.raw,readonly=on,serial=S1,queues=2" },
		{ "--memory", "memory", "64M" },
		{ "--disk", "disks", "socket=/run/q.sock,name=qcow" },
		{ "--vcpus", "vcpus", "1" },
	};
	static const struct {
		const char *spec, *message;
	} bad[] = {
		{ "path=/a,colour=red", "--disk 'path=/a,colour=red': vm.disks[0].colour: unknown key in disk" },
		{ "path=/a,readonly", "--disk 'path=/a,readonly': 'readonly': expected KEY=VALUE (keys: path or socket" },
		{ "readonly=on", "--disk 'readonly=on': vm.disks[0].path: missing: every disk needs 'path'" },
		{ "path=/a,queues=99", "--disk 'path=/a,queues=99': vm.disks[0].queues: out of range 1..16" },
	};
	struct err e = { 0 };
	struct plan p;
	unsigned i;

	(void)state;
	assert_int_equal(plan__from_args(&p, args, 5, &e), 0);
	assert_int_equal(p.vms[0].nr_disks, 2);
	assert_string_equal(p.vms[0].disks[0].name, "disk0");
	assert_string_equal(p.vms[0].disks[0].path, "/img/root.raw");
	assert_true(p.vms[0].disks[0].readonly);
	assert_string_equal(p.vms[0].disks[0].serial, "S1");
	assert_int_equal(p.vms[0].disks[0].queues, 2);
	assert_int_equal(p.vms[0].disks[0].image_loc.line, 2);   /* the flag's index + 1 */
	assert_int_equal(p.vms[0].disks[1].kind, PLAN_DISK_VHOST_USER);
	assert_string_equal(p.vms[0].disks[1].name, "qcow");
	assert_string_equal(p.vms[0].disks[1].socket, "/run/q.sock");
	assert_int_equal(p.vms[0].disks[1].mode, PLAN_NIC_CLIENT);
	plan__free(&p);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct plan_arg a[4] = {
			{ "--kernel", "kernel", "/boot/vmlinuz" },
			{ "--memory", "memory", "64M" },
			{ "--vcpus", "vcpus", "1" },
			{ "--disk", "disks", bad[i].spec },
		};

		assert_int_equal(plan__from_args(&p, a, 4, &e), -EINVAL);
		if (!strstr(e.msg, bad[i].message))
			print_error("case %u: '%s' lacks '%s'\n", i, e.msg, bad[i].message);
		assert_non_null(strstr(e.msg, bad[i].message));
		assert_int_equal(p.nr_vms, 0);
	}
}

/* `serial:` takes cloud-hypervisor's words; paths resolve against the plan's directory. */
static void test_parse_serial_modes_and_errors(void **state)
{
	static const char long_sock[] = VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: socket=/"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n";
	const struct plan_arg args[] = {
		{ "--kernel", "kernel", "/boot/vmlinuz" },
		{ "--serial", "serial", "file=/var/log/vm.log" },
		{ "--memory", "memory", "64M" },
		{ "--vcpus", "vcpus", "1" },
	};
	struct plan_arg bad[4];
	struct err e = { 0 };
	char want[256];
	struct plan p;

	(void)state;
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n", &p);
	assert_int_equal(p.vms[0].serial.mode, PLAN_SERIAL_TTY);
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: off\n", &p);
	assert_int_equal(p.vms[0].serial.mode, PLAN_SERIAL_OFF);
	assert_int_equal(p.vms[0].serial.loc.line, 6);
	assert_string_equal(p.vms[0].serial.loc.key, "vms[0].serial");
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: socket=/run/rtvmm/vnf1.console\n", &p);
	assert_int_equal(p.vms[0].serial.mode, PLAN_SERIAL_SOCKET);
	assert_string_equal(p.vms[0].serial.path, "/run/rtvmm/vnf1.console");
	plan__free(&p);
	load_ok(VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: file=logs/vnf1.log\n", &p);
	assert_int_equal(p.vms[0].serial.mode, PLAN_SERIAL_FILE);
	snprintf(want, sizeof(want), "%s/logs/vnf1.log", tmpdir);
	assert_string_equal(p.vms[0].serial.path, want);
	plan__free(&p);

	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: pty\n", 6, "vms[0].serial",
		     "expected tty, off, file=PATH or socket=PATH (value 'pty')");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: file=\n", 6, "vms[0].serial",
		     "the path is empty");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: socket=/run/\n", 6,
		     "vms[0].serial", "names a directory");
	expect_error(VM_HEAD "    memory: 64M\n    vcpus: 1\n    serial: [tty]\n", 6, "vms[0].serial",
		     "expected tty, off, file=PATH or socket=PATH, got a list");
	expect_error(long_sock, 6, "vms[0].serial", "a unix socket's path has at most 107");

	/* The flag is the same key. */
	assert_int_equal(plan__from_args(&p, args, 4, &e), 0);
	assert_int_equal(p.vms[0].serial.mode, PLAN_SERIAL_FILE);
	assert_string_equal(p.vms[0].serial.path, "/var/log/vm.log");
	plan__free(&p);
	memcpy(bad, args, sizeof(bad));
	bad[1].value = "socket";
	assert_int_equal(plan__from_args(&p, bad, 4, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--serial 'socket': vm.serial: expected tty, off, file=PATH or "
			       "socket=PATH"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_example_small_vm),
		cmocka_unit_test(test_parse_example_telco_host),
		cmocka_unit_test(test_parse_full_vm_fills_every_field),
		cmocka_unit_test(test_parse_defaults_for_a_minimal_vm),
		cmocka_unit_test(test_parse_shutdown_grace),
		cmocka_unit_test(test_parse_on_reboot),
		cmocka_unit_test(test_parse_disable_exits_and_halt_poll),
		cmocka_unit_test(test_parse_dirty_ring),
		cmocka_unit_test(test_parse_api_socket),
		cmocka_unit_test(test_parse_nic_stats_socket),
		cmocka_unit_test(test_flags_make_the_plan_a_file_would),
		cmocka_unit_test(test_flags_errors_name_the_flag),
		cmocka_unit_test(test_parse_disks_fill_every_field_and_default),
		cmocka_unit_test(test_parse_disk_errors),
		cmocka_unit_test(test_flags_make_disks),
		cmocka_unit_test(test_parse_serial_modes_and_errors),
		cmocka_unit_test(test_parse_hugepages_prefault_by_default),
		cmocka_unit_test(test_parse_emulator_cpus_default_to_housekeeping),
		cmocka_unit_test(test_parse_single_vm_document),
		cmocka_unit_test(test_parse_vcpu_list_form),
		cmocka_unit_test(test_parse_unknown_key_names_line_and_key),
		cmocka_unit_test(test_parse_dataplane_policy_and_priority),
		cmocka_unit_test(test_parse_wrong_type_names_expected_and_got),
		cmocka_unit_test(test_parse_bad_scalar_values_name_the_value),
		cmocka_unit_test(test_parse_missing_required_keys),
		cmocka_unit_test(test_parse_duplicate_vm_name_points_to_first),
		cmocka_unit_test(test_parse_syntax_error_reports_line),
		cmocka_unit_test(test_parse_fifo_priority_out_of_range),
		cmocka_unit_test(test_parse_vcpu_count_out_of_range),
		cmocka_unit_test(test_parse_vcpu_pin_list_length_must_match_count),
		cmocka_unit_test(test_parse_memory_values_out_of_range),
		cmocka_unit_test(test_parse_cpu_list_syntax_errors),
		cmocka_unit_test(test_parse_duplicate_mac_across_vms_points_to_first),
		cmocka_unit_test(test_parse_file_over_16m_is_refused_by_its_size),
		cmocka_unit_test(test_parse_nesting_over_32_levels_is_refused),
		cmocka_unit_test(test_parse_more_than_64_anchors_are_refused),
		cmocka_unit_test(test_parse_more_than_65536_vcpus_in_all_are_refused),
		cmocka_unit_test(test_parse_nic_errors),
		cmocka_unit_test(test_parse_host_user_group_and_run_dir),
		cmocka_unit_test(test_parse_missing_file_is_enoent),
		cmocka_unit_test(test_plan_cpu_lists_round_trip),
		cmocka_unit_test(test_plan_names_and_sizes),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
