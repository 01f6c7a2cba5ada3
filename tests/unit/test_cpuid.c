/*
 * cpuid__patch on a hand-built KVM_GET_SUPPORTED_CPUID answer that looks like
 * a 2-socket SMT host: every topology leaf must end up describing one package
 * of nr_vcpus single-thread cores with APIC id == vCPU index.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/x86/cpuid.h"

#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX
#define MAX_ENTRIES 32

#define CPUID1_EDX_HTT        (1u << 28)
#define CPUID1_ECX_HYPERVISOR (1u << 31)
#define CPUID7_EDX_ARCH_CAP   (1u << 29)
#define CPUID7_EDX_OTHER      ((1u << 26) | (1u << 10))   /* IBRS/IBPB, MD_CLEAR */

static void set_vendor(struct kvm_cpuid_entry2 *e, const char v[12])
{
	memcpy(&e->ebx, v, 4);
	memcpy(&e->edx, v + 4, 4);
	memcpy(&e->ecx, v + 8, 4);
}

/* Leaf 4 / 0x8000001D EAX: type (1 data, 2 code, 3 unified), level, host sharing. */
#define cache_eax(type, level, host_sharing) \
	((uint32_t)(type) | (level) << 5 | 1u << 8 | (host_sharing) << 14 | 15u << 26)

static struct kvm_cpuid2 *host_cpuid(const char vendor[12])
{
	static const struct kvm_cpuid_entry2 host[] = {
		{ .function = 0, .eax = 0x1f },
		/* stepping/model/family; EBX: APIC id 0x3f, 32 logical, CLFLUSH 8; SSE3; FPU|HTT */
		{ .function = 1, .eax = 0x906ea, .ebx = 0x3f200800, .ecx = 0x1, .edx = 0x10000001 },
		{ .function = 4, .index = 0, .flags = IDX, .eax = cache_eax(1, 1, 1) },
		{ .function = 4, .index = 1, .flags = IDX, .eax = cache_eax(2, 1, 1) },
		{ .function = 4, .index = 2, .flags = IDX, .eax = cache_eax(3, 2, 1) },
		{ .function = 4, .index = 3, .flags = IDX, .eax = cache_eax(3, 3, 31), .ebx = 0x3bc },
		{ .function = 4, .index = 4, .flags = IDX, .eax = 0 },
		{ .function = 7, .index = 0, .flags = IDX, .eax = 1, .ebx = 0x29c6fbf,
		  .edx = CPUID7_EDX_ARCH_CAP | CPUID7_EDX_OTHER },
		{ .function = 7, .index = 1, .flags = IDX, .edx = CPUID7_EDX_ARCH_CAP },
		{ .function = 0xb, .index = 0, .flags = IDX, .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 0x3f },
		{ .function = 0xb, .index = 1, .flags = IDX, .eax = 5, .ebx = 16, .ecx = 0x201, .edx = 0x3f },
		{ .function = 0xb, .index = 2, .flags = IDX, .ecx = 2, .edx = 0x3f },
		{ .function = 0x1f, .index = 0, .flags = IDX, .eax = 1, .ebx = 2, .ecx = 0x100 },
		{ .function = 0x1f, .index = 1, .flags = IDX, .eax = 4, .ebx = 16, .ecx = 0x201 },
		{ .function = 0x1f, .index = 2, .flags = IDX, .eax = 6, .ebx = 32, .ecx = 0x502 },
		{ .function = 0x1f, .index = 3, .flags = IDX, .ecx = 3 },
		{ .function = 0x40000000, .eax = 0x40000001,
		  .ebx = 0x4b4d564b, .ecx = 0x564b4d56, .edx = 0x0000004d },   /* "KVMKVMKVM\0\0\0" */
		{ .function = 0x40000001, .eax = 0x01007afb },
		{ .function = 0x80000000, .eax = 0x8000001f },
		{ .function = 0x80000001, .ecx = 0x121, .edx = 0x2c100800 },
		{ .function = 0x80000008, .eax = 0x3030, .ecx = 0x0000700f },
		{ .function = 0x8000001d, .index = 0, .flags = IDX, .eax = cache_eax(1, 1, 1) },
		{ .function = 0x8000001d, .index = 1, .flags = IDX, .eax = cache_eax(3, 3, 15) },
		{ .function = 0x8000001d, .index = 2, .flags = IDX, .eax = 0 },
		{ .function = 0x8000001e, .eax = 0x7, .ebx = 0x103, .ecx = 0x301 },
	};
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) + MAX_ENTRIES * sizeof(c->entries[0]));
	assert_non_null(c);
	_Static_assert(sizeof(host) / sizeof(host[0]) <= MAX_ENTRIES, "room for the host leaves");
	memcpy(c->entries, host, sizeof(host));
	c->nent = sizeof(host) / sizeof(host[0]);
	set_vendor(&c->entries[0], vendor);
	return c;
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
	uint32_t i;

	for (i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == index)
			return &c->entries[i];
	fail_msg("no leaf 0x%x.%u", fn, index);
	return NULL;
}

static struct kvm_cpuid2 *patched(const char vendor[12], unsigned index, unsigned nr)
{
	struct kvm_cpuid2 *c = host_cpuid(vendor);

	cpuid__patch(c, index, nr);
	return c;
}

static void test_leaf1_reports_apic_id_and_logical_count_per_vcpu(void **state)
{
	unsigned i;

	(void)state;
	for (i = 0; i < 4; i++) {
		struct kvm_cpuid2 *c = patched("GenuineIntel", i, 4);
		struct kvm_cpuid_entry2 *e = leaf(c, 1, 0);

		assert_int_equal(e->ebx >> 24, i);
		assert_int_equal((e->ebx >> 16) & 0xff, 4);
		assert_int_equal(e->ebx & 0xffff, 0x0800);  /* CLFLUSH size, brand kept */
		assert_int_equal(e->eax, 0x906ea);
		assert_true(e->edx & CPUID1_EDX_HTT);
		assert_true(e->ecx & CPUID1_ECX_HYPERVISOR);
		assert_true(e->ecx & 0x1);                  /* host features kept */
		free(c);
	}
}

static void test_leaf1_logical_count_rounds_up_to_power_of_two(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 2, 3);

	(void)state;
	assert_int_equal((leaf(c, 1, 0)->ebx >> 16) & 0xff, 4);
	free(c);
	c = patched("GenuineIntel", 0, 200);
	assert_int_equal((leaf(c, 1, 0)->ebx >> 16) & 0xff, 0xff);   /* 8-bit field saturates */
	free(c);
}

static void test_single_vcpu_clears_htt_but_sets_hypervisor(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 0, 1);
	struct kvm_cpuid_entry2 *e = leaf(c, 1, 0);

	(void)state;
	assert_false(e->edx & CPUID1_EDX_HTT);
	assert_int_equal((e->ebx >> 16) & 0xff, 1);
	assert_int_equal(e->ebx >> 24, 0);
	assert_true(e->ecx & CPUID1_ECX_HYPERVISOR);
	free(c);
}

static void assert_ext_topology(struct kvm_cpuid2 *c, uint32_t fn, unsigned id, unsigned nr,
				unsigned shift)
{
	struct kvm_cpuid_entry2 *smt = leaf(c, fn, 0), *core = leaf(c, fn, 1);

	assert_int_equal(smt->eax & 0x1f, 0);
	assert_int_equal(smt->ebx & 0xffff, 1);
	assert_int_equal(smt->ecx, 1u << 8 | 0);
	assert_int_equal(smt->edx, id);
	assert_int_equal(core->eax & 0x1f, shift);
	assert_int_equal(core->ebx & 0xffff, nr);
	assert_int_equal(core->ecx, 2u << 8 | 1);
	assert_int_equal(core->edx, id);
}

static void test_leaf_b_describes_one_package_of_single_thread_cores(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 5, 6);
	struct kvm_cpuid_entry2 *end = leaf(c, 0xb, 2);

	(void)state;
	assert_ext_topology(c, 0xb, 5, 6, 3);
	assert_int_equal((end->ecx >> 8) & 0xff, 0);        /* level type invalid */
	assert_int_equal(end->ecx & 0xff, 2);
	assert_int_equal(end->ebx, 0);
	assert_int_equal(end->edx, 5);
	free(c);
}

static void test_leaf_1f_drops_host_levels_above_core(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 1, 2);
	unsigned sub;

	(void)state;
	assert_ext_topology(c, 0x1f, 1, 2, 1);
	for (sub = 2; sub <= 3; sub++) {
		struct kvm_cpuid_entry2 *e = leaf(c, 0x1f, sub);

		assert_int_equal((e->ecx >> 8) & 0xff, 0);
		assert_int_equal(e->ecx & 0xff, sub);
		assert_int_equal(e->eax, 0);
		assert_int_equal(e->ebx, 0);
		assert_int_equal(e->edx, 1);
	}
	free(c);
}

static void test_leaf4_shares_l3_per_package_and_l1_l2_per_core(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 0, 4);

	(void)state;
	assert_int_equal(leaf(c, 4, 0)->eax >> 26, 3);      /* 4 core ids - 1 */
	assert_int_equal((leaf(c, 4, 0)->eax >> 14) & 0xfff, 0);
	assert_int_equal((leaf(c, 4, 2)->eax >> 14) & 0xfff, 0);
	assert_int_equal((leaf(c, 4, 3)->eax >> 14) & 0xfff, 3);
	assert_int_equal(leaf(c, 4, 3)->eax & 0x3fff, cache_eax(3, 3, 0) & 0x3fff);
	assert_int_equal(leaf(c, 4, 3)->ebx, 0x3bc);        /* geometry kept */
	assert_int_equal(leaf(c, 4, 4)->eax, 0);            /* terminator stays null */
	free(c);
}

static void test_arch_capabilities_masked_other_features_kept(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 0, 2);

	(void)state;
	assert_false(leaf(c, 7, 0)->edx & CPUID7_EDX_ARCH_CAP);
	assert_int_equal(leaf(c, 7, 0)->edx, CPUID7_EDX_OTHER);
	assert_int_equal(leaf(c, 7, 0)->ebx, 0x29c6fbf);
	/* Subleaf 1 is a different register set: bit 29 there means something else. */
	assert_int_equal(leaf(c, 7, 1)->edx, CPUID7_EDX_ARCH_CAP);
	free(c);
}

static void test_kvm_signature_leaves_kept(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 1, 2);
	struct kvm_cpuid_entry2 *e = leaf(c, 0x40000000, 0);
	char sig[12];

	(void)state;
	memcpy(sig, &e->ebx, 4);
	memcpy(sig + 4, &e->ecx, 4);
	memcpy(sig + 8, &e->edx, 4);
	assert_memory_equal(sig, "KVMKVMKVM\0\0\0", 12);
	assert_int_equal(e->eax, 0x40000001);
	assert_int_equal(leaf(c, 0x40000001, 0)->eax, 0x01007afb);
	free(c);
}

static void test_amd_leaves_report_core_count_and_apic_id(void **state)
{
	unsigned i;

	(void)state;
	for (i = 0; i < 3; i++) {
		struct kvm_cpuid2 *c = patched("AuthenticAMD", i, 3);
		struct kvm_cpuid_entry2 *e8 = leaf(c, 0x80000008, 0);
		struct kvm_cpuid_entry2 *e1e = leaf(c, 0x8000001e, 0);

		assert_int_equal(e8->ecx & 0xff, 2);           /* NC = cores - 1 */
		assert_int_equal((e8->ecx >> 12) & 0xf, 2);    /* ApicIdSize */
		assert_int_equal(e8->ecx & ~0xf0ffu, 0x0000700f & ~0xf0ffu);
		assert_int_equal(e8->eax, 0x3030);
		assert_int_equal(e1e->eax, i);
		assert_int_equal(e1e->ebx & 0xff, i);          /* core id */
		assert_int_equal((e1e->ebx >> 8) & 0xff, 0);   /* 1 thread per core */
		assert_int_equal(e1e->ecx & 0x7ff, 0);         /* node 0 of 1 */
		assert_true(leaf(c, 0x80000001, 0)->ecx & (1u << 1));   /* CmpLegacy */
		assert_int_equal((leaf(c, 0x8000001d, 0)->eax >> 14) & 0xfff, 0);
		assert_int_equal((leaf(c, 0x8000001d, 1)->eax >> 14) & 0xfff, 2);
		assert_int_equal(leaf(c, 1, 0)->ebx >> 24, i);
		free(c);
	}
}

static void test_amd_only_leaves_untouched_on_intel(void **state)
{
	struct kvm_cpuid2 *c = patched("GenuineIntel", 1, 4);

	(void)state;
	assert_int_equal(leaf(c, 0x80000008, 0)->ecx, 0x0000700f);
	assert_int_equal(leaf(c, 0x80000001, 0)->ecx, 0x121);
	assert_int_equal(leaf(c, 0x8000001e, 0)->eax, 0x7);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf1_reports_apic_id_and_logical_count_per_vcpu),
		cmocka_unit_test(test_leaf1_logical_count_rounds_up_to_power_of_two),
		cmocka_unit_test(test_single_vcpu_clears_htt_but_sets_hypervisor),
		cmocka_unit_test(test_leaf_b_describes_one_package_of_single_thread_cores),
		cmocka_unit_test(test_leaf_1f_drops_host_levels_above_core),
		cmocka_unit_test(test_leaf4_shares_l3_per_package_and_l1_l2_per_core),
		cmocka_unit_test(test_arch_capabilities_masked_other_features_kept),
		cmocka_unit_test(test_kvm_signature_leaves_kept),
		cmocka_unit_test(test_amd_leaves_report_core_count_and_apic_id),
		cmocka_unit_test(test_amd_only_leaves_untouched_on_intel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
