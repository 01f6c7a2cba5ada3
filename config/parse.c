/*
 * Host-plan loader. libyaml builds the document tree (yaml_parser_load);
 * we walk it with a static schema per mapping (key, type, required, where
 * in the struct), so every value is checked against the node that holds
 * it and every message can say "FILE:LINE: KEY: problem (value 'V')".
 * The vocabulary is documented in the annotated examples/ plans.
 */
#include "config/parse.h"

#include <errno.h>
#include <limits.h>
#include <search.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <yaml.h>

#include "base/cpus.h"
#include "base/size.h"
#include "base/trust.h"
#include "base/vm_limits.h"

#define MAX_NODE     1023          /* highest NUMA node number we accept */
#define MAX_FIELDS   16            /* keys in the largest mapping */
#define KEY_LEN      sizeof(((struct plan_loc *)0)->key)

struct ctx {
	const char *file;          /* as the user named it, for messages */
	const struct plan_arg *args; /* a plan from flags: a node's line is its flag's index + 1 */
	unsigned nr_args;
	char dir[4096];            /* its directory with a trailing '/', "" for the cwd */
	yaml_document_t *doc;
	struct plan *p;
	struct err *e;
	void *vm_names;            /* what must be unique in the plan, as tsearch(3) trees: */
	void *nic_sockets;         /* VMs by name, NICs by socket and by MAC, so a check is */
	void *nic_macs;            /* O(log n), not a scan of everything before */
	unsigned nr_vcpus;         /* in the VMs so far, at most PLAN_MAX_VCPUS */
};

enum field_type {
	FT_STR,                    /* char[len] */
	FT_PATH,                   /* char[len]; relative paths resolve against ctx.dir */
	FT_INT,                    /* int in [min, max] */
	FT_UINT,                   /* unsigned in [min, max] */
	FT_BOOL,                   /* true/false, yes/no, on/off */
	FT_SIZE,                   /* uint64_t bytes: "512M", "2G", "1GiB" */
	FT_PAGE_SIZE,              /* enum page_size: 4K, 2M, 1G */
	FT_CPUS,                   /* cpu_set_t from a non-empty cpu list "0-3,8" */
	FT_ENUM,                   /* unsigned: index of the name in `names` */
	FT_MAC,                    /* uint8_t[6] "52:54:00:12:34:56" */
	FT_NODE,                   /* a nested mapping or list: the caller walks it */
};

struct field {
	const char *name;
	enum field_type type;
	bool required;
	size_t offset;             /* into the object the mapping fills */
	size_t len;                /* FT_STR, FT_PATH: buffer size */
	long min, max;             /* FT_INT, FT_UINT */
	const char *const *names;  /* FT_ENUM */
	unsigned nr_names;
	yaml_node_type_t node;     /* FT_NODE: expected node type, 0 = the caller decides */
	const char *expect;        /* FT_NODE: what a wrong node should have been */
};

struct schema {
	const char *what;          /* "VM", "NIC": for "missing from this VM" */
	const struct field *fields;
	unsigned nr;
};

/* What one mapping held, by field index: key nodes, and values unless absent or null. */
struct seen {
	yaml_node_t *key[MAX_FIELDS];
	yaml_node_t *val[MAX_FIELDS];
};

#define MEMBER_SIZE(T, m) sizeof(((T *)0)->m)
#define F_STR(n, T, m, req) \
	{ .name = n, .type = FT_STR, .required = req, .offset = offsetof(T, m), \
	  .len = MEMBER_SIZE(T, m) }
#define F_PATH(n, T, m, req) \
	{ .name = n, .type = FT_PATH, .required = req, .offset = offsetof(T, m), \
	  .len = MEMBER_SIZE(T, m) }
#define F_INT(n, T, m, lo, hi) \
	{ .name = n, .type = FT_INT, .offset = offsetof(T, m), .min = lo, .max = hi }
#define F_UINT(n, T, m, req, lo, hi) \
	{ .name = n, .type = FT_UINT, .required = req, .offset = offsetof(T, m), \
	  .min = lo, .max = hi }
#define F_BOOL(n, T, m) { .name = n, .type = FT_BOOL, .offset = offsetof(T, m) }
#define F_SIZE(n, T, m, req) \
	{ .name = n, .type = FT_SIZE, .required = req, .offset = offsetof(T, m) }
#define F_PAGE_SIZE(n, T, m) \
	{ .name = n, .type = FT_PAGE_SIZE, .offset = offsetof(T, m) }
#define F_CPUS(n, T, m, req) \
	{ .name = n, .type = FT_CPUS, .required = req, .offset = offsetof(T, m) }
#define F_ENUM(n, T, m, table) \
	{ .name = n, .type = FT_ENUM, .offset = offsetof(T, m), .names = table, \
	  .nr_names = sizeof(table) / sizeof(table[0]) }
#define F_MAC(n, T, m) { .name = n, .type = FT_MAC, .offset = offsetof(T, m) }
#define F_NODE(n, req, kind, what) \
	{ .name = n, .type = FT_NODE, .required = req, .node = kind, .expect = what }
#define SCHEMA(what, table) { what, table, sizeof(table) / sizeof(table[0]) }

/* FT_ENUM stores an unsigned; the enums it fills must have that size. */
_Static_assert(sizeof(enum rt_policy) == sizeof(unsigned), "plan_policy is not unsigned-sized");
_Static_assert(sizeof(enum plan_nic_mode) == sizeof(unsigned), "plan_nic_mode is not unsigned-sized");
_Static_assert(sizeof(enum plan_on_reboot) == sizeof(unsigned), "plan_on_reboot is not unsigned-sized");

static const char *const policy_names[] = {
	[RT_POLICY_OTHER] = "other",
	[RT_POLICY_FIFO] = "fifo",
	[RT_POLICY_RR] = "rr",
};

static const char *const on_reboot_names[] = {
	[PLAN_ON_REBOOT_RESTART] = "restart",
	[PLAN_ON_REBOOT_EXIT] = "exit",
};

static const char *const nic_mode_names[] = {
	[PLAN_NIC_CLIENT] = "client",
	[PLAN_NIC_SERVER] = "server",
};

/* ---- the schema ---------------------------------------------------------------------------- */

enum { TOP_HOST, TOP_VMS, TOP_VM, NR_TOP };
static const struct field top_fields[] = {
	[TOP_HOST] = F_NODE("host", false, YAML_MAPPING_NODE, "a mapping (housekeeping_cpus, dataplane, user, group, run_dir)"),
	[TOP_VMS] = F_NODE("vms", false, YAML_SEQUENCE_NODE, "a list of VMs"),
	[TOP_VM] = F_NODE("vm", false, YAML_MAPPING_NODE, "a mapping (one VM)"),
};

enum { HOST_HOUSEKEEPING, HOST_DATAPLANE, HOST_USER, HOST_GROUP, HOST_RUN_DIR, NR_HOST };
static const struct field host_fields[] = {
	[HOST_HOUSEKEEPING] = F_CPUS("housekeeping_cpus", struct plan_host, housekeeping, false),
	[HOST_USER] = F_STR("user", struct plan_host, user, false),
	[HOST_GROUP] = F_STR("group", struct plan_host, group, false),
	[HOST_RUN_DIR] = F_PATH("run_dir", struct plan_host, run_dir, false),
	[HOST_DATAPLANE] = F_NODE("dataplane", false, YAML_MAPPING_NODE,
				  "a mapping (cores, main_core, numa_node, no_huge, eal_args, mac_per_port, "
				  "policy, priority)"),
};

enum { DP_CORES, DP_MAIN_CORE, DP_NODE, DP_NO_HUGE, DP_EAL_ARGS, DP_MAC_PER_PORT, DP_POLICY,
       DP_PRIORITY, NR_DP };
static const struct field dataplane_fields[] = {
	[DP_CORES] = F_CPUS("cores", struct plan_dataplane, cores, true),
	[DP_MAIN_CORE] = F_INT("main_core", struct plan_dataplane, main_core, 0, CPU_SETSIZE - 1),
	[DP_NODE] = F_INT("numa_node", struct plan_dataplane, node, 0, MAX_NODE),
	[DP_NO_HUGE] = F_BOOL("no_huge", struct plan_dataplane, no_huge),
	[DP_EAL_ARGS] = F_STR("eal_args", struct plan_dataplane, extra_eal, false),
	[DP_MAC_PER_PORT] = F_UINT("mac_per_port", struct plan_dataplane, mac_per_port, false, 1,
				   1 << 24),
	[DP_POLICY] = F_ENUM("policy", struct plan_dataplane, policy, policy_names),
	[DP_PRIORITY] = F_INT("priority", struct plan_dataplane, priority, INT_MIN, INT_MAX),
};

enum { VM_NAME, VM_KERNEL, VM_INITRD, VM_CMDLINE, VM_MEMORY, VM_VCPUS, VM_EMULATOR, VM_NICS,
       VM_DISKS, VM_SERIAL, VM_SHUTDOWN_GRACE, VM_API_SOCKET, VM_ON_REBOOT, VM_DISABLE_EXITS,
       VM_HALT_POLL, VM_DIRTY_RING, NR_VM };
static const struct field vm_fields[] = {
	[VM_NAME] = F_STR("name", struct plan_vm, name, true),
	[VM_KERNEL] = F_PATH("kernel", struct plan_vm, kernel, true),
	[VM_INITRD] = F_PATH("initrd", struct plan_vm, initrd, false),
	[VM_CMDLINE] = F_STR("cmdline", struct plan_vm, cmdline, false),
	[VM_MEMORY] = F_NODE("memory", true, 0, NULL),
	[VM_VCPUS] = F_NODE("vcpus", true, 0, NULL),
	[VM_EMULATOR] = F_CPUS("emulator_cpus", struct plan_vm, emulator.cpus, false),
	[VM_NICS] = F_NODE("nics", false, YAML_SEQUENCE_NODE, "a list of NICs"),
	[VM_DISKS] = F_NODE("disks", false, YAML_SEQUENCE_NODE, "a list of disks"),
	[VM_SERIAL] = F_NODE("serial", false, YAML_SCALAR_NODE, "tty, off, file=PATH or socket=PATH"),
	[VM_SHUTDOWN_GRACE] = F_UINT("shutdown_grace_s", struct plan_vm, shutdown_grace_s, false, 0,
				     PLAN_MAX_SHUTDOWN_GRACE_S),
	[VM_API_SOCKET] = F_PATH("api_socket", struct plan_vm, api_socket, false),
	[VM_ON_REBOOT] = F_ENUM("on_reboot", struct plan_vm, on_reboot, on_reboot_names),
	[VM_DISABLE_EXITS] = F_NODE("disable_exits", false, 0, NULL),
	[VM_HALT_POLL] = F_UINT("halt_poll_ns", struct plan_vm, halt_poll_ns, false, 0,
				PLAN_MAX_HALT_POLL_NS),
	[VM_DIRTY_RING] = F_UINT("dirty_ring", struct plan_vm, dirty_ring, false, 0,
				 PLAN_MAX_DIRTY_RING),
};

enum { MEM_SIZE, MEM_PAGE_SIZE, MEM_NODE, MEM_STRICT, MEM_PREFAULT, MEM_MLOCK, MEM_FALLBACK, NR_MEM };
static const struct field memory_fields[] = {
	[MEM_SIZE] = F_SIZE("size", struct plan_memory, size, true),
	[MEM_PAGE_SIZE] = F_PAGE_SIZE("page_size", struct plan_memory, page_size),
	[MEM_NODE] = F_INT("numa_node", struct plan_memory, node, 0, MAX_NODE),
	[MEM_STRICT] = F_BOOL("strict", struct plan_memory, strict),
	[MEM_PREFAULT] = F_BOOL("prefault", struct plan_memory, prefault),
	[MEM_MLOCK] = F_BOOL("mlock", struct plan_memory, mlock),
	[MEM_FALLBACK] = F_BOOL("fallback_4k", struct plan_memory, allow_fallback),
};

/* `vcpus:` as a mapping: a count, shared scheduling, and either one cpu set or one per vCPU. */
struct vcpus_spec {
	unsigned count;
	unsigned policy;
	int priority;
	cpu_set_t cpus;
};

enum { VCPUS_COUNT, VCPUS_POLICY, VCPUS_PRIORITY, VCPUS_CPUS, VCPUS_PIN, NR_VCPUS };
static const struct field vcpus_fields[] = {
	[VCPUS_COUNT] = F_UINT("count", struct vcpus_spec, count, true, 1, VM_MAX_VCPUS),
	[VCPUS_POLICY] = F_ENUM("policy", struct vcpus_spec, policy, policy_names),
	[VCPUS_PRIORITY] = F_INT("priority", struct vcpus_spec, priority, INT_MIN, INT_MAX),
	[VCPUS_CPUS] = F_CPUS("cpus", struct vcpus_spec, cpus, false),
	[VCPUS_PIN] = F_NODE("pin", false, YAML_SEQUENCE_NODE, "a list of cpu lists, one per vCPU"),
};

/* `vcpus:` as a list: one entry per vCPU. */
enum { VCPU_CPUS, VCPU_POLICY, VCPU_PRIORITY, NR_VCPU };
static const struct field vcpu_fields[] = {
	[VCPU_CPUS] = F_CPUS("cpus", struct vcpus_spec, cpus, false),
	[VCPU_POLICY] = F_ENUM("policy", struct vcpus_spec, policy, policy_names),
	[VCPU_PRIORITY] = F_INT("priority", struct vcpus_spec, priority, INT_MIN, INT_MAX),
};

/* Shorthands: `vcpus: 2`, `memory: 1G`, and the entries of `pin:`. */
static const struct field vcpus_count_field =
	F_UINT("vcpus", struct vcpus_spec, count, true, 1, VM_MAX_VCPUS);
static const struct field memory_size_field = F_SIZE("memory", struct plan_memory, size, true);
static const struct field pin_field = F_CPUS("pin", struct plan_sched, cpus, true);

enum { NIC_NAME, NIC_SOCKET, NIC_MAC, NIC_QUEUES, NIC_MODE, NIC_BACKEND_USER, NIC_STATS_SOCKET,
       NIC_QUEUE_SIZE, NR_NIC };
static const struct field nic_fields[] = {
	[NIC_NAME] = F_STR("name", struct plan_nic, name, true),
	[NIC_SOCKET] = F_PATH("socket", struct plan_nic, socket, true),
	[NIC_MAC] = F_MAC("mac", struct plan_nic, mac),
	[NIC_QUEUES] = F_UINT("queues", struct plan_nic, queues, false, 1, VM_MAX_NIC_QUEUE_PAIRS),
	[NIC_MODE] = F_ENUM("mode", struct plan_nic, mode, nic_mode_names),
	[NIC_BACKEND_USER] = F_STR("backend_user", struct plan_nic, backend_user, false),
	[NIC_STATS_SOCKET] = F_PATH("stats_socket", struct plan_nic, stats_socket, false),
	[NIC_QUEUE_SIZE] = F_UINT("queue_size", struct plan_nic, queue_size, false,
				  VM_NIC_QUEUE_SIZE_MIN, VM_NIC_QUEUE_SIZE_MAX),
};

enum { DISK_NAME, DISK_PATH, DISK_SOCKET, DISK_MODE, DISK_BACKEND_USER, DISK_READONLY,
       DISK_SERIAL, DISK_QUEUES, DISK_IO, NR_DISK };
static const struct field disk_fields[] = {
	[DISK_NAME] = F_STR("name", struct plan_disk, name, false),
	[DISK_PATH] = F_PATH("path", struct plan_disk, path, false),
	[DISK_SOCKET] = F_PATH("socket", struct plan_disk, socket, false),
	[DISK_MODE] = F_ENUM("mode", struct plan_disk, mode, nic_mode_names),
	[DISK_BACKEND_USER] = F_STR("backend_user", struct plan_disk, backend_user, false),
	[DISK_READONLY] = F_BOOL("readonly", struct plan_disk, readonly),
	[DISK_SERIAL] = F_STR("serial", struct plan_disk, serial, false),
	[DISK_QUEUES] = F_UINT("queues", struct plan_disk, queues, false, 1, VM_MAX_DISK_QUEUES),
	[DISK_IO] = F_NODE("io", false, YAML_MAPPING_NODE, "a mapping (cpus, policy, priority)"),
};

static const struct schema top_schema = SCHEMA("plan", top_fields);
static const struct schema host_schema = SCHEMA("host section", host_fields);
static const struct schema dataplane_schema = SCHEMA("dataplane", dataplane_fields);
static const struct schema vm_schema = SCHEMA("VM", vm_fields);
static const struct schema memory_schema = SCHEMA("memory section", memory_fields);
static const struct schema vcpus_schema = SCHEMA("vcpus mapping", vcpus_fields);
static const struct schema vcpu_schema = SCHEMA("vCPU entry", vcpu_fields);
static const struct schema nic_schema = SCHEMA("NIC", nic_fields);
static const struct schema disk_schema = SCHEMA("disk", disk_fields);
static const struct schema io_schema = SCHEMA("disk I/O thread", vcpu_fields);

_Static_assert(NR_VM <= MAX_FIELDS && NR_MEM <= MAX_FIELDS && NR_NIC <= MAX_FIELDS &&
	       NR_DP <= MAX_FIELDS && NR_VCPUS <= MAX_FIELDS && NR_DISK <= MAX_FIELDS,
	       "raise MAX_FIELDS");

/* ---- messages ------------------------------------------------------------------------------ */

static unsigned line_of(const yaml_node_t *n)
{
	return (unsigned)n->start_mark.line + 1;
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

/* " (value 'V')" for a scalar, shortened and with control characters shown as '?'. */
static void quote_value(const yaml_node_t *val, char *buf, size_t len)
{
	char v[64];
	size_t i, n;

	buf[0] = '\0';
	if (!val || val->type != YAML_SCALAR_NODE)
		return;
	n = val->data.scalar.length;
	for (i = 0; i < n && i < sizeof(v) - 4; i++) {
		unsigned char ch = val->data.scalar.value[i];

		v[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	if (i < n) {
		memcpy(v + i, "...", 3);
		i += 3;
	}
	v[i] = '\0';
	snprintf(buf, len, " (value '%s')", v);
}

/* Records "FILE:LINE: KEY: what (value 'V')" and returns -EINVAL. */
__attribute__((format(printf, 5, 6)))
static int fail(struct ctx *c, unsigned line, const char *key, const yaml_node_t *val,
		const char *fmt, ...)
{
	char what[384], value[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	quote_value(val, value, sizeof(value));
	if (c->args && line >= 1 && line <= c->nr_args)
		return err__set(c->e, -EINVAL, "%s '%s': %s%s%s", c->args[line - 1].flag,
				c->args[line - 1].value, key, *key ? ": " : "", what);
	return err__set(c->e, -EINVAL, "%s:%u: %s%s%s%s", c->file, line, key, *key ? ": " : "",
			what, value);
}

/* Where an earlier value was given: "line 12" in a file, "--net 'socket=/x'" on the command line. */
static const char *given_at(const struct ctx *c, unsigned line, char *buf, size_t len)
{
	if (c->args && line >= 1 && line <= c->nr_args)
		snprintf(buf, len, "%s '%s'", c->args[line - 1].flag, c->args[line - 1].value);
	else
		snprintf(buf, len, "line %u", line);
	return buf;
}

static int wrong_type(struct ctx *c, unsigned line, const char *key, const yaml_node_t *val,
		      const char *expected)
{
	return fail(c, line, key, val, "expected %s, got %s", expected, node_kind(val));
}

/* Appends `s` to the key path `out` (KEY_LEN bytes) at *used, cutting what does not fit. */
static void key_append(char *out, size_t *used, const char *s)
{
	while (*s && *used + 1 < KEY_LEN)
		out[(*used)++] = *s++;
	out[*used] = '\0';
}

/* "vms[0]" + "memory" -> "vms[0].memory"; "" + "host" -> "host". */
static void key_join(char *out, const char *path, const char *name)
{
	size_t used = 0;

	out[0] = '\0';
	key_append(out, &used, path);
	if (*path)
		key_append(out, &used, ".");
	key_append(out, &used, name);
}

/* "vms" + 1 -> "vms[1]". */
static void key_index(char *out, const char *path, unsigned i)
{
	char idx[16];
	size_t used = 0;

	snprintf(idx, sizeof(idx), "[%u]", i);
	out[0] = '\0';
	key_append(out, &used, path);
	key_append(out, &used, idx);
}

static void set_loc(struct plan_loc *loc, unsigned line, const char *key)
{
	loc->line = line;
	snprintf(loc->key, sizeof(loc->key), "%s", key);
}

/* Levenshtein distance, for "did you mean". */
static unsigned edit_distance(const char *a, const char *b)
{
	unsigned row[64], i, j, diag, up;
	size_t la = strlen(a), lb = strlen(b);

	if (lb >= sizeof(row) / sizeof(row[0]) || la >= 64)
		return UINT_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

static int unknown_key(struct ctx *c, const struct schema *s, const yaml_node_t *key,
		       const char *kpath)
{
	const char *name = scalar(key), *best = NULL;
	unsigned i, d, best_d = UINT_MAX;
	char allowed[256] = "";
	size_t used = 0;

	for (i = 0; i < s->nr; i++) {
		used += (size_t)snprintf(allowed + used, sizeof(allowed) - used, "%s%s",
					 i ? ", " : "", s->fields[i].name);
		if (used >= sizeof(allowed))
			used = sizeof(allowed) - 1;
		d = edit_distance(name, s->fields[i].name);
		if (d < best_d) {
			best_d = d;
			best = s->fields[i].name;
		}
	}
	if (best && best_d <= 2 && best_d < strlen(name))
		return fail(c, line_of(key), kpath, NULL,
			    "unknown key in %s; did you mean '%s'? (allowed: %s)", s->what, best, allowed);
	return fail(c, line_of(key), kpath, NULL, "unknown key in %s (allowed: %s)", s->what, allowed);
}

/* ---- scalars ------------------------------------------------------------------------------- */

/* YAML's null: an empty value, "~" or "null" (and an explicit !!null). */
static bool is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "~", "null", "Null", "NULL" };
	unsigned i;

	if (n->type != YAML_SCALAR_NODE)
		return false;
	if (n->tag && !strcmp((const char *)n->tag, YAML_NULL_TAG))
		return true;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	if (!n->data.scalar.length)
		return true;
	for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (!strcmp(scalar(n), nulls[i]))
			return true;
	return false;
}

/* Decimal integers only ("-5", "42"); "0x10", "1e3" and "" are not integers here. */
static int parse_long(const char *s, long *out)
{
	char *end;
	long v;

	if (!*s || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on" }, *const no[] = { "false", "no", "off" };
	unsigned i;

	for (i = 0; i < 3; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* "52:54:00:12:34:56": six two-digit hex bytes separated by ':'. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	int hi, lo;
	unsigned i;

	for (i = 0; i < 6; i++) {
		hi = hex_digit(s[0]);
		lo = hi < 0 ? -1 : hex_digit(s[1]);
		if (lo < 0)
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i < 5 && *s++ != ':')
			return -EINVAL;
	}
	return *s ? -EINVAL : 0;
}

static int set_path(struct ctx *c, unsigned line, const char *kpath, const yaml_node_t *val,
		    char *dst, size_t size)
{
	const char *s = scalar(val);
	const char *dir = s[0] == '/' ? "" : c->dir;
	size_t len = strlen(dir) + val->data.scalar.length;

	if (!val->data.scalar.length)
		return fail(c, line, kpath, val, "empty path");
	if (len >= size)
		return fail(c, line, kpath, val, "path too long: %zu bytes%s, at most %zu", len,
			    *dir ? " after prefixing the plan's directory" : "", size - 1);
	snprintf(dst, size, "%s%s", dir, s);
	return 0;
}

/* Checks `val` against field `f` and stores it at f->offset in `obj`. */
static int convert(struct ctx *c, const struct field *f, unsigned line, const char *kpath,
		   const yaml_node_t *val, void *obj)
{
	char *dst;
	const char *s;
	uint64_t bytes;
	cpu_set_t set;
	uint8_t mac[6];
	unsigned i;
	bool b;
	long v;
	int rc;

	/* A node is the caller's to walk: it stores nothing, and the top mapping has no `obj`. */
	if (f->type == FT_NODE) {
		if (f->node && val->type != f->node)
			return wrong_type(c, line, kpath, val, f->expect);
		return 0;
	}
	dst = (char *)obj + f->offset;
	if (val->type != YAML_SCALAR_NODE)
		return wrong_type(c, line, kpath, val, "a single value");
	s = scalar(val);
	if (strlen(s) != val->data.scalar.length)
		return fail(c, line, kpath, NULL, "value contains a NUL character");

	switch (f->type) {
	case FT_STR:
		if (val->data.scalar.length >= f->len)
			return fail(c, line, kpath, val, "too long: %zu bytes, at most %zu",
				    val->data.scalar.length, f->len - 1);
		memcpy(dst, s, val->data.scalar.length + 1);
		return 0;
	case FT_PATH:
		return set_path(c, line, kpath, val, dst, f->len);
	case FT_INT:
	case FT_UINT:
		rc = parse_long(s, &v);
		if (rc == -EINVAL)
			return fail(c, line, kpath, val, "expected an integer");
		if (!rc && v < 0 && f->min == 0 && !f->required)
			return fail(c, line, kpath, val, "out of range %ld..%ld (leave the key out for "
				    "the default)", f->min, f->max);
		if (rc || v < f->min || v > f->max)
			return fail(c, line, kpath, val, "out of range %ld..%ld", f->min, f->max);
		if (f->type == FT_INT)
			*(int *)dst = (int)v;
		else
			*(unsigned *)dst = (unsigned)v;
		return 0;
	case FT_BOOL:
		if (parse_bool(s, &b))
			return fail(c, line, kpath, val, "expected true or false (or yes/no, on/off)");
		*(bool *)dst = b;
		return 0;
	case FT_SIZE:
		rc = size__parse(s, &bytes);
		if (rc == -ERANGE)
			return fail(c, line, kpath, val, "size too large");
		if (rc)
			return fail(c, line, kpath, val, "expected a size such as 512M, 2G or 1GiB");
		*(uint64_t *)dst = bytes;
		return 0;
	case FT_PAGE_SIZE:
		if (!size__parse(s, &bytes))
			for (i = PAGE_4K; i <= PAGE_1G; i++)
				if (bytes == page_size__bytes(i)) {
					*(enum page_size *)dst = i;
					return 0;
				}
		return fail(c, line, kpath, val, "expected a page size: 4K, 2M or 1G");
	case FT_CPUS:
		rc = cpus__parse(s, &set);
		if (rc == -ERANGE)
			return fail(c, line, kpath, val, "cpu number too large (at most %d)",
				    CPU_SETSIZE - 1);
		if (rc)
			return fail(c, line, kpath, val,
				    "expected a cpu list such as 2, \"2-3\" or \"0,4-7\"");
		if (!CPU_COUNT(&set))
			return fail(c, line, kpath, val, "empty cpu list (leave the key out instead)");
		memcpy(dst, &set, sizeof(set));
		return 0;
	case FT_ENUM:
		for (i = 0; i < f->nr_names; i++)
			if (!strcasecmp(s, f->names[i])) {
				*(unsigned *)dst = i;
				return 0;
			}
		{
			char names[128] = "";
			size_t used = 0;

			for (i = 0; i < f->nr_names && used < sizeof(names); i++)
				used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
							 i ? ", " : "", f->names[i]);
			return fail(c, line, kpath, val, "expected one of: %s", names);
		}
	case FT_MAC:
		if (parse_mac(s, mac))
			return fail(c, line, kpath, val,
				    "expected a MAC address such as 52:54:00:12:34:56");
		if (mac[0] & 1)
			return fail(c, line, kpath, val,
				    "multicast MAC address: the first byte must be even");
		if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
			return fail(c, line, kpath, val, "all-zero MAC address");
		memcpy(dst, mac, sizeof(mac));
		return 0;
	case FT_NODE:
		break;
	}
	return 0;
}

/* ---- mappings ------------------------------------------------------------------------------ */

static yaml_node_t *node_at(struct ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

/*
 * Walks mapping `map` (introduced at `line` under `path`) with schema `s`,
 * storing simple values into `obj` and recording every key in `seen`.
 * Unknown and duplicate keys, wrong types and missing required keys fail.
 */
static int walk(struct ctx *c, yaml_node_t *map, unsigned line, const char *path,
		const struct schema *s, void *obj, struct seen *seen)
{
	char kpath[KEY_LEN];
	yaml_node_pair_t *pair;
	const struct field *f;
	yaml_node_t *key, *val;
	unsigned i;
	int rc;

	memset(seen, 0, sizeof(*seen));
	if (map->type != YAML_MAPPING_NODE)
		return wrong_type(c, line, path, map, "a mapping");
	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		key = node_at(c, pair->key);
		val = node_at(c, pair->value);
		if (key->type != YAML_SCALAR_NODE)
			return fail(c, line_of(key), path, NULL, "keys must be plain names, got %s",
				    node_kind(key));
		key_join(kpath, path, scalar(key));
		for (f = NULL, i = 0; i < s->nr && !f; i++)
			if (!strcmp(scalar(key), s->fields[i].name))
				f = &s->fields[i];
		if (!f)
			return unknown_key(c, s, key, kpath);
		i = (unsigned)(f - s->fields);
		if (seen->key[i])
			return fail(c, line_of(key), kpath, NULL, "duplicate key (first at line %u)",
				    line_of(seen->key[i]));
		seen->key[i] = key;
		if (is_null(val)) {
			if (f->required)
				return fail(c, line_of(key), kpath, NULL, "needs a value");
			continue;
		}
		seen->val[i] = val;
		rc = convert(c, f, line_of(key), kpath, val, obj);
		if (rc)
			return rc;
	}
	for (i = 0; i < s->nr; i++)
		if (s->fields[i].required && !seen->key[i]) {
			key_join(kpath, path, s->fields[i].name);
			return fail(c, line, kpath, NULL, "missing: every %s needs '%s'", s->what,
				    s->fields[i].name);
		}
	return 0;
}

/* ---- scheduling ---------------------------------------------------------------------------- */

/*
 * Policy and priority as sched_setscheduler(2) takes them: fifo and rr need
 * 1..99, other takes none. `line` is where the mapping holding them starts.
 */
static int check_sched(struct ctx *c, const char *path, unsigned line, const struct vcpus_spec *v,
		       const yaml_node_t *policy_key, const yaml_node_t *prio_key,
		       const yaml_node_t *prio_val)
{
	char kpath[KEY_LEN];

	key_join(kpath, path, "priority");
	if (v->policy == RT_POLICY_OTHER) {
		if (prio_val && v->priority)
			return fail(c, line_of(prio_key), kpath, prio_val,
				    "policy 'other' takes no priority (0 or absent); "
				    "set policy: fifo or rr for an RT priority");
		return 0;
	}
	if (!prio_val)
		return fail(c, policy_key ? line_of(policy_key) : line, kpath, NULL,
			    "missing: policy '%s' needs a priority 1..99",
			    rt__policy_name(v->policy));
	if (v->priority < 1 || v->priority > 99)
		return fail(c, line_of(prio_key), kpath, prio_val, "out of range 1..99 for policy '%s'",
			    rt__policy_name(v->policy));
	return 0;
}

static void set_sched(struct plan_sched *s, const struct vcpus_spec *v)
{
	s->cpus = v->cpus;
	s->policy = v->policy;
	s->priority = v->priority;
}

/* `vcpus: N`, `vcpus: {count, policy, priority, cpus | pin}` or `vcpus: [{cpus, policy, priority}]`. */
static int parse_vcpus(struct ctx *c, struct plan_vm *vm, const yaml_node_t *key, yaml_node_t *val,
		       const char *vm_path)
{
	char path[KEY_LEN], kpath[KEY_LEN];
	struct vcpus_spec spec;
	yaml_node_item_t *item;
	yaml_node_t *pin, *entry;
	struct seen s;
	unsigned i, n;
	int rc;

	key_join(path, vm_path, "vcpus");
	memset(&spec, 0, sizeof(spec));

	if (val->type == YAML_SCALAR_NODE) {
		rc = convert(c, &vcpus_count_field, line_of(key), path, val, &spec);
		if (rc)
			return rc;
		vm->vcpus = calloc(spec.count, sizeof(*vm->vcpus));
		if (!vm->vcpus)
			return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
		vm->nr_vcpus = spec.count;
		for (i = 0; i < spec.count; i++)
			set_loc(&vm->vcpus[i].loc, line_of(key), path);
		return 0;
	}

	if (val->type == YAML_SEQUENCE_NODE) {
		n = (unsigned)(val->data.sequence.items.top - val->data.sequence.items.start);
		if (n < 1 || n > VM_MAX_VCPUS)
			return fail(c, line_of(key), path, NULL,
				    "%u entries: a VM has 1..%d vCPUs", n, VM_MAX_VCPUS);
		vm->vcpus = calloc(n, sizeof(*vm->vcpus));
		if (!vm->vcpus)
			return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
		vm->nr_vcpus = n;
		for (i = 0, item = val->data.sequence.items.start; i < n; i++, item++) {
			entry = node_at(c, *item);
			key_index(kpath, path, i);
			memset(&spec, 0, sizeof(spec));
			rc = walk(c, entry, line_of(entry), kpath, &vcpu_schema, &spec, &s);
			if (rc)
				return rc;
			rc = check_sched(c, kpath, line_of(entry), &spec, s.key[VCPU_POLICY],
					 s.key[VCPU_PRIORITY], s.val[VCPU_PRIORITY]);
			if (rc)
				return rc;
			set_sched(&vm->vcpus[i], &spec);
			if (s.val[VCPU_CPUS]) {
				char cpath[KEY_LEN];

				key_join(cpath, kpath, "cpus");
				set_loc(&vm->vcpus[i].loc, line_of(s.key[VCPU_CPUS]), cpath);
			} else {
				set_loc(&vm->vcpus[i].loc, line_of(entry), kpath);
			}
		}
		return 0;
	}

	rc = walk(c, val, line_of(key), path, &vcpus_schema, &spec, &s);
	if (rc)
		return rc;
	rc = check_sched(c, path, line_of(key), &spec, s.key[VCPUS_POLICY], s.key[VCPUS_PRIORITY],
			 s.val[VCPUS_PRIORITY]);
	if (rc)
		return rc;
	pin = s.val[VCPUS_PIN];
	key_join(kpath, path, "pin");
	if (pin && s.val[VCPUS_CPUS])
		return fail(c, line_of(s.key[VCPUS_PIN]), kpath, NULL,
			    "use either 'cpus' (one set shared by all vCPUs, line %u) or 'pin' "
			    "(one set per vCPU), not both", line_of(s.key[VCPUS_CPUS]));
	if (pin) {
		n = (unsigned)(pin->data.sequence.items.top - pin->data.sequence.items.start);
		if (n != spec.count)
			return fail(c, line_of(s.key[VCPUS_PIN]), kpath, NULL,
				    "%u %s for count %u: pin needs one cpu list per vCPU",
				    n, n == 1 ? "entry" : "entries", spec.count);
	}
	vm->vcpus = calloc(spec.count, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
	vm->nr_vcpus = spec.count;
	for (i = 0; i < spec.count; i++) {
		set_sched(&vm->vcpus[i], &spec);
		if (pin) {
			char ppath[KEY_LEN];

			entry = node_at(c, pin->data.sequence.items.start[i]);
			key_index(ppath, kpath, i);
			rc = convert(c, &pin_field, line_of(entry), ppath, entry, &vm->vcpus[i]);
			if (rc)
				return rc;
			set_loc(&vm->vcpus[i].loc, line_of(entry), ppath);
		} else if (s.val[VCPUS_CPUS]) {
			char cpath[KEY_LEN];

			key_join(cpath, path, "cpus");
			set_loc(&vm->vcpus[i].loc, line_of(s.key[VCPUS_CPUS]), cpath);
		} else {
			set_loc(&vm->vcpus[i].loc, line_of(key), path);
		}
	}
	return 0;
}

/* ---- sections ------------------------------------------------------------------------------ */

/* `memory: 1G` or `memory: {size, page_size, numa_node, strict, prefault, mlock, fallback_4k}`. */
static int parse_memory(struct ctx *c, struct plan_memory *m, const yaml_node_t *key,
			yaml_node_t *val, const char *vm_path)
{
	char path[KEY_LEN], kpath[KEY_LEN];
	const yaml_node_t *size_key = key, *size_val = val;
	uint64_t page;
	struct seen s;
	int rc;

	key_join(path, vm_path, "memory");
	m->node = -1;
	memset(&s, 0, sizeof(s));
	if (val->type == YAML_SCALAR_NODE) {
		rc = convert(c, &memory_size_field, line_of(key), path, val, m);
		snprintf(kpath, sizeof(kpath), "%s", path);
	} else if (val->type == YAML_MAPPING_NODE) {
		rc = walk(c, val, line_of(key), path, &memory_schema, m, &s);
		size_key = s.key[MEM_SIZE];
		size_val = s.val[MEM_SIZE];
		key_join(kpath, path, "size");
	} else {
		rc = wrong_type(c, line_of(key), path, val, "a size such as 1G or a mapping (size, "
				"page_size, numa_node, strict, prefault, mlock, fallback_4k)");
	}
	if (rc)
		return rc;

	page = page_size__bytes(m->page_size);
	if (m->size < VM_MIN_MEMORY)
		return fail(c, line_of(size_key), kpath, size_val, "too small: at least %lluM",
			    (unsigned long long)(VM_MIN_MEMORY >> 20));
	if (m->size % page)
		return fail(c, line_of(size_key), kpath, size_val,
			    "not a multiple of the %s page size", page_size__name(m->page_size));
	/* Hugepages come from a reserved pool: touch them all now, so a short pool fails at start. */
	if (!s.val[MEM_PREFAULT])
		m->prefault = m->page_size != PAGE_4K;
	set_loc(&m->loc, line_of(key), path);
	return 0;
}

static bool valid_name(const char *s)
{
	const char *q;

	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
		return false;
	for (q = s; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' || *q == '.'))
			return false;
	return true;
}

/* A user or group: a name (letters, digits, '_', '-', '.') or a decimal id. */
static bool valid_account(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* Fails on a path that plan__unsafe_char refuses. */
static int check_safe_path(struct ctx *c, const yaml_node_t *key, const yaml_node_t *val,
			   const char *kpath, const char *path)
{
	const char *bad = plan__unsafe_char(path);
	char what[24];

	if (!bad)
		return 0;
	if ((unsigned char)*bad < 0x20 || (unsigned char)*bad >= 0x7f)
		snprintf(what, sizeof(what), "byte 0x%02x", (unsigned char)*bad);
	else
		snprintf(what, sizeof(what), "character '%c'", *bad);
	return fail(c, line_of(key), kpath, val,
		    "%s at offset %zu is not allowed in a socket path (letters, digits, '/', '.', "
		    "'_', '-', '+'): the path reaches DPDK's device arguments, where ',' or '=' "
		    "would add arguments", what, (size_t)(bad - path));
}

/* Fails on a user or group that valid_account refuses. */
static int check_account(struct ctx *c, const yaml_node_t *key, const yaml_node_t *val,
			 const char *kpath, const char *name)
{
	if (!*name || valid_account(name))
		return 0;
	return fail(c, line_of(key), kpath, val,
		    "not a user or group: a name (letters, digits, '_', '-', '.') or a decimal id");
}

static int vm_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plan_vm *)a)->name, ((const struct plan_vm *)b)->name);
}

static int nic_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plan_nic *)a)->name, ((const struct plan_nic *)b)->name);
}

static int nic_socket_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plan_nic *)a)->socket, ((const struct plan_nic *)b)->socket);
}

static int nic_mac_cmp(const void *a, const void *b)
{
	return memcmp(((const struct plan_nic *)a)->mac, ((const struct plan_nic *)b)->mac,
		      sizeof(((const struct plan_nic *)a)->mac));
}

/*
 * Adds `obj` to the tree at `root` ordered by `cmp`. Returns the object
 * already there that compares equal (an earlier duplicate), `obj` itself if it
 * is new, NULL when out of memory.
 */
static const void *add_unique(void **root, const void *obj, __compar_fn_t cmp)
{
	void **node = tsearch(obj, root, cmp);

	return node ? *node : NULL;
}

static void keep_object(void *obj)
{
	(void)obj;
}

/* Drops the uniqueness trees (the objects stay: they belong to the plan). */
static void release_trees(struct ctx *c)
{
	tdestroy(c->vm_names, keep_object);
	tdestroy(c->nic_sockets, keep_object);
	tdestroy(c->nic_macs, keep_object);
}

/*
 * NIC `nic` (at `kpath`, its keys in `s`) against those before it: its name
 * in this VM (tree `names`), its socket and MAC in the whole plan.
 */
static int nic_unique(struct ctx *c, void **names, const struct plan_nic *nic,
		      const struct seen *s, const char *kpath)
{
	const struct plan_nic *other;
	char fpath[KEY_LEN], at[700];

	other = add_unique(names, nic, nic_name_cmp);
	if (other && other != nic) {
		key_join(fpath, kpath, "name");
		return fail(c, line_of(s->key[NIC_NAME]), fpath, s->val[NIC_NAME],
			    "duplicate NIC name in this VM (first at %s, %s)",
			    given_at(c, other->loc.line, at, sizeof(at)), other->loc.key);
	}
	if (other)
		other = add_unique(&c->nic_sockets, nic, nic_socket_cmp);
	if (other && other != nic) {
		key_join(fpath, kpath, "socket");
		return fail(c, line_of(s->key[NIC_SOCKET]), fpath, s->val[NIC_SOCKET],
			    "socket already used by %s (%s)", other->loc.key,
			    given_at(c, other->loc.line, at, sizeof(at)));
	}
	if (other && nic->mac_set)
		other = add_unique(&c->nic_macs, nic, nic_mac_cmp);
	if (other && other != nic) {
		key_join(fpath, kpath, "mac");
		return fail(c, line_of(s->key[NIC_MAC]), fpath, s->val[NIC_MAC],
			    "MAC address already used by %s (%s)", other->loc.key,
			    given_at(c, other->loc.line, at, sizeof(at)));
	}
	if (!other)
		return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
	return 0;
}

/* `nics: [{name, socket, mac, queues, mode, backend_user, stats_socket}]`: vhost-user ports. */
static int parse_nics(struct ctx *c, struct plan_vm *vm, yaml_node_t *val, const char *vm_path)
{
	char path[KEY_LEN], kpath[KEY_LEN], fpath[KEY_LEN];
	yaml_node_item_t *item;
	void *names = NULL;        /* this VM's NICs by name */
	struct plan_nic *nic;
	yaml_node_t *entry;
	struct seen s;
	unsigned i, n;
	int rc = 0;

	key_join(path, vm_path, "nics");
	n = (unsigned)(val->data.sequence.items.top - val->data.sequence.items.start);
	if (!n)
		return 0;
	vm->nics = calloc(n, sizeof(*vm->nics));
	if (!vm->nics)
		return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
	for (i = 0, item = val->data.sequence.items.start; i < n && !rc; i++, item++) {
		entry = node_at(c, *item);
		key_index(kpath, path, i);
		nic = &vm->nics[i];
		nic->queues = 1;
		vm->nr_nics = i + 1;
		rc = walk(c, entry, line_of(entry), kpath, &nic_schema, nic, &s);
		if (rc)
			break;
		set_loc(&nic->loc, line_of(entry), kpath);
		nic->mac_set = s.val[NIC_MAC] != NULL;
		if (nic->queue_size & (nic->queue_size - 1)) {
			key_join(fpath, kpath, "queue_size");
			rc = fail(c, line_of(s.key[NIC_QUEUE_SIZE]), fpath, s.val[NIC_QUEUE_SIZE],
				  "not a power of two (%u, %u, ... %u: split rings are)",
				  VM_NIC_QUEUE_SIZE_MIN, 2 * VM_NIC_QUEUE_SIZE_MIN,
				  VM_NIC_QUEUE_SIZE_MAX);
			break;
		}

		key_join(fpath, kpath, "socket");
		rc = check_safe_path(c, s.key[NIC_SOCKET], s.val[NIC_SOCKET], fpath, nic->socket);
		if (rc)
			break;
		key_join(fpath, kpath, "backend_user");
		rc = check_account(c, s.key[NIC_BACKEND_USER], s.val[NIC_BACKEND_USER], fpath,
				   nic->backend_user);
		if (rc)
			break;
		key_join(fpath, kpath, "name");
		if (!valid_name(nic->name)) {
			rc = fail(c, line_of(s.key[NIC_NAME]), fpath, s.val[NIC_NAME],
				  "invalid name: letters, digits, '-', '_', '.', starting with a "
				  "letter or digit");
			break;
		}
		rc = nic_unique(c, &names, nic, &s, kpath);
	}
	tdestroy(names, keep_object);
	return rc;
}

static int disk_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plan_disk *)a)->name, ((const struct plan_disk *)b)->name);
}

/* `io: {cpus, policy, priority}`: where a local disk's I/O thread runs. */
static int parse_disk_io(struct ctx *c, struct plan_disk *d, const struct seen *s, const char *kpath)
{
	char path[KEY_LEN], cpath[KEY_LEN];
	struct vcpus_spec spec = { 0 };
	struct seen io;
	int rc;

	key_join(path, kpath, "io");
	rc = walk(c, s->val[DISK_IO], line_of(s->key[DISK_IO]), path, &io_schema, &spec, &io);
	if (!rc)
		rc = check_sched(c, path, line_of(s->key[DISK_IO]), &spec, io.key[VCPU_POLICY],
				 io.key[VCPU_PRIORITY], io.val[VCPU_PRIORITY]);
	if (rc)
		return rc;
	set_sched(&d->io, &spec);
	d->io_cpus_set = io.val[VCPU_CPUS] != NULL;
	if (d->io_cpus_set) {
		key_join(cpath, path, "cpus");
		set_loc(&d->io.loc, line_of(io.key[VCPU_CPUS]), cpath);
	} else {
		set_loc(&d->io.loc, line_of(s->key[DISK_IO]), path);
	}
	return 0;
}

/* Fails when key `k` of a disk was given but belongs to the other kind of disk. */
static int disk_key_of_other_kind(struct ctx *c, const struct seen *s, unsigned k,
				  const char *kpath, const char *why)
{
	char fpath[KEY_LEN];

	if (!s->key[k])
		return 0;
	key_join(fpath, kpath, disk_fields[k].name);
	return fail(c, line_of(s->key[k]), fpath, s->val[k], "%s", why);
}

/* One disk's keys together: path or socket, what only one kind takes, name, serial, io. */
static int check_disk(struct ctx *c, struct plan_disk *d, unsigned index, const struct seen *s,
		      const char *kpath)
{
	char fpath[KEY_LEN], what[24];
	const char *bad;
	int rc;

	if (s->val[DISK_PATH] && s->val[DISK_SOCKET]) {
		key_join(fpath, kpath, "socket");
		return fail(c, line_of(s->key[DISK_SOCKET]), fpath, s->val[DISK_SOCKET],
			    "use either 'path' (an image rtvmm serves) or 'socket' (a vhost-user-blk "
			    "backend), not both");
	}
	if (!s->val[DISK_PATH] && !s->val[DISK_SOCKET]) {
		key_join(fpath, kpath, "path");
		return fail(c, d->loc.line, fpath, NULL, "missing: every disk needs 'path' (a raw "
			    "image file or block device) or 'socket' (a vhost-user-blk backend)");
	}
	d->kind = s->val[DISK_SOCKET] ? PLAN_DISK_VHOST_USER : PLAN_DISK_LOCAL;
	key_join(fpath, kpath, d->kind == PLAN_DISK_LOCAL ? "path" : "socket");
	set_loc(&d->image_loc, line_of(s->key[d->kind == PLAN_DISK_LOCAL ? DISK_PATH : DISK_SOCKET]),
		fpath);
	if (d->kind == PLAN_DISK_LOCAL) {
		rc = disk_key_of_other_kind(c, s, DISK_MODE, kpath, "only a vhost-user disk "
					    "('socket') connects or listens; this one has 'path'");
		if (!rc)
			rc = disk_key_of_other_kind(c, s, DISK_BACKEND_USER, kpath, "only a vhost-user "
						    "disk ('socket') has a backend; this one has 'path'");
	} else {
		rc = disk_key_of_other_kind(c, s, DISK_SERIAL, kpath, "a vhost-user disk's serial "
					    "comes from its backend; 'serial' is for a disk with 'path'");
		if (!rc)
			rc = disk_key_of_other_kind(c, s, DISK_IO, kpath, "a vhost-user disk's I/O runs "
						    "in its backend; 'io' places the I/O thread of a disk "
						    "with 'path'");
	}
	if (rc)
		return rc;

	key_join(fpath, kpath, "name");
	if (!s->val[DISK_NAME])
		snprintf(d->name, sizeof(d->name), "disk%u", index);
	else if (!valid_name(d->name))
		return fail(c, line_of(s->key[DISK_NAME]), fpath, s->val[DISK_NAME],
			    "invalid name: letters, digits, '-', '_', '.', starting with a letter or "
			    "digit");
	key_join(fpath, kpath, "backend_user");
	rc = check_account(c, s->key[DISK_BACKEND_USER], s->val[DISK_BACKEND_USER], fpath,
			   d->backend_user);
	if (rc)
		return rc;
	bad = plan__unsafe_char(d->serial);
	if (bad) {
		key_join(fpath, kpath, "serial");
		if ((unsigned char)*bad < 0x20 || (unsigned char)*bad >= 0x7f)
			snprintf(what, sizeof(what), "byte 0x%02x", (unsigned char)*bad);
		else
			snprintf(what, sizeof(what), "character '%c'", *bad);
		return fail(c, line_of(s->key[DISK_SERIAL]), fpath, s->val[DISK_SERIAL],
			    "%s at offset %zu is not allowed in a serial (letters, digits, '/', '.', "
			    "'_', '-', '+')", what, (size_t)(bad - d->serial));
	}
	if (s->val[DISK_IO])
		return parse_disk_io(c, d, s, kpath);
	return 0;
}

/* `disks: [{name, path | socket, readonly, serial, queues, mode, backend_user, io}]`. */
static int parse_disks(struct ctx *c, struct plan_vm *vm, const yaml_node_t *key, yaml_node_t *val,
		       const char *vm_path)
{
	char path[KEY_LEN], kpath[KEY_LEN], fpath[KEY_LEN], at[700];
	const struct plan_disk *other;
	yaml_node_item_t *item;
	void *names = NULL;        /* this VM's disks by name */
	struct plan_disk *d;
	yaml_node_t *entry;
	struct seen s;
	unsigned i, n;
	int rc = 0;

	key_join(path, vm_path, "disks");
	n = (unsigned)(val->data.sequence.items.top - val->data.sequence.items.start);
	if (!n)
		return 0;
	if (n > VM_MAX_DISKS)
		return fail(c, line_of(key), path, NULL, "%u disks: a VM has at most %d", n,
			    VM_MAX_DISKS);
	vm->disks = calloc(n, sizeof(*vm->disks));
	if (!vm->disks)
		return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
	for (i = 0, item = val->data.sequence.items.start; i < n && !rc; i++, item++) {
		entry = node_at(c, *item);
		key_index(kpath, path, i);
		d = &vm->disks[i];
		d->queues = 1;
		vm->nr_disks = i + 1;
		rc = walk(c, entry, line_of(entry), kpath, &disk_schema, d, &s);
		if (rc)
			break;
		set_loc(&d->loc, line_of(entry), kpath);
		rc = check_disk(c, d, i, &s, kpath);
		if (rc)
			break;
		other = add_unique(&names, d, disk_name_cmp);
		if (!other) {
			rc = err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
		} else if (other != d) {
			key_join(fpath, kpath, "name");
			rc = fail(c, s.key[DISK_NAME] ? line_of(s.key[DISK_NAME]) : d->loc.line, fpath,
				  s.val[DISK_NAME], "duplicate disk name in this VM (first at %s, %s)",
				  given_at(c, other->loc.line, at, sizeof(at)), other->loc.key);
		}
	}
	tdestroy(names, keep_object);
	return rc;
}

/* `serial: tty | off | file=PATH | socket=PATH`: where COM1 goes (cloud-hypervisor's words). */
static int parse_serial(struct ctx *c, struct plan_serial *ser, const yaml_node_t *key,
			const yaml_node_t *val, const char *vm_path)
{
	static const char expect[] = "expected tty, off, file=PATH or socket=PATH";
	struct sockaddr_un sa;
	char kpath[KEY_LEN];
	const char *v = scalar(val), *p;
	yaml_node_t arg = *val;
	size_t dl;
	int rc;

	key_join(kpath, vm_path, "serial");
	set_loc(&ser->loc, line_of(key), kpath);
	if (strlen(v) != val->data.scalar.length)
		return fail(c, line_of(key), kpath, NULL, "value contains a NUL character");
	if (!strcmp(v, "tty") || !strcmp(v, "off")) {
		ser->mode = v[0] == 't' ? PLAN_SERIAL_TTY : PLAN_SERIAL_OFF;
		return 0;
	}
	if (!strncmp(v, "file=", 5))
		ser->mode = PLAN_SERIAL_FILE;
	else if (!strncmp(v, "socket=", 7))
		ser->mode = PLAN_SERIAL_SOCKET;
	else
		return fail(c, line_of(key), kpath, val, "%s", expect);
	p = strchr(v, '=') + 1;
	if (!*p)
		return fail(c, line_of(key), kpath, val, "%s: the path is empty", expect);
	/* The path alone, resolved against the plan's directory like every other path. */
	arg.data.scalar.value = (yaml_char_t *)p;
	arg.data.scalar.length = strlen(p);
	rc = set_path(c, line_of(key), kpath, &arg, ser->path, sizeof(ser->path));
	if (rc)
		return rc;
	dl = strlen(ser->path);
	if (ser->mode == PLAN_SERIAL_SOCKET && dl >= sizeof(sa.sun_path))
		return fail(c, line_of(key), kpath, val, "socket path of %zu bytes%s: a unix socket's "
			    "path has at most %zu", dl, p[0] == '/' ? "" : " after prefixing the plan's "
			    "directory", sizeof(sa.sun_path) - 1);
	if (ser->path[dl - 1] == '/')
		return fail(c, line_of(key), kpath, val, "the path names a directory: give a %s name",
			    ser->mode == PLAN_SERIAL_FILE ? "file" : "socket");
	return 0;
}

/* One name of `disable_exits`, added to *exits; a name given twice or unknown fails. */
static int add_exit(struct ctx *c, unsigned line, const char *kpath, const yaml_node_t *val,
		    const char *name, size_t len, unsigned *exits)
{
	unsigned bit;

	for (bit = PLAN_EXIT_MWAIT; bit <= PLAN_EXIT_CSTATE; bit <<= 1) {
		if (strlen(plan_exit__name(bit)) != len || strncasecmp(name, plan_exit__name(bit), len))
			continue;
		if (*exits & bit)
			return fail(c, line, kpath, val, "'%s' listed twice", plan_exit__name(bit));
		*exits |= bit;
		return 0;
	}
	return fail(c, line, kpath, val, "'%.*s': expected hlt, pause, mwait or cstate (a list, "
		    "or one value with commas: hlt,pause)", (int)len, name);
}

/*
 * `disable_exits: [hlt, pause, mwait, cstate]` (or "hlt,pause", as the command line gives it):
 * what the guest runs without exiting to KVM (KVM_CAP_X86_DISABLE_EXITS).
 */
static int parse_disable_exits(struct ctx *c, struct plan_vm *vm, const yaml_node_t *key,
			       yaml_node_t *val, const char *vm_path)
{
	char kpath[KEY_LEN];
	yaml_node_item_t *item;
	const char *s, *end;
	int rc;

	key_join(kpath, vm_path, "disable_exits");
	set_loc(&vm->disable_exits_loc, line_of(key), kpath);
	if (val->type == YAML_SCALAR_NODE) {
		s = scalar(val);
		if (strlen(s) != val->data.scalar.length)
			return fail(c, line_of(key), kpath, NULL, "value contains a NUL character");
		for (;;) {
			end = strchr(s, ',');
			if (!end)
				end = s + strlen(s);
			rc = add_exit(c, line_of(key), kpath, val, s, (size_t)(end - s),
				      &vm->disable_exits);
			if (rc || !*end)
				return rc;
			s = end + 1;
		}
	}
	if (val->type != YAML_SEQUENCE_NODE)
		return wrong_type(c, line_of(key), kpath, val, "a list of hlt, pause, mwait, cstate");
	for (item = val->data.sequence.items.start; item < val->data.sequence.items.top; item++) {
		yaml_node_t *n = node_at(c, *item);

		if (n->type != YAML_SCALAR_NODE)
			return wrong_type(c, line_of(n), kpath, n, "hlt, pause, mwait or cstate");
		if (strlen(scalar(n)) != n->data.scalar.length)
			return fail(c, line_of(n), kpath, NULL, "value contains a NUL character");
		rc = add_exit(c, line_of(n), kpath, n, scalar(n), n->data.scalar.length,
			      &vm->disable_exits);
		if (rc)
			return rc;
	}
	return 0;
}

/* One VM: a `vms:` entry (path "vms[i]") or the `vm:` mapping (path "vm"). */
static int parse_vm(struct ctx *c, struct plan_vm *vm, yaml_node_t *node, unsigned line,
		    const char *path)
{
	char kpath[KEY_LEN];
	const struct plan_vm *v;
	struct seen s;
	int rc;

	rc = walk(c, node, line, path, &vm_schema, vm, &s);
	if (rc)
		return rc;
	set_loc(&vm->loc, line, path);
	if (!s.val[VM_SHUTDOWN_GRACE])
		vm->shutdown_grace_s = PLAN_DEFAULT_SHUTDOWN_GRACE_S;
	if (s.val[VM_HALT_POLL]) {
		key_join(kpath, path, "halt_poll_ns");
		set_loc(&vm->halt_poll_loc, line_of(s.key[VM_HALT_POLL]), kpath);
		vm->halt_poll_set = true;
	}
	if (s.val[VM_DIRTY_RING]) {
		key_join(kpath, path, "dirty_ring");
		set_loc(&vm->dirty_ring_loc, line_of(s.key[VM_DIRTY_RING]), kpath);
		vm->dirty_ring_set = true;
		if (vm->dirty_ring && (vm->dirty_ring < PLAN_MIN_DIRTY_RING ||
				       (vm->dirty_ring & (vm->dirty_ring - 1))))
			return fail(c, line_of(s.key[VM_DIRTY_RING]), kpath, s.val[VM_DIRTY_RING],
				    "KVM's dirty ring takes a power of two from %u to %u entries "
				    "per vCPU, or 0 for its dirty bitmap", PLAN_MIN_DIRTY_RING,
				    PLAN_MAX_DIRTY_RING);
	}
	if (s.val[VM_DISABLE_EXITS]) {
		rc = parse_disable_exits(c, vm, s.key[VM_DISABLE_EXITS], s.val[VM_DISABLE_EXITS], path);
		if (rc)
			return rc;
	}

	key_join(kpath, path, "name");
	if (!valid_name(vm->name))
		return fail(c, line_of(s.key[VM_NAME]), kpath, s.val[VM_NAME],
			    "invalid name: letters, digits, '-', '_', '.', starting with a letter "
			    "or digit");
	v = add_unique(&c->vm_names, vm, vm_name_cmp);
	if (!v)
		return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
	if (v != vm)
		return fail(c, line_of(s.key[VM_NAME]), kpath, s.val[VM_NAME],
			    "duplicate VM name (first defined at line %u, %s)",
			    v->loc.line, v->loc.key);

	rc = parse_memory(c, &vm->memory, s.key[VM_MEMORY], s.val[VM_MEMORY], path);
	if (rc)
		return rc;
	rc = parse_vcpus(c, vm, s.key[VM_VCPUS], s.val[VM_VCPUS], path);
	if (rc)
		return rc;
	c->nr_vcpus += vm->nr_vcpus;
	if (c->nr_vcpus > PLAN_MAX_VCPUS) {
		key_join(kpath, path, "vcpus");
		return fail(c, line_of(s.key[VM_VCPUS]), kpath, NULL,
			    "%u vCPUs in the plan's VMs up to this one: a plan has at most %d in all",
			    c->nr_vcpus, PLAN_MAX_VCPUS);
	}

	/* Emulator threads (main loop, console, I/O) stay SCHED_OTHER, pinned if asked. */
	key_join(kpath, path, "emulator_cpus");
	set_loc(&vm->emulator.loc, s.val[VM_EMULATOR] ? line_of(s.key[VM_EMULATOR]) : 0, kpath);
	vm->emulator.policy = RT_POLICY_OTHER;

	if (s.val[VM_NICS]) {
		rc = parse_nics(c, vm, s.val[VM_NICS], path);
		if (rc)
			return rc;
	}
	if (s.val[VM_SERIAL]) {
		rc = parse_serial(c, &vm->serial, s.key[VM_SERIAL], s.val[VM_SERIAL], path);
		if (rc)
			return rc;
	}
	if (s.val[VM_DISKS])
		return parse_disks(c, vm, s.key[VM_DISKS], s.val[VM_DISKS], path);
	return 0;
}

static int parse_host(struct ctx *c, struct plan_host *h, const yaml_node_t *key, yaml_node_t *val)
{
	struct plan_dataplane *dp = &h->dataplane;
	struct vcpus_spec spec = { 0 };
	struct seen s, d;
	int rc;

	rc = walk(c, val, line_of(key), "host", &host_schema, h, &s);
	if (rc)
		return rc;
	h->housekeeping_set = s.val[HOST_HOUSEKEEPING] != NULL;
	if (h->housekeeping_set)
		set_loc(&h->loc, line_of(s.key[HOST_HOUSEKEEPING]), "host.housekeeping_cpus");
	else
		set_loc(&h->loc, line_of(key), "host");

	rc = check_account(c, s.key[HOST_USER], s.val[HOST_USER], "host.user", h->user);
	if (!rc)
		rc = check_account(c, s.key[HOST_GROUP], s.val[HOST_GROUP], "host.group", h->group);
	if (!rc && s.val[HOST_RUN_DIR])
		rc = check_safe_path(c, s.key[HOST_RUN_DIR], s.val[HOST_RUN_DIR], "host.run_dir",
				     h->run_dir);
	if (rc)
		return rc;
	if (s.val[HOST_GROUP] && !s.val[HOST_USER])
		return fail(c, line_of(s.key[HOST_GROUP]), "host.group", s.val[HOST_GROUP],
			    "a group without host.user: the tools drop to a user and its group");
	if (s.val[HOST_USER])
		set_loc(&h->user_loc, line_of(s.key[HOST_USER]), "host.user");
	if (!s.val[HOST_RUN_DIR])
		snprintf(h->run_dir, sizeof(h->run_dir), "%s", TRUST_DEFAULT_RUN_DIR);

	dp->main_core = -1;
	dp->node = -1;
	if (!s.val[HOST_DATAPLANE])
		return 0;
	rc = walk(c, s.val[HOST_DATAPLANE], line_of(s.key[HOST_DATAPLANE]), "host.dataplane",
		  &dataplane_schema, dp, &d);
	if (rc)
		return rc;
	spec.policy = dp->policy;
	spec.priority = dp->priority;
	rc = check_sched(c, "host.dataplane", line_of(s.key[HOST_DATAPLANE]), &spec,
			 d.key[DP_POLICY], d.key[DP_PRIORITY], d.val[DP_PRIORITY]);
	if (rc)
		return rc;
	dp->present = true;
	set_loc(&dp->loc, line_of(d.key[DP_CORES]), "host.dataplane.cores");
	if (d.key[DP_POLICY])
		set_loc(&dp->sched_loc, line_of(d.key[DP_POLICY]), "host.dataplane.policy");
	return 0;
}

static int parse_plan(struct ctx *c, yaml_node_t *root)
{
	struct plan *p = c->p;
	yaml_node_item_t *item;
	char path[KEY_LEN];
	yaml_node_t *vms, *entry;
	struct seen s;
	unsigned i, n;
	int rc;

	rc = walk(c, root, line_of(root), "", &top_schema, NULL, &s);
	if (rc)
		return rc;
	p->host.dataplane.main_core = -1;
	p->host.dataplane.node = -1;
	snprintf(p->host.run_dir, sizeof(p->host.run_dir), "%s", TRUST_DEFAULT_RUN_DIR);
	if (s.key[TOP_VMS] && s.key[TOP_VM])
		return fail(c, line_of(s.key[TOP_VM]), "vm", NULL,
			    "use either 'vm' (one VM) or 'vms' (a list, line %u), not both",
			    line_of(s.key[TOP_VMS]));
	if (!s.val[TOP_HOST] && !s.val[TOP_VMS] && !s.val[TOP_VM])
		return fail(c, line_of(root), "", NULL,
			    "nothing planned: expected 'vms' (a list of VMs), 'vm' (one VM) or 'host'");
	if (s.val[TOP_HOST]) {
		rc = parse_host(c, &p->host, s.key[TOP_HOST], s.val[TOP_HOST]);
		if (rc)
			return rc;
	}

	if (s.val[TOP_VM]) {
		p->vms = calloc(1, sizeof(*p->vms));
		if (!p->vms)
			return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
		p->nr_vms = 1;
		return parse_vm(c, &p->vms[0], s.val[TOP_VM], line_of(s.key[TOP_VM]), "vm");
	}
	vms = s.val[TOP_VMS];
	if (!vms)
		return 0;
	n = (unsigned)(vms->data.sequence.items.top - vms->data.sequence.items.start);
	if (!n)
		return 0;
	p->vms = calloc(n, sizeof(*p->vms));
	if (!p->vms)
		return err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
	for (i = 0, item = vms->data.sequence.items.start; i < n; i++, item++) {
		entry = node_at(c, *item);
		key_index(path, "vms", i);
		p->nr_vms = i + 1;
		rc = parse_vm(c, &p->vms[i], entry, line_of(entry), path);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- the file ------------------------------------------------------------------------------ */

/* libyaml's reader gives a byte offset, not a line: count the newlines before it. */
static unsigned line_at_offset(const unsigned char *buf, size_t len, size_t offset)
{
	unsigned line = 1;
	size_t i;

	for (i = 0; i < offset && i < len; i++)
		line += buf[i] == '\n';
	return line;
}

static int syntax_error(struct ctx *c, yaml_parser_t *ps, const unsigned char *buf, size_t len)
{
	switch (ps->error) {
	case YAML_MEMORY_ERROR:
		return err__set(c->e, -ENOMEM, "%s: out of memory reading YAML", c->file);
	case YAML_READER_ERROR:
		return err__set(c->e, -EINVAL, "%s:%u: not valid YAML text: %s (byte %zu, value %#x)",
				c->file, line_at_offset(buf, len, ps->problem_offset), ps->problem,
				ps->problem_offset, (unsigned)ps->problem_value);
	default:
		if (ps->context)
			return err__set(c->e, -EINVAL,
					"%s:%u: syntax error: %s at column %u (%s at line %u)",
					c->file, (unsigned)ps->problem_mark.line + 1,
					ps->problem ? ps->problem : "?",
					(unsigned)ps->problem_mark.column + 1, ps->context,
					(unsigned)ps->context_mark.line + 1);
		return err__set(c->e, -EINVAL, "%s:%u: syntax error: %s at column %u", c->file,
				(unsigned)ps->problem_mark.line + 1, ps->problem ? ps->problem : "?",
				(unsigned)ps->problem_mark.column + 1);
	}
}

static int too_large(struct ctx *c, const char *size)
{
	return err__set(c->e, -EFBIG, "%s: too large (%s): a plan file is at most %u MiB",
			c->file, size, PLAN_MAX_BYTES >> 20);
}

/*
 * The whole file in *buf (*len bytes), refused above PLAN_MAX_BYTES: a regular
 * file by its size before reading, anything else (a pipe) once it gets there.
 */
static int read_plan(struct ctx *c, unsigned char **buf, size_t *len)
{
	size_t n = 0, cap = 64 << 10, got;
	unsigned char *b = NULL, *bigger;
	char size[32];
	struct stat st;
	FILE *f;
	int rc;

	f = fopen(c->file, "rb");
	if (!f) {
		rc = -errno;
		return err__set(c->e, rc, "%s: cannot open: %s", c->file, strerror(-rc));
	}
	if (!fstat(fileno(f), &st) && S_ISREG(st.st_mode)) {
		if (st.st_size > PLAN_MAX_BYTES) {
			snprintf(size, sizeof(size), "%lld bytes", (long long)st.st_size);
			rc = too_large(c, size);
			goto err_close;
		}
		cap = (size_t)st.st_size + 1;
	}
	for (;;) {
		if (!b || n == cap) {
			if (b && cap > PLAN_MAX_BYTES) {
				snprintf(size, sizeof(size), "more than %u bytes", PLAN_MAX_BYTES);
				rc = too_large(c, size);
				goto err_free;
			}
			if (b)
				cap = cap * 2 > PLAN_MAX_BYTES + 1 ? PLAN_MAX_BYTES + 1 : cap * 2;
			bigger = realloc(b, cap);
			if (!bigger) {
				rc = err__set(c->e, -ENOMEM, "%s: out of memory", c->file);
				goto err_free;
			}
			b = bigger;
		}
		got = fread(b + n, 1, cap - n, f);
		n += got;
		if (!got)
			break;
	}
	if (ferror(f)) {
		rc = err__set(c->e, -EIO, "%s: cannot read", c->file);
		goto err_free;
	}
	fclose(f);
	*buf = b;
	*len = n;
	return 0;

err_free:
	free(b);
err_close:
	fclose(f);
	return rc;
}
/* The anchor a node event defines, or NULL. */
static const yaml_char_t *event_anchor(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return ev->data.scalar.anchor;
	case YAML_SEQUENCE_START_EVENT:
		return ev->data.sequence_start.anchor;
	case YAML_MAPPING_START_EVENT:
		return ev->data.mapping_start.anchor;
	default:
		return NULL;
	}
}

/*
 * A first pass over libyaml's events, before it builds a tree: refuses
 * nesting deeper than PLAN_MAX_DEPTH (the scanner's work per token grows with
 * the open flow collections, so a deep file costs its depth squared) and more
 * than PLAN_MAX_ANCHORS anchors (the loader finds each alias's anchor by a
 * linear search). Syntax errors are reported here too.
 */
static int check_shape(struct ctx *c, const unsigned char *buf, size_t len)
{
	unsigned depth = 0, anchors = 0;
	yaml_event_type_t type;
	yaml_parser_t ps;
	yaml_event_t ev;
	int rc = 0;

	if (!yaml_parser_initialize(&ps))
		return err__set(c->e, -ENOMEM, "%s: cannot initialise the YAML parser", c->file);
	yaml_parser_set_input_string(&ps, buf, len);
	do {
		if (!yaml_parser_parse(&ps, &ev)) {
			rc = syntax_error(c, &ps, buf, len);
			break;
		}
		type = ev.type;
		if (event_anchor(&ev) && ++anchors > PLAN_MAX_ANCHORS)
			rc = err__set(c->e, -EINVAL, "%s:%u: more than %d YAML anchors (&NAME): a "
				      "plan has at most %d", c->file,
				      (unsigned)ev.start_mark.line + 1, PLAN_MAX_ANCHORS,
				      PLAN_MAX_ANCHORS);
		if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
			if (++depth > PLAN_MAX_DEPTH)
				rc = err__set(c->e, -EINVAL, "%s:%u: nested deeper than %d levels of "
					      "lists and mappings: a plan needs at most 5",
					      c->file, (unsigned)ev.start_mark.line + 1,
					      PLAN_MAX_DEPTH);
		} else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
			depth--;
		}
		yaml_event_delete(&ev);
	} while (!rc && type != YAML_STREAM_END_EVENT);
	yaml_parser_delete(&ps);
	return rc;
}

/* A VM without emulator_cpus runs its non-vCPU threads on the host's housekeeping cpus. */
static void default_emulator_cpus(struct plan *p)
{
	unsigned i;

	if (!p->host.housekeeping_set)
		return;
	for (i = 0; i < p->nr_vms; i++) {
		struct plan_sched *em = &p->vms[i].emulator;

		if (CPU_COUNT(&em->cpus))
			continue;
		em->cpus = p->host.housekeeping;
		em->loc = p->host.loc;
	}
}

/* A local disk without io.cpus runs its I/O thread on its VM's emulator cpus. */
static void default_io_cpus(struct plan *p)
{
	unsigned i, j;

	for (i = 0; i < p->nr_vms; i++)
		for (j = 0; j < p->vms[i].nr_disks; j++) {
			struct plan_disk *d = &p->vms[i].disks[j];

			if (d->kind != PLAN_DISK_LOCAL || d->io_cpus_set)
				continue;
			d->io.cpus = p->vms[i].emulator.cpus;
			if (!d->io.loc.line)
				d->io.loc = p->vms[i].emulator.loc;
		}
}

int plan__load(struct plan *p, const char *path, struct err *e)
{
	struct ctx c = { .file = path, .p = p, .e = e };
	yaml_document_t doc, next;
	yaml_parser_t parser;
	unsigned char *buf = NULL;
	yaml_node_t *root;
	const char *slash;
	size_t len = 0;
	int rc;

	memset(p, 0, sizeof(*p));
	if (!path || !*path)
		return err__set(e, -EINVAL, "no plan file given");
	if (strlen(path) >= sizeof(p->file))
		return err__set(e, -ENAMETOOLONG, "%s: path too long", path);
	snprintf(p->file, sizeof(p->file), "%s", path);
	slash = strrchr(path, '/');
	if (slash)
		snprintf(c.dir, sizeof(c.dir), "%.*s", (int)(slash - path + 1), path);

	rc = read_plan(&c, &buf, &len);
	if (rc)
		return rc;
	rc = check_shape(&c, buf, len);
	if (rc)
		goto err_free_buf;
	if (!yaml_parser_initialize(&parser)) {
		rc = err__set(e, -ENOMEM, "%s: cannot initialise the YAML parser", path);
		goto err_free_buf;
	}
	yaml_parser_set_input_string(&parser, buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = syntax_error(&c, &parser, buf, len);
		goto err_delete_parser;
	}
	c.doc = &doc;

	root = yaml_document_get_root_node(&doc);
	if (!root) {
		rc = err__set(e, -EINVAL, "%s:1: empty plan: expected 'vms' (a list of VMs), "
			      "'vm' (one VM) or 'host'", path);
		goto err_delete_doc;
	}
	/* One plan per file: a second document ("---") is a mistake, not something to ignore. */
	if (!yaml_parser_load(&parser, &next)) {
		rc = syntax_error(&c, &parser, buf, len);
		goto err_delete_doc;
	}
	if (yaml_document_get_root_node(&next)) {
		rc = err__set(e, -EINVAL, "%s:%u: a second YAML document: a plan is one document",
			      path, (unsigned)next.start_mark.line + 1);
		yaml_document_delete(&next);
		goto err_delete_doc;
	}
	yaml_document_delete(&next);

	rc = parse_plan(&c, root);
	release_trees(&c);
	if (rc)
		goto err_free_plan;
	default_emulator_cpus(p);
	default_io_cpus(p);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	free(buf);
	return 0;

err_free_plan:
	plan__free(p);
err_delete_doc:
	yaml_document_delete(&doc);
err_delete_parser:
	yaml_parser_delete(&parser);
err_free_buf:
	free(buf);
	return rc;
}

/* ---- the command line ---------------------------------------------------------------------- */

/* A scalar node of the flags' document, marked with its flag (line = index + 1, 0: none). */
static int args_scalar(yaml_document_t *doc, const char *text, size_t len, unsigned line)
{
	int id = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)text, (int)len,
					  YAML_DOUBLE_QUOTED_SCALAR_STYLE);

	if (id)
		doc->nodes.start[id - 1].start_mark.line = line ? line - 1 : (size_t)-1;
	return id;
}

/*
 * One entry of a list (`nics:`, `disks:`) from flag `line`'s "KEY=VALUE,KEY=VALUE", named
 * `name` unless it names itself (NULL: the schema's default). `keys` lists them for messages.
 */
static int args_entry(struct ctx *c, yaml_document_t *doc, int list, unsigned line,
		      const char *name, const char *keys)
{
	const char *spec = c->args[line - 1].value, *item = spec, *eq, *end;
	int map = yaml_document_add_mapping(doc, NULL, YAML_FLOW_MAPPING_STYLE), k, v;

	if (!map || !yaml_document_append_sequence_item(doc, list, map))
		return -ENOMEM;
	doc->nodes.start[map - 1].start_mark.line = line - 1;
	if (name && strncmp(spec, "name=", 5) && !strstr(spec, ",name=")) {
		k = args_scalar(doc, "name", 4, line);
		v = args_scalar(doc, name, strlen(name), line);
		if (!k || !v || !yaml_document_append_mapping_pair(doc, map, k, v))
			return -ENOMEM;
	}
	for (;;) {
		end = strchr(item, ',');
		if (!end)
			end = item + strlen(item);
		eq = memchr(item, '=', (size_t)(end - item));
		if (!eq || eq == item)
			return err__set(c->e, -EINVAL, "%s '%s': '%.*s': expected KEY=VALUE (keys: %s)",
					c->args[line - 1].flag, spec, (int)(end - item), item, keys);
		k = args_scalar(doc, item, (size_t)(eq - item), line);
		v = args_scalar(doc, eq + 1, (size_t)(end - eq - 1), line);
		if (!k || !v || !yaml_document_append_mapping_pair(doc, map, k, v))
			return -ENOMEM;
		if (!*end)
			return 0;
		item = end + 1;
	}
}

/* The VM's list `key` ("nics", "disks") in the flags' document, added at its first flag. */
static int args_list(yaml_document_t *doc, int vm, int *list, const char *key, unsigned line)
{
	int k;

	if (*list)
		return 0;
	*list = yaml_document_add_sequence(doc, NULL, YAML_BLOCK_SEQUENCE_STYLE);
	k = args_scalar(doc, key, strlen(key), line);
	if (!*list || !k || !yaml_document_append_mapping_pair(doc, vm, k, *list))
		return -ENOMEM;
	return 0;
}

/* The document the flags stand for: {vm: {name: vm, KEY: VALUE..., nics: [...], disks: [...]}}. */
static int args_document(struct ctx *c, yaml_document_t *doc)
{
	int root, vm, nics = 0, disks = 0, k, v, rc;
	unsigned i, nr_nics = 0;
	char name[16];

	root = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
	vm = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
	k = args_scalar(doc, "vm", 2, 0);
	if (!root || !vm || !k || !yaml_document_append_mapping_pair(doc, root, k, vm))
		return -ENOMEM;
	k = args_scalar(doc, "name", 4, 0);
	v = args_scalar(doc, "vm", 2, 0);
	if (!k || !v || !yaml_document_append_mapping_pair(doc, vm, k, v))
		return -ENOMEM;
	for (i = 0; i < c->nr_args; i++) {
		const struct plan_arg *a = &c->args[i];

		if (!strcmp(a->key, "nics")) {
			snprintf(name, sizeof(name), "net%u", nr_nics++);
			rc = args_list(doc, vm, &nics, "nics", i + 1);
			if (!rc)
				rc = args_entry(c, doc, nics, i + 1, name,
						"name, socket, mac, queues, queue_size, mode, "
						"stats_socket");
			if (rc)
				return rc;
			continue;
		}
		if (!strcmp(a->key, "disks")) {
			rc = args_list(doc, vm, &disks, "disks", i + 1);
			if (!rc)
				rc = args_entry(c, doc, disks, i + 1, NULL, "path or socket, readonly, "
						"serial, queues, name, mode, backend_user");
			if (rc)
				return rc;
			continue;
		}
		k = args_scalar(doc, a->key, strlen(a->key), i + 1);
		v = args_scalar(doc, a->value, strlen(a->value), i + 1);
		if (!k || !v || !yaml_document_append_mapping_pair(doc, vm, k, v))
			return -ENOMEM;
	}
	return 0;
}

int plan__from_args(struct plan *p, const struct plan_arg *args, unsigned nr, struct err *e)
{
	struct ctx c = { .file = "command line", .args = args, .nr_args = nr, .p = p, .e = e };
	yaml_document_t doc;
	int rc;

	memset(p, 0, sizeof(*p));
	snprintf(p->file, sizeof(p->file), "%s", c.file);
	if (!yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1))
		return err__set(e, -ENOMEM, "command line: out of memory");
	c.doc = &doc;
	rc = args_document(&c, &doc);
	if (rc == -ENOMEM)
		rc = err__set(e, rc, "command line: out of memory");
	if (!rc)
		rc = parse_plan(&c, yaml_document_get_root_node(&doc));
	release_trees(&c);
	if (!rc)
		default_io_cpus(p);
	if (rc)
		plan__free(p);
	yaml_document_delete(&doc);
	return rc;
}
