/*
 * Guest CPUID: KVM_GET_SUPPORTED_CPUID's answer patched per vCPU.
 *
 * The machine is one package of nr_vcpus cores with one thread each; vCPU i
 * has APIC id i. The APIC id splits into a core field of core_shift bits
 * (ceil(log2(nr_vcpus))) and a package field (always 0). Every leaf that
 * describes topology is made to tell that same story.
 *
 * The patches are a table of {leaf, subleaf, vendors, function}: adding a
 * fix-up is adding a row.
 */
#include "vmm/x86/cpuid.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define CPUID_ANY_INDEX (-1)

enum cpuid_vendor {
	VENDOR_INTEL = 1u << 0,
	VENDOR_AMD = 1u << 1,      /* AMD and Hygon: AMD's topology leaves */
	VENDOR_OTHER = 1u << 2,
};
#define VENDOR_ALL (VENDOR_INTEL | VENDOR_AMD | VENDOR_OTHER)

struct cpuid_topo {
	uint32_t apic_id;
	uint32_t nr_vcpus;
	uint32_t core_shift;    /* APIC id bits that number the cores of the package */
	enum cpuid_vendor vendor;
};

typedef void (*cpuid_patch_fn)(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t);

struct cpuid_rule {
	uint32_t function;
	int32_t index;          /* subleaf, or CPUID_ANY_INDEX for all of them */
	unsigned vendors;
	cpuid_patch_fn patch;
};

/* Leaf 1. */
#define CPUID1_ECX_HYPERVISOR (1u << 31)
#define CPUID1_EDX_HTT        (1u << 28)
/* Leaf 7 subleaf 0. */
#define CPUID7_EDX_ARCH_CAPABILITIES (1u << 29)
/* Leaf 0x80000001 (AMD). */
#define CPUID_80000001_ECX_CMP_LEGACY (1u << 1)
/* Leaves 0xB/0x1F: level types in ECX[15:8]. */
#define TOPO_LEVEL_INVALID 0
#define TOPO_LEVEL_SMT     1
#define TOPO_LEVEL_CORE    2

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static uint32_t topo_ids_per_package(const struct cpuid_topo *t)
{
	return 1u << t->core_shift;
}

static void patch_leaf1(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	/* EBX[23:16] is 8 bits: the number of addressable logical-processor ids. */
	uint32_t logical = min_u32(topo_ids_per_package(t), 0xff);

	e->ebx = (e->ebx & 0x0000ffffu) | (logical << 16) | ((t->apic_id & 0xff) << 24);
	if (t->nr_vcpus > 1)
		e->edx |= CPUID1_EDX_HTT;
	else
		e->edx &= ~CPUID1_EDX_HTT;
	e->ecx |= CPUID1_ECX_HYPERVISOR;
}

/* Cache level of a leaf 4 / 0x8000001D entry, 0 for the terminating null entry. */
static unsigned cache_level(const struct kvm_cpuid_entry2 *e)
{
	if ((e->eax & 0x1f) == 0)
		return 0;
	return (e->eax >> 5) & 0x7;
}

/*
 * Intel deterministic cache parameters: EAX[25:14] = addressable ids sharing
 * the cache - 1 (L1/L2 are per core: 0; L3 is per package), EAX[31:26] =
 * addressable core ids in the package - 1.
 */
static void patch_leaf4(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	unsigned level = cache_level(e);
	uint32_t ids = topo_ids_per_package(t);
	uint32_t sharing;

	if (!level)
		return;
	sharing = level >= 3 ? min_u32(ids - 1, 0xfff) : 0;
	e->eax = (e->eax & 0x00003fffu) | (sharing << 14) | (min_u32(ids - 1, 0x3f) << 26);
}

static void mask_arch_capabilities(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	(void)t;
	/* KVM here cannot back MSR 0x10a (IA32_ARCH_CAPABILITIES): never advertise it. */
	e->edx &= ~CPUID7_EDX_ARCH_CAPABILITIES;
}

/* Leaves 0xB and 0x1F: subleaf 0 = SMT (1 thread/core), 1 = core, then the end. */
static void patch_ext_topology(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	uint32_t subleaf = e->index & 0xff;

	switch (subleaf) {
	case 0:
		e->eax = 0;   /* no SMT bits in the APIC id */
		e->ebx = 1;
		e->ecx = (TOPO_LEVEL_SMT << 8) | subleaf;
		break;
	case 1:
		e->eax = t->core_shift;
		e->ebx = t->nr_vcpus;
		e->ecx = (TOPO_LEVEL_CORE << 8) | subleaf;
		break;
	default:
		/* Host levels above the core (module, die) do not exist here. */
		e->eax = 0;
		e->ebx = 0;
		e->ecx = (TOPO_LEVEL_INVALID << 8) | subleaf;
		break;
	}
	e->edx = t->apic_id;
}

static void patch_kvm_signature(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	static const char sig[12] = "KVMKVMKVM\0\0";

	(void)t;
	memcpy(&e->ebx, sig, 4);
	memcpy(&e->ecx, sig + 4, 4);
	memcpy(&e->edx, sig + 8, 4);
}

/* AMD: with HTT set, CmpLegacy says the logical processors are cores, not threads. */
static void patch_amd_cmp_legacy(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	if (t->nr_vcpus > 1)
		e->ecx |= CPUID_80000001_ECX_CMP_LEGACY;
	else
		e->ecx &= ~CPUID_80000001_ECX_CMP_LEGACY;
}

/* AMD: ECX[7:0] NC = cores - 1, ECX[15:12] ApicIdSize = core bits of the APIC id. */
static void patch_amd_core_count(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	e->ecx = (e->ecx & ~0x0000f0ffu) | ((t->core_shift & 0xf) << 12) |
		 ((t->nr_vcpus - 1) & 0xff);
}

/* AMD cache topology: EAX[25:14] = logical processors sharing the cache - 1. */
static void patch_amd_cache(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	unsigned level = cache_level(e);
	uint32_t sharing;

	if (!level)
		return;
	sharing = level >= 3 ? min_u32(t->nr_vcpus - 1, 0xfff) : 0;
	e->eax = (e->eax & ~(0xfffu << 14)) | (sharing << 14);
}

/* AMD extended APIC id, core id (1 thread/core), node 0 of 1. */
static void patch_amd_ext_apic_id(struct kvm_cpuid_entry2 *e, const struct cpuid_topo *t)
{
	e->eax = t->apic_id;
	e->ebx = t->apic_id & 0xff;
	e->ecx = 0;
}

static const struct cpuid_rule cpuid_rules[] = {
	{ 0x00000001, CPUID_ANY_INDEX, VENDOR_ALL, patch_leaf1 },
	{ 0x00000004, CPUID_ANY_INDEX, VENDOR_ALL, patch_leaf4 },
	{ 0x00000007, 0, VENDOR_ALL, mask_arch_capabilities },
	{ 0x0000000b, CPUID_ANY_INDEX, VENDOR_ALL, patch_ext_topology },
	{ 0x0000001f, CPUID_ANY_INDEX, VENDOR_ALL, patch_ext_topology },
	{ 0x40000000, CPUID_ANY_INDEX, VENDOR_ALL, patch_kvm_signature },
	{ 0x80000001, CPUID_ANY_INDEX, VENDOR_AMD, patch_amd_cmp_legacy },
	{ 0x80000008, CPUID_ANY_INDEX, VENDOR_AMD, patch_amd_core_count },
	{ 0x8000001d, CPUID_ANY_INDEX, VENDOR_AMD, patch_amd_cache },
	{ 0x8000001e, CPUID_ANY_INDEX, VENDOR_AMD, patch_amd_ext_apic_id },
};

static enum cpuid_vendor cpuid_vendor(const struct kvm_cpuid2 *cpuid)
{
	uint32_t i;

	for (i = 0; i < cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		char id[12];

		if (e->function != 0)
			continue;
		memcpy(id, &e->ebx, 4);
		memcpy(id + 4, &e->edx, 4);
		memcpy(id + 8, &e->ecx, 4);
		if (!memcmp(id, "GenuineIntel", 12))
			return VENDOR_INTEL;
		if (!memcmp(id, "AuthenticAMD", 12) || !memcmp(id, "HygonGenuine", 12))
			return VENDOR_AMD;
		return VENDOR_OTHER;
	}
	return VENDOR_OTHER;
}

/*
 * A rule for subleaf n applies to the entry with index n. Entries that KVM
 * does not flag KVM_CPUID_FLAG_SIGNIFCANT_INDEX answer every subleaf; KVM
 * reports them with index 0, so a rule for subleaf 0 still finds them.
 */
static bool rule_matches(const struct cpuid_rule *r, const struct kvm_cpuid_entry2 *e,
			 enum cpuid_vendor vendor)
{
	if (r->function != e->function || !(r->vendors & vendor))
		return false;
	return r->index == CPUID_ANY_INDEX || (uint32_t)r->index == e->index;
}

static uint32_t order_base_2(uint32_t n)
{
	return n <= 1 ? 0 : 32 - (uint32_t)__builtin_clz(n - 1);
}

void cpuid__patch(struct kvm_cpuid2 *cpuid, unsigned index, unsigned nr_vcpus)
{
	struct cpuid_topo topo;
	uint32_t i;
	size_t r;

	if (nr_vcpus == 0)
		nr_vcpus = 1;
	topo = (struct cpuid_topo){
		.apic_id = index,
		.nr_vcpus = nr_vcpus,
		.core_shift = order_base_2(nr_vcpus),
		.vendor = cpuid_vendor(cpuid),
	};
	for (i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		for (r = 0; r < sizeof(cpuid_rules) / sizeof(cpuid_rules[0]); r++)
			if (rule_matches(&cpuid_rules[r], e, topo.vendor))
				cpuid_rules[r].patch(e, &topo);
	}
}
