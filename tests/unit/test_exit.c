#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/exit.h"

/* A port device that records writes and answers reads with port-derived bytes. */
struct port_log {
	uint8_t written[16];
	int nwrites;
	uint64_t mmio_scratch;
};

static void dev_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct port_log *p = dev;

	if (len == 8)
		memcpy(data, &p->mmio_scratch, 8);
	else
		memset(data, (int)(0x40 + off), len);
}

static void dev_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct port_log *p = dev;

	(void)off;
	if (len == 8)
		memcpy(&p->mmio_scratch, data, 8);
	else if (p->nwrites < 16)
		p->written[p->nwrites++] = *(const uint8_t *)data;
}

static const struct io_ops dev_ops = { .read = dev_read, .write = dev_write };

struct fixture {
	struct bus pio, mmio;
	struct exit_ctx ctx;
	struct port_log log;
	struct kvm_run *run;
	struct exit_stop stop;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	bus__init(&f->pio, "pio");
	bus__init(&f->mmio, "mmio");
	assert_int_equal(bus__register(&f->pio, 0x3f8, 8, &dev_ops, &f->log, "uart"), 0);
	assert_int_equal(bus__register(&f->mmio, 0xd0000000, 0x1000, &dev_ops, &f->log, "t"), 0);
	f->ctx.pio = &f->pio;
	f->ctx.mmio = &f->mmio;
	f->run = calloc(1, 8192); /* kvm_run plus the PIO data page KVM places after it */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	bus__exit(&f->pio);
	bus__exit(&f->mmio);
	free(f->run);
	free(f);
	return 0;
}

static void test_exit_io_out_string_writes_every_element(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = (uint8_t *)f->run + 4096;

	f->run->exit_reason = KVM_EXIT_IO;
	f->run->io.direction = KVM_EXIT_IO_OUT;
	f->run->io.size = 1;
	f->run->io.port = 0x3f8;
	f->run->io.count = 3; /* rep outsb */
	f->run->io.data_offset = 4096;
	memcpy(data, "abc", 3);
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
	assert_int_equal(f->log.nwrites, 3);
	assert_memory_equal(f->log.written, "abc", 3);
	assert_int_equal(f->ctx.count[KVM_EXIT_IO], 1);
}

static void test_exit_io_in_fills_data_from_device(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = (uint8_t *)f->run + 4096;

	f->run->exit_reason = KVM_EXIT_IO;
	f->run->io.direction = KVM_EXIT_IO_IN;
	f->run->io.size = 1;
	f->run->io.port = 0x3fd;
	f->run->io.count = 1;
	f->run->io.data_offset = 4096;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
	assert_int_equal(data[0], 0x45);
}

static void test_exit_io_to_unclaimed_port_reads_ones_and_continues(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = (uint8_t *)f->run + 4096;

	f->run->exit_reason = KVM_EXIT_IO;
	f->run->io.direction = KVM_EXIT_IO_IN;
	f->run->io.size = 2;
	f->run->io.port = 0x80;
	f->run->io.count = 1;
	f->run->io.data_offset = 4096;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[1], 0xff);
	assert_int_equal(f->pio.unclaimed, 1);
}

static void test_exit_mmio_write_then_read_round_trips(void **state)
{
	struct fixture *f = *state;
	uint64_t v = 0x1122334455667788ULL, out = 0;

	f->run->exit_reason = KVM_EXIT_MMIO;
	f->run->mmio.phys_addr = 0xd0000008;
	f->run->mmio.len = 8;
	f->run->mmio.is_write = 1;
	memcpy(f->run->mmio.data, &v, 8);
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
	f->run->mmio.is_write = 0;
	memset(f->run->mmio.data, 0, 8);
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
	memcpy(&out, f->run->mmio.data, 8);
	assert_int_equal(out, v);
	assert_int_equal(f->ctx.count[KVM_EXIT_MMIO], 2);
}

static void test_exit_mmio_oversized_length_is_clamped(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_MMIO;
	f->run->mmio.phys_addr = 0xd0000000;
	f->run->mmio.len = 4096; /* never from KVM, but must not overflow data[8] */
	f->run->mmio.is_write = 0;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
}

/* The host's CPU vendor as /proc/cpuinfo names it (not the code under test's CPUID). */
static bool host_vendor_is_amd(void)
{
	char line[256];
	bool amd = false;
	FILE *f = fopen("/proc/cpuinfo", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "vendor_id", 9)) {
			amd = strstr(line, "AuthenticAMD") || strstr(line, "HygonGenuine");
			break;
		}
	fclose(f);
	return amd;
}

static void test_exit_shutdown_is_triple_fault_error_with_registers(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_SHUTDOWN;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_int_equal(f->stop.reason, VM_STOP_ERROR);
	assert_int_not_equal(f->stop.status, 0);
	assert_true(f->stop.dump_regs);
	assert_non_null(strstr(f->stop.why, "triple fault"));
	/* kvm_amd reports the shutdown after INIT: the report says so on AMD hosts, only there */
	assert_int_equal(strstr(f->stop.why, "INIT state") != NULL, host_vendor_is_amd());
}

static void test_exit_system_event_shutdown_and_reset_stop_cleanly(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	f->run->system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_int_equal(f->stop.reason, VM_STOP_POWEROFF);
	assert_int_equal(f->stop.status, 0);
	f->run->system_event.type = KVM_SYSTEM_EVENT_RESET;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_int_equal(f->stop.reason, VM_STOP_REBOOT);
	assert_int_equal(f->stop.status, 0);
	f->run->system_event.type = KVM_SYSTEM_EVENT_CRASH;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_int_equal(f->stop.reason, VM_STOP_ERROR);
}

static void test_exit_internal_error_reports_instruction_bytes(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	f->run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	f->run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	f->run->emulation_failure.insn_size = 3;
	f->run->emulation_failure.insn_bytes[0] = 0x0f;
	f->run->emulation_failure.insn_bytes[1] = 0x01;
	f->run->emulation_failure.insn_bytes[2] = 0xca;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_int_equal(f->stop.reason, VM_STOP_ERROR);
	assert_non_null(strstr(f->stop.why, "emulation failure"));
	assert_non_null(strstr(f->stop.why, "0f 01 ca"));
}

static void test_exit_internal_error_bogus_size_is_bounded(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	f->run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	f->run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	f->run->emulation_failure.insn_size = 200;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	f->run->internal.suberror = 3;
	f->run->internal.ndata = 1000;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_non_null(strstr(f->stop.why, "suberror 3"));
}

static int fake_emulate(void *opaque, const uint8_t *insn, unsigned len)
{
	int *calls = opaque;

	(*calls)++;
	return len >= 1 && insn[0] == 0xcc ? 0 : -95;
}

static void test_exit_emulation_failure_uses_monitor_fallback(void **state)
{
	struct fixture *f = *state;
	int calls = 0;

	f->ctx.emulate = fake_emulate;
	f->ctx.emulate_opaque = &calls;
	f->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	f->run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	f->run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	f->run->emulation_failure.insn_size = 1;
	f->run->emulation_failure.insn_bytes[0] = 0xcc;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
	assert_int_equal(f->ctx.emulated, 1);
	/* An instruction the fallback declines still stops the VM with the bytes. */
	f->run->emulation_failure.insn_bytes[0] = 0x0f;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_non_null(strstr(f->stop.why, "0f"));
	assert_int_equal(calls, 2);
	assert_int_equal(f->ctx.emulated, 1);
}

static void test_exit_unknown_reason_stops_with_name(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_HYPERCALL;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_int_equal(f->stop.reason, VM_STOP_ERROR);
	assert_non_null(strstr(f->stop.why, "KVM_EXIT_HYPERCALL"));
	f->run->exit_reason = 12345;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_STOP);
	assert_non_null(strstr(f->stop.why, "12345"));
	assert_int_equal(f->ctx.count[63], 1);
}

static void test_exit_intr_reenters(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_INTR;
	assert_int_equal(exit__handle(&f->ctx, f->run, &f->stop), EXIT_CONTINUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exit_io_out_string_writes_every_element, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_io_in_fills_data_from_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_io_to_unclaimed_port_reads_ones_and_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_mmio_write_then_read_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_mmio_oversized_length_is_clamped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_shutdown_is_triple_fault_error_with_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_system_event_shutdown_and_reset_stop_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_internal_error_reports_instruction_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_internal_error_bogus_size_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_emulation_failure_uses_monitor_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_unknown_reason_stops_with_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_intr_reenters, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
