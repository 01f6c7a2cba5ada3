/*
 * Intel MultiProcessor Specification 1.4 tables: a floating pointer the guest
 * finds by scanning 0xF0000-0xFFFFF, then the config table right after it.
 * Linux only falls back to these when it finds no ACPI MADT (e.g. acpi=off).
 */
#include "vmm/x86/tables.h"

#include <errno.h>
#include <string.h>

#include "vmm/x86/layout.h"

/* All multi-byte fields are little-endian: this file only builds on x86 hosts. */

struct mpf_intel {
	char signature[4];        /* "_MP_" */
	uint32_t physptr;         /* config table */
	uint8_t length;           /* in 16-byte units */
	uint8_t spec_rev;         /* 4 = MP 1.4 */
	uint8_t checksum;
	uint8_t feature[5];       /* feature1 0: config table present; feature2 0: virtual wire */
} __attribute__((packed));

struct mpc_table {
	char signature[4];        /* "PCMP" */
	uint16_t length;          /* base table including entries */
	uint8_t spec_rev;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_ptr;
	uint16_t oem_size;
	uint16_t entry_count;
	uint32_t lapic_addr;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

enum mp_entry_type {
	MP_PROCESSOR = 0,
	MP_BUS = 1,
	MP_IOAPIC = 2,
	MP_IOINTR = 3,
	MP_LINTR = 4,
};

struct mpc_cpu {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_ver;
	uint8_t cpu_flags;
	uint32_t signature;       /* CPUID 1 EAX: stepping/model/family */
	uint32_t feature_flags;   /* CPUID 1 EDX */
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_ver;
	uint8_t flags;
	uint32_t addr;
} __attribute__((packed));

/* I/O and local interrupt entries share one layout. */
struct mpc_intsrc {
	uint8_t type;
	uint8_t irq_type;
	uint16_t irq_flags;
	uint8_t src_bus;
	uint8_t src_irq;
	uint8_t dst_apic;
	uint8_t dst_pin;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer is 16 bytes");
_Static_assert(sizeof(struct mpc_table) == 44, "MP config header is 44 bytes");
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry is 20 bytes");
_Static_assert(sizeof(struct mpc_bus) == 8, "MP bus entry is 8 bytes");
_Static_assert(sizeof(struct mpc_ioapic) == 8, "MP IOAPIC entry is 8 bytes");
_Static_assert(sizeof(struct mpc_intsrc) == 8, "MP interrupt entry is 8 bytes");

#define MP_SPEC_REV_1_4   4
#define MP_CPU_ENABLED    0x01
#define MP_CPU_BSP        0x02
#define MP_IOAPIC_ENABLED 0x01
#define MP_LAPIC_VERSION  0x14   /* integrated xAPIC */
#define MP_IOAPIC_VERSION 0x11   /* 82093AA-compatible, as KVM's in-kernel IOAPIC */
#define MP_CPU_SIGNATURE  0x0600 /* family 6 */
#define MP_CPU_FEATURES   ((1u << 0) | (1u << 9))   /* FPU, APIC */

enum mp_irq_type { MP_INT = 0, MP_NMI = 1, MP_SMI = 2, MP_EXTINT = 3 };

/* irq_flags: polarity in bits 1:0, trigger mode in bits 3:2; 0 = conforms to the bus. */
#define MP_IRQ_CONFORMS      0x0
#define MP_IRQ_ACTIVE_HIGH   0x1
#define MP_IRQ_LEVEL         (0x3 << 2)

/*
 * Bus ids: Linux matches the source bus of PCI interrupt entries against the
 * PCI bus number, so the PCI root bus is MP bus 0 and ISA comes after it.
 */
#define MP_BUS_PCI 0
#define MP_BUS_ISA 1
#define MP_NR_BUSES 2

#define ISA_IRQS 16
#define ISA_IRQ_CASCADE 2
#define MP_NR_ISA_ROUTES (ISA_IRQS - 1)
#define MP_NR_LINTS 2
#define MP_ALL_LAPICS 0xff

#define MP_AREA_SIZE (LAYOUT_BIOS_END - LAYOUT_MPTABLE)

uint8_t tables__checksum(const void *buf, uint64_t len)
{
	const uint8_t *p = buf;
	uint8_t sum = 0;
	uint64_t i;

	for (i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

static uint64_t mptable_size(unsigned nr_vcpus)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
	       nr_vcpus * sizeof(struct mpc_cpu) + MP_NR_BUSES * sizeof(struct mpc_bus) +
	       sizeof(struct mpc_ioapic) +
	       (MP_NR_ISA_ROUTES + MP_NR_LINTS) * sizeof(struct mpc_intsrc);
}

static uint8_t *put(uint8_t *p, const void *entry, size_t len)
{
	memcpy(p, entry, len);
	return p + len;
}

static uint8_t *put_bus(uint8_t *p, uint8_t id, const char type[6])
{
	struct mpc_bus bus = { .type = MP_BUS, .bus_id = id };

	memcpy(bus.bus_type, type, sizeof(bus.bus_type));
	return put(p, &bus, sizeof(bus));
}

/* ISA IRQs 0..15 except the cascade; IRQ0 goes to pin 2, the SCI is level/high. */
static uint8_t *put_isa_routes(uint8_t *p, uint8_t ioapic_id)
{
	unsigned irq;

	for (irq = 0; irq < ISA_IRQS; irq++) {
		struct mpc_intsrc src = {
			.type = MP_IOINTR,
			.irq_type = MP_INT,
			.irq_flags = MP_IRQ_CONFORMS,
			.src_bus = MP_BUS_ISA,
			.src_irq = (uint8_t)irq,
			.dst_apic = ioapic_id,
			.dst_pin = (uint8_t)irq,
		};

		if (irq == ISA_IRQ_CASCADE)
			continue;
		if (irq == 0)
			src.dst_pin = TABLES_IRQ0_IOAPIC_PIN;
		if (irq == ACPI_SCI_IRQ)
			src.irq_flags = MP_IRQ_LEVEL | MP_IRQ_ACTIVE_HIGH;
		p = put(p, &src, sizeof(src));
	}
	return p;
}

static uint8_t *put_local_ints(uint8_t *p)
{
	const struct mpc_intsrc lint[MP_NR_LINTS] = {
		{ .type = MP_LINTR, .irq_type = MP_EXTINT, .src_bus = MP_BUS_ISA,
		  .src_irq = 0, .dst_apic = MP_ALL_LAPICS, .dst_pin = 0 },
		{ .type = MP_LINTR, .irq_type = MP_NMI, .src_bus = MP_BUS_ISA,
		  .src_irq = 0, .dst_apic = MP_ALL_LAPICS, .dst_pin = 1 },
	};

	return put(p, lint, sizeof(lint));
}

int mptable__write(struct guest_mem *mem, unsigned nr_vcpus)
{
	uint8_t *base, *p;
	struct mpf_intel mpf;
	struct mpc_table *mpc;
	uint64_t size;
	uint8_t ioapic_id;
	unsigned i;

	if (nr_vcpus == 0)
		return -EINVAL;
	if (nr_vcpus > VM_MAX_VCPUS)
		return -E2BIG;
	size = mptable_size(nr_vcpus);
	if (size > MP_AREA_SIZE)
		return -E2BIG;
	base = guest_mem__ptr(mem, LAYOUT_MPTABLE, MP_AREA_SIZE);
	if (!base)
		return -EFAULT;
	memset(base, 0, MP_AREA_SIZE);
	ioapic_id = (uint8_t)nr_vcpus;

	/* Config table right after the 16-byte floating pointer. */
	mpc = (struct mpc_table *)(base + sizeof(struct mpf_intel));
	p = (uint8_t *)(mpc + 1);
	for (i = 0; i < nr_vcpus; i++) {
		struct mpc_cpu cpu = {
			.type = MP_PROCESSOR,
			.apic_id = (uint8_t)i,
			.apic_ver = MP_LAPIC_VERSION,
			.cpu_flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
			.signature = MP_CPU_SIGNATURE,
			.feature_flags = MP_CPU_FEATURES,
		};

		p = put(p, &cpu, sizeof(cpu));
	}
	p = put_bus(p, MP_BUS_PCI, "PCI   ");
	p = put_bus(p, MP_BUS_ISA, "ISA   ");
	p = put(p, &(struct mpc_ioapic){
		.type = MP_IOAPIC,
		.apic_id = ioapic_id,
		.apic_ver = MP_IOAPIC_VERSION,
		.flags = MP_IOAPIC_ENABLED,
		.addr = (uint32_t)LAYOUT_IOAPIC,
	}, sizeof(struct mpc_ioapic));
	p = put_isa_routes(p, ioapic_id);
	p = put_local_ints(p);

	*mpc = (struct mpc_table){
		.signature = { 'P', 'C', 'M', 'P' },
		.length = (uint16_t)(p - (uint8_t *)mpc),
		.spec_rev = MP_SPEC_REV_1_4,
		.entry_count = (uint16_t)(nr_vcpus + MP_NR_BUSES + 1 + MP_NR_ISA_ROUTES +
					  MP_NR_LINTS),
		.lapic_addr = (uint32_t)LAYOUT_LAPIC,
	};
	memcpy(mpc->oem, "RTVMM   ", sizeof(mpc->oem));
	memcpy(mpc->product, "RTVMM PC    ", sizeof(mpc->product));
	mpc->checksum = tables__checksum(mpc, mpc->length);

	mpf = (struct mpf_intel){
		.signature = { '_', 'M', 'P', '_' },
		.physptr = (uint32_t)(LAYOUT_MPTABLE + sizeof(struct mpf_intel)),
		.length = 1,
		.spec_rev = MP_SPEC_REV_1_4,
	};
	mpf.checksum = tables__checksum(&mpf, sizeof(mpf));
	memcpy(base, &mpf, sizeof(mpf));
	return 0;
}
