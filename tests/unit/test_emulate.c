#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/x86/emulate.h"

static struct kvm_regs regs_at(uint64_t rip)
{
	struct kvm_regs r;

	memset(&r, 0, sizeof(r));
	r.rip = rip;
	r.rflags = 0x2;
	return r;
}

static void test_emulate_int3_advances_and_injects_breakpoint(void **state)
{
	const uint8_t insn[] = { 0xcc, 0x90, 0x90 };
	struct kvm_regs r = regs_at(0xffffffff81000000ULL);
	int vector = 0;

	(void)state;
	assert_string_equal(x86_emulate__insn(insn, sizeof(insn), &r, &vector), "int3");
	assert_int_equal(r.rip, 0xffffffff81000001ULL);
	assert_int_equal(vector, 3);
}

static void test_emulate_clac_stac_toggle_alignment_check(void **state)
{
	const uint8_t stac[] = { 0x0f, 0x01, 0xcb }, clac[] = { 0x0f, 0x01, 0xca };
	struct kvm_regs r = regs_at(0x1000);
	int vector = 0;

	(void)state;
	assert_string_equal(x86_emulate__insn(stac, 3, &r, &vector), "stac");
	assert_true(r.rflags & (1 << 18));
	assert_int_equal(vector, EMULATE_NO_EXCEPTION);
	assert_string_equal(x86_emulate__insn(clac, 3, &r, &vector), "clac");
	assert_false(r.rflags & (1 << 18));
	assert_int_equal(r.rip, 0x1006);
}

static void test_emulate_fwait_is_a_one_byte_no_op(void **state)
{
	const uint8_t insn[] = { 0x9b };
	struct kvm_regs r = regs_at(0x2000);
	int vector = 0;

	(void)state;
	r.rax = 42;
	assert_string_equal(x86_emulate__insn(insn, 1, &r, &vector), "fwait");
	assert_int_equal(r.rip, 0x2001);
	assert_int_equal(r.rax, 42);
}

static void test_emulate_popcnt_register_forms(void **state)
{
	const uint8_t popcnt_rax_rdi[] = { 0xf3, 0x48, 0x0f, 0xb8, 0xc7 };   /* popcnt %rdi,%rax */
	const uint8_t popcnt_r9d_eax[] = { 0xf3, 0x44, 0x0f, 0xb8, 0xc8 };   /* popcnt %eax,%r9d */
	const uint8_t popcnt_cx_r10w[] = { 0x66, 0xf3, 0x41, 0x0f, 0xb8, 0xca }; /* not F3-first: declined */
	const uint8_t popcnt16[] = { 0xf3, 0x66, 0x41, 0x0f, 0xb8, 0xca };   /* popcnt %r10w,%cx */
	struct kvm_regs r = regs_at(0x3000);
	int vector = 0;

	(void)state;
	r.rdi = 0xff000000000000f0ULL;
	r.rflags |= 1 << 6;
	assert_string_equal(x86_emulate__insn(popcnt_rax_rdi, 5, &r, &vector), "popcnt");
	assert_int_equal(r.rax, 12);
	assert_false(r.rflags & (1 << 6));
	assert_int_equal(r.rip, 0x3005);

	r.rax = 0xffffffff00000000ULL; /* only the low 32 bits count */
	r.r9 = 0xdeadbeefdeadbeefULL;  /* 32-bit destination zero-extends */
	assert_string_equal(x86_emulate__insn(popcnt_r9d_eax, 5, &r, &vector), "popcnt");
	assert_int_equal(r.r9, 0);
	assert_true(r.rflags & (1 << 6)); /* ZF: source was zero */

	assert_null(x86_emulate__insn(popcnt_cx_r10w, 6, &r, &vector));
	r.r10 = 0xffff0007;
	r.rcx = 0x1111222233334444ULL;
	assert_string_equal(x86_emulate__insn(popcnt16, 6, &r, &vector), "popcnt");
	assert_int_equal(r.rcx, 0x1111222233330003ULL); /* 16-bit destination keeps the rest */
}

static void test_emulate_declines_memory_operands_and_unknown_bytes(void **state)
{
	const uint8_t popcnt_mem[] = { 0xf3, 0x48, 0x0f, 0xb8, 0x07 };     /* popcnt (%rdi),%rax */
	const uint8_t rep_movsb[] = { 0xf3, 0xa4 };
	const uint8_t xrstor[] = { 0x48, 0x0f, 0xae, 0x2f };
	const uint8_t truncated[] = { 0x0f, 0x01 };
	struct kvm_regs r = regs_at(0x4000), before;
	int vector = 0;

	(void)state;
	before = r;
	assert_null(x86_emulate__insn(popcnt_mem, sizeof(popcnt_mem), &r, &vector));
	assert_null(x86_emulate__insn(rep_movsb, sizeof(rep_movsb), &r, &vector));
	assert_null(x86_emulate__insn(xrstor, sizeof(xrstor), &r, &vector));
	assert_null(x86_emulate__insn(truncated, sizeof(truncated), &r, &vector));
	assert_null(x86_emulate__insn(popcnt_mem, 0, &r, &vector));
	assert_memory_equal(&r, &before, sizeof(r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_emulate_int3_advances_and_injects_breakpoint),
		cmocka_unit_test(test_emulate_clac_stac_toggle_alignment_check),
		cmocka_unit_test(test_emulate_fwait_is_a_one_byte_no_op),
		cmocka_unit_test(test_emulate_popcnt_register_forms),
		cmocka_unit_test(test_emulate_declines_memory_operands_and_unknown_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
