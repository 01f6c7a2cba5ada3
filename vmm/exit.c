#include "vmm/exit.h"

#include <cpuid.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef enum exit_action (*exit_fn)(struct exit_ctx *ctx, struct kvm_run *run,
				    struct exit_stop *stop);

__attribute__((format(printf, 4, 5)))
static enum exit_action stop_with(struct exit_stop *stop, enum vm_stop_reason reason, int dump,
				  const char *fmt, ...)
{
	va_list ap;

	stop->reason = reason;
	stop->status = reason == VM_STOP_ERROR ? 2 : 0;
	stop->dump_regs = dump;
	va_start(ap, fmt);
	vsnprintf(stop->why, sizeof(stop->why), fmt, ap);
	va_end(ap);
	return EXIT_STOP;
}

static enum exit_action handle_io(struct exit_ctx *ctx, struct kvm_run *run, struct exit_stop *stop)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t i;

	(void)stop;
	for (i = 0; i < run->io.count; i++)
		bus__access(ctx->pio, run->io.port, data + (uint64_t)i * run->io.size, run->io.size,
			    run->io.direction == KVM_EXIT_IO_OUT);
	return EXIT_CONTINUE;
}

static enum exit_action handle_mmio(struct exit_ctx *ctx, struct kvm_run *run, struct exit_stop *stop)
{
	uint32_t len = run->mmio.len;

	(void)stop;
	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	bus__access(ctx->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
	return EXIT_CONTINUE;
}

static enum exit_action handle_intr(struct exit_ctx *ctx, struct kvm_run *run, struct exit_stop *stop)
{
	(void)ctx, (void)run, (void)stop;
	return EXIT_CONTINUE;
}

/* An AMD (or Hygon) host, whose KVM is kvm_amd: CPUID leaf 0's vendor, no syscall. */
static bool host_is_amd(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(0, &a, &b, &c, &d))
		return false;
	return (b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163) ||   /* AuthenticAMD */
	       (b == 0x6f677948 && d == 0x6e65476e && c == 0x656e6975);     /* HygonGenuine */
}

static enum exit_action handle_shutdown(struct exit_ctx *ctx, struct kvm_run *run,
					struct exit_stop *stop)
{
	(void)ctx, (void)run;
	/* kvm_amd INITs the vCPU before it reports a shutdown (its VMCB is undefined then). */
	return stop_with(stop, VM_STOP_ERROR, 1, "KVM_EXIT_SHUTDOWN: guest triple fault%s",
			 host_is_amd() ? " (on this AMD host KVM has already put the vCPU through INIT: "
			 "the registers below are its INIT state, not those of the fault)" : "");
}

static enum exit_action handle_system_event(struct exit_ctx *ctx, struct kvm_run *run,
					    struct exit_stop *stop)
{
	(void)ctx;
	switch (run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		return stop_with(stop, VM_STOP_POWEROFF, 0, "guest powered off (KVM system event)");
	case KVM_SYSTEM_EVENT_RESET:
		return stop_with(stop, VM_STOP_REBOOT, 0, "guest reset (KVM system event)");
	default:
		return stop_with(stop, VM_STOP_ERROR, 1, "KVM_EXIT_SYSTEM_EVENT type %u",
				 run->system_event.type);
	}
}

static enum exit_action handle_internal_error(struct exit_ctx *ctx, struct kvm_run *run,
					      struct exit_stop *stop)
{
	char bytes[3 * 16 + 1] = "";
	size_t off = 0;
	unsigned i;

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		unsigned n = run->emulation_failure.insn_size;

		if (n > sizeof(run->emulation_failure.insn_bytes))
			n = sizeof(run->emulation_failure.insn_bytes);
		if (ctx->emulate &&
		    ctx->emulate(ctx->emulate_opaque, run->emulation_failure.insn_bytes, n) == 0) {
			ctx->emulated++;
			return EXIT_CONTINUE;
		}
		for (i = 0; i < n; i++)
			off += (size_t)snprintf(bytes + off, sizeof(bytes) - off, " %02x",
						run->emulation_failure.insn_bytes[i]);
		return stop_with(stop, VM_STOP_ERROR, 1,
				 "KVM_EXIT_INTERNAL_ERROR suberror 1 (emulation failure), instruction:%s",
				 bytes);
	}
	for (i = 0; i < run->internal.ndata && i < 4; i++)
		off += (size_t)snprintf(bytes + off, sizeof(bytes) - off, " %llx",
					(unsigned long long)run->internal.data[i]);
	return stop_with(stop, VM_STOP_ERROR, 1, "KVM_EXIT_INTERNAL_ERROR suberror %u, data:%s",
			 run->internal.suberror, off ? bytes : " none");
}

static enum exit_action handle_fail_entry(struct exit_ctx *ctx, struct kvm_run *run,
					  struct exit_stop *stop)
{
	(void)ctx;
	return stop_with(stop, VM_STOP_ERROR, 1, "KVM_EXIT_FAIL_ENTRY: hardware entry failure 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
}

/* The vCPU's dirty ring is full: harvest it (exit_ctx.ring_full), then the vCPU goes on. */
static enum exit_action handle_dirty_ring_full(struct exit_ctx *ctx, struct kvm_run *run,
					       struct exit_stop *stop)
{
	int err;

	(void)run;
	if (!ctx->ring_full)
		return stop_with(stop, VM_STOP_ERROR, 0,
				 "KVM_EXIT_DIRTY_RING_FULL on a vCPU without a dirty ring");
	err = ctx->ring_full(ctx->ring_opaque);
	if (err)
		return stop_with(stop, VM_STOP_ERROR, 0,
				 "KVM_EXIT_DIRTY_RING_FULL: harvesting the dirty ring "
				 "(KVM_RESET_DIRTY_RINGS): %s", strerror(-err));
	return EXIT_CONTINUE;
}

static const struct {
	const char *name;
	exit_fn fn;
} exit_table[] = {
	[KVM_EXIT_UNKNOWN] = { "KVM_EXIT_UNKNOWN", NULL },
	[KVM_EXIT_EXCEPTION] = { "KVM_EXIT_EXCEPTION", NULL },
	[KVM_EXIT_IO] = { "KVM_EXIT_IO", handle_io },
	[KVM_EXIT_HYPERCALL] = { "KVM_EXIT_HYPERCALL", NULL },
	[KVM_EXIT_DEBUG] = { "KVM_EXIT_DEBUG", NULL },
	[KVM_EXIT_HLT] = { "KVM_EXIT_HLT", NULL },
	[KVM_EXIT_MMIO] = { "KVM_EXIT_MMIO", handle_mmio },
	[KVM_EXIT_IRQ_WINDOW_OPEN] = { "KVM_EXIT_IRQ_WINDOW_OPEN", NULL },
	[KVM_EXIT_SHUTDOWN] = { "KVM_EXIT_SHUTDOWN", handle_shutdown },
	[KVM_EXIT_FAIL_ENTRY] = { "KVM_EXIT_FAIL_ENTRY", handle_fail_entry },
	[KVM_EXIT_INTR] = { "KVM_EXIT_INTR", handle_intr },
	[KVM_EXIT_SET_TPR] = { "KVM_EXIT_SET_TPR", NULL },
	[KVM_EXIT_TPR_ACCESS] = { "KVM_EXIT_TPR_ACCESS", NULL },
	[KVM_EXIT_NMI] = { "KVM_EXIT_NMI", NULL },
	[KVM_EXIT_INTERNAL_ERROR] = { "KVM_EXIT_INTERNAL_ERROR", handle_internal_error },
	[KVM_EXIT_SYSTEM_EVENT] = { "KVM_EXIT_SYSTEM_EVENT", handle_system_event },
	[KVM_EXIT_DIRTY_RING_FULL] = { "KVM_EXIT_DIRTY_RING_FULL", handle_dirty_ring_full },
};

#define EXIT_TABLE_SIZE (sizeof(exit_table) / sizeof(exit_table[0]))

const char *exit__name(uint32_t reason)
{
	if (reason < EXIT_TABLE_SIZE && exit_table[reason].name)
		return exit_table[reason].name;
	return "unknown";
}

enum exit_action exit__handle(struct exit_ctx *ctx, struct kvm_run *run, struct exit_stop *stop)
{
	uint32_t reason = run->exit_reason;
	size_t nr_counts = sizeof(ctx->count) / sizeof(ctx->count[0]);

	ctx->count[reason < nr_counts ? reason : nr_counts - 1]++;
	if (reason < EXIT_TABLE_SIZE && exit_table[reason].fn)
		return exit_table[reason].fn(ctx, run, stop);
	return stop_with(stop, VM_STOP_ERROR, 1, "unhandled exit %s (%u)", exit__name(reason), reason);
}
