/*
 * ACPI 6.3 tables for an rtvmm PC, all in LAYOUT_ACPI_START..END:
 *
 *   RSDP (rev 2) -> XSDT -> FADT -> FACS, DSDT
 *                        -> MADT
 *
 * The FADT describes full (not hardware-reduced) fixed hardware: a PM1a
 * event block (status/enable, 2+2 bytes), a PM1a control block and a reset
 * register, all in port I/O and served by the ACPI PM device, whose one
 * event is the fixed power button (SCI on IRQ 9, level, active high). There is no
 * PM timer, no GPE block and no SMI command port (the machine is always in
 * ACPI mode). The DSDT holds \_S0, \_S5, COM1, the i8042 and the PCI host
 * bridge (bus 0 through ports 0xCF8/0xCFC, BARs in LAYOUT_PCI_MMIO_*).
 */
#include "vmm/x86/tables.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "vmm/hw/acpi_pm.h"
#include "vmm/hw/i8042.h"
#include "vmm/x86/layout.h"

/* All multi-byte fields are little-endian: this file only builds on x86 hosts. */

#define ACPI_OEM_ID        "RTVMM "
#define ACPI_OEM_TABLE_ID  "RTVMM   "
#define ACPI_OEM_REVISION  1
#define ACPI_CREATOR_ID    "RTVM"
#define ACPI_CREATOR_REV   1

struct acpi_rsdp {
	char signature[8];        /* "RSD PTR " */
	uint8_t checksum;         /* over the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;         /* 2: has length, XSDT and extended checksum */
	uint32_t rsdt_addr;
	uint32_t length;
	uint64_t xsdt_addr;
	uint8_t ext_checksum;     /* over all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;      /* 1 byte, 2 word, 3 dword, 4 qword */
	uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_GAS_ACCESS_BYTE 1
#define ACPI_GAS_ACCESS_WORD 2

struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;   /* FACS */
	uint32_t dsdt;
	uint8_t reserved0;        /* was INT_MODEL in ACPI 1.0 */
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));

/* FADT flags. */
#define FADT_F_WBINVD         (1u << 0)
#define FADT_F_PROC_C1        (1u << 2)
#define FADT_F_PWR_BUTTON     (1u << 4)   /* set: no fixed-feature power button */
#define FADT_F_SLP_BUTTON     (1u << 5)   /* set: no fixed-feature sleep button */
#define FADT_F_FIX_RTC        (1u << 6)   /* set: no RTC wake status in PM1 */
#define FADT_F_RESET_REG_SUP  (1u << 10)
#define FADT_F_HEADLESS       (1u << 12)

/* IAPC_BOOT_ARCH. */
#define FADT_BOOT_LEGACY_DEVICES (1u << 0)
#define FADT_BOOT_8042           (1u << 1)
#define FADT_BOOT_NO_VGA         (1u << 2)
#define FADT_BOOT_NO_CMOS_RTC    (1u << 5)

/* P_LVLx latencies above these limits mean "C2/C3 not supported". */
#define FADT_NO_C2 101
#define FADT_NO_C3 1001

struct acpi_facs {
	char signature[4];        /* "FACS"; no checksum */
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags;
} __attribute__((packed));

#define MADT_PCAT_COMPAT 1u

enum madt_type {
	MADT_LAPIC = 0,
	MADT_IOAPIC = 1,
	MADT_ISO = 2,
	MADT_LAPIC_NMI = 4,
};

struct madt_lapic {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

#define MADT_LAPIC_ENABLED 1u

struct madt_ioapic {
	uint8_t type;
	uint8_t length;
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type;
	uint8_t length;
	uint8_t bus;              /* 0 = ISA */
	uint8_t source;           /* ISA IRQ */
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;    /* 0xff: all processors */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

/* MPS INTI flags: polarity bits 1:0, trigger bits 3:2; 0 = conforms to the bus. */
#define MPS_INTI_CONFORMS     0x0
#define MPS_INTI_ACTIVE_HIGH  0x1
#define MPS_INTI_LEVEL        (0x3 << 2)

#define MADT_NR_ISO 2
#define MADT_ALL_PROCESSORS 0xff

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");
_Static_assert(sizeof(struct acpi_header) == 36, "SDT header is 36 bytes");
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS is 12 bytes");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT (ACPI 6.x) is 276 bytes");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags at 112");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT at 140");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS is 64 bytes");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT header is 44 bytes");
_Static_assert(sizeof(struct madt_lapic) == 8, "MADT LAPIC is 8 bytes");
_Static_assert(sizeof(struct madt_ioapic) == 12, "MADT IOAPIC is 12 bytes");
_Static_assert(sizeof(struct madt_iso) == 10, "MADT ISO is 10 bytes");
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT LAPIC NMI is 6 bytes");

#define XSDT_NR_ENTRIES 2   /* FADT, MADT */

#define ACPI_AREA_SIZE (LAYOUT_ACPI_END - LAYOUT_ACPI_START)

/* ---- AML ---------------------------------------------------------------- */

/* A byte buffer that remembers overflow instead of writing past its end. */
struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool overflow;
};

#define AML_ZERO_OP     0x00
#define AML_ONE_OP      0x01
#define AML_NAME_OP     0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_DWORD_PREFIX 0x0c
#define AML_SCOPE_OP    0x10
#define AML_BUFFER_OP   0x11
#define AML_PACKAGE_OP  0x12
#define AML_EXT_PREFIX  0x5b
#define AML_DEVICE_OP   0x82
#define AML_ROOT_CHAR   0x5c

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	if (a->buf)
		memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* A 4-character name segment such as "_S5_". */
static void aml_nameseg(struct aml *a, const char seg[4])
{
	aml_bytes(a, seg, 4);
}

static void aml_integer(struct aml *a, uint32_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_byte(a, (uint8_t)v);
	} else {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_bytes(a, &v, 4);
	}
}

/* Opens a PkgLength-prefixed body; returns where the body starts. */
static size_t aml_pkg_begin(const struct aml *a)
{
	return a->len;
}

/*
 * Closes the body opened at `start`: inserts the PkgLength in front of it.
 * PkgLength counts itself, so its size depends on the body: 1 byte up to 63,
 * else a lead byte (count of extra bytes in bits 7:6, low nibble) + 1-3 bytes.
 */
static void aml_pkg_end(struct aml *a, size_t start)
{
	size_t body = a->len - start;
	uint8_t enc[4];
	size_t n, total, i;

	if (a->overflow)
		return;
	for (n = 1; n <= 4; n++) {
		total = body + n;
		if ((n == 1 && total < 0x40) || (n > 1 && total < (1ul << (4 + 8 * (n - 1)))))
			break;
	}
	if (n > 4 || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	if (a->buf) {
		memmove(a->buf + start + n, a->buf + start, body);
		memcpy(a->buf + start, enc, n);
	}
	a->len += n;
}

/* Name(seg, Package(){ v[0], ... }) */
static void aml_name_package(struct aml *a, const char seg[4], const uint32_t *v, uint8_t nr)
{
	size_t pkg;
	unsigned i;

	aml_byte(a, AML_NAME_OP);
	aml_nameseg(a, seg);
	aml_byte(a, AML_PACKAGE_OP);
	pkg = aml_pkg_begin(a);
	aml_byte(a, nr);
	for (i = 0; i < nr; i++)
		aml_integer(a, v[i]);
	aml_pkg_end(a, pkg);
}

static void aml_name_integer(struct aml *a, const char seg[4], uint32_t v)
{
	aml_byte(a, AML_NAME_OP);
	aml_nameseg(a, seg);
	aml_integer(a, v);
}

/* Compressed EISA id ("PNP0501") as the 32-bit integer _HID holds. */
static uint32_t eisa_id(const char id[7])
{
	uint16_t vendor = (uint16_t)(((id[0] - 0x40) << 10) | ((id[1] - 0x40) << 5) |
				     (id[2] - 0x40));
	unsigned product = 0;
	unsigned i;

	for (i = 3; i < 7; i++) {
		char c = id[i];

		product = product << 4 | (unsigned)(c <= '9' ? c - '0' : c - 'A' + 10);
	}
	/* Bytes in memory: vendor big-endian, then product big-endian. */
	return (uint32_t)(vendor >> 8) | (uint32_t)(vendor & 0xff) << 8 |
	       (uint32_t)(product >> 8) << 16 | (uint32_t)(product & 0xff) << 24;
}

#define RES_IO_LEN  8   /* small I/O port descriptor */
#define RES_IRQ_LEN 3   /* small IRQ descriptor without the flags byte */
#define RES_END_LEN 2

/* Name(_CRS, ResourceTemplate(){ IO(Decode16, p, p, 1, len)... IRQNoFlags(){irq} }) */
static void aml_crs(struct aml *a, const struct device_acpi *d)
{
	uint8_t res[2 * RES_IO_LEN + RES_IRQ_LEN + RES_END_LEN];
	size_t n = 0, buf;
	unsigned i;

	for (i = 0; i < d->nr_io; i++) {
		uint16_t port = d->io[i].port;
		const uint8_t io[RES_IO_LEN] = {
			0x47, 0x01,                          /* I/O port descriptor, 16-bit decode */
			(uint8_t)port, (uint8_t)(port >> 8), /* range minimum */
			(uint8_t)port, (uint8_t)(port >> 8), /* range maximum */
			0x01, d->io[i].len,                  /* alignment, length */
		};

		memcpy(res + n, io, sizeof(io));
		n += sizeof(io);
	}
	res[n++] = 0x22;                                 /* IRQ descriptor, no flags: edge/high */
	res[n++] = (uint8_t)(1u << d->irq);
	res[n++] = (uint8_t)((1u << d->irq) >> 8);
	res[n++] = 0x79;                                 /* end tag */
	res[n++] = 0x00;                                 /* checksum 0: "ignore" */

	aml_byte(a, AML_NAME_OP);
	aml_nameseg(a, "_CRS");
	aml_byte(a, AML_BUFFER_OP);
	buf = aml_pkg_begin(a);
	aml_integer(a, (uint32_t)n);
	aml_bytes(a, res, n);
	aml_pkg_end(a, buf);
}

/* Device(name){ _HID, _UID 1, _CRS } */
static void aml_isa_dev(struct aml *a, const struct device_acpi *d)
{
	size_t dev;

	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	dev = aml_pkg_begin(a);
	aml_nameseg(a, d->name);
	aml_name_integer(a, "_HID", eisa_id(d->hid));
	aml_name_integer(a, "_UID", 1);
	aml_crs(a, d);
	aml_pkg_end(a, dev);
}

#define RES_WORD_BUS_LEN  16  /* large descriptor 0x88 (word address space), bus numbers */
#define RES_DWORD_MEM_LEN 26  /* large descriptor 0x87 (dword address space), memory */
#define RES_ADDR_PRODUCER_FIXED 0x0c /* general flags: producer, positive decode, min/max fixed */
#define RES_MEM_RW_UNCACHED     0x01 /* memory flags: read-write, non-cacheable, static */

/*
 * The PCI host bridge's _CRS: bus 0 (the only one), the configuration
 * ports it consumes (0xCF8-0xCFF), and the MMIO window BARs live in. No I/O
 * window: rtvmm's PCI devices have no I/O BARs.
 */
static void aml_pci_crs(struct aml *a)
{
	const uint64_t base = LAYOUT_PCI_MMIO_BASE, size = LAYOUT_PCI_MMIO_SIZE;
	const uint32_t mem[5] = {
		0,                                   /* granularity */
		(uint32_t)base,                      /* range minimum */
		(uint32_t)(base + size - 1),         /* range maximum */
		0,                                   /* translation offset */
		(uint32_t)size,                      /* length */
	};
	const uint16_t bus[5] = { 0, 0, 0, 0, 1 }; /* granularity, min, max, translation, length */
	uint8_t res[RES_WORD_BUS_LEN + RES_IO_LEN + RES_DWORD_MEM_LEN + RES_END_LEN];
	size_t n = 0, buf;

	res[n++] = 0x88;                                 /* word address space descriptor */
	res[n++] = RES_WORD_BUS_LEN - 3;
	res[n++] = 0;
	res[n++] = 0x02;                                 /* bus number range */
	res[n++] = RES_ADDR_PRODUCER_FIXED;
	res[n++] = 0;
	memcpy(res + n, bus, sizeof(bus));
	n += sizeof(bus);

	res[n++] = 0x47;                                 /* I/O port descriptor, 16-bit decode */
	res[n++] = 0x01;
	res[n++] = (uint8_t)PORT_PCI_CONFIG_ADDRESS;
	res[n++] = (uint8_t)(PORT_PCI_CONFIG_ADDRESS >> 8);
	res[n++] = (uint8_t)PORT_PCI_CONFIG_ADDRESS;
	res[n++] = (uint8_t)(PORT_PCI_CONFIG_ADDRESS >> 8);
	res[n++] = 0x01;                                 /* alignment */
	res[n++] = 0x08;                                 /* 0xCF8-0xCFF */

	res[n++] = 0x87;                                 /* dword address space descriptor */
	res[n++] = RES_DWORD_MEM_LEN - 3;
	res[n++] = 0;
	res[n++] = 0x00;                                 /* memory range */
	res[n++] = RES_ADDR_PRODUCER_FIXED;
	res[n++] = RES_MEM_RW_UNCACHED;
	memcpy(res + n, mem, sizeof(mem));
	n += sizeof(mem);

	res[n++] = 0x79;                                 /* end tag */
	res[n++] = 0x00;

	aml_byte(a, AML_NAME_OP);
	aml_nameseg(a, "_CRS");
	aml_byte(a, AML_BUFFER_OP);
	buf = aml_pkg_begin(a);
	aml_integer(a, (uint32_t)n);
	aml_bytes(a, res, n);
	aml_pkg_end(a, buf);
}

/*
 * Device(PCI0){ _HID PNP0A03, _UID 0, _SEG 0, _BBN 0, _CRS }: the host
 * bridge of vmm/pci, where Linux's ACPI PCI root driver finds bus 0 and the
 * window its BARs may use. No _PRT: PCI devices here have no INTx (MSI-X).
 */
static void aml_pci_host(struct aml *a)
{
	size_t dev;

	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	dev = aml_pkg_begin(a);
	aml_nameseg(a, "PCI0");
	aml_name_integer(a, "_HID", eisa_id("PNP0A03"));
	aml_name_integer(a, "_UID", 0);
	aml_name_integer(a, "_SEG", 0);
	aml_name_integer(a, "_BBN", 0);
	aml_pci_crs(a);
	aml_pkg_end(a, dev);
}

/* Scope(\_SB){ Device(COM1){...} Device(PS2K){...} Device(PCI0){...} }: the ISA devices, then PCI. */
static void aml_sb(struct aml *a, const struct device_acpi *isa, unsigned nr_isa)
{
	size_t scope;
	unsigned i;

	aml_byte(a, AML_SCOPE_OP);
	scope = aml_pkg_begin(a);
	aml_byte(a, AML_ROOT_CHAR);
	aml_nameseg(a, "_SB_");
	for (i = 0; i < nr_isa; i++)
		aml_isa_dev(a, &isa[i]);
	aml_pci_host(a);
	aml_pkg_end(a, scope);
}

/* DSDT body (everything after the header). With a->buf NULL it only measures. */
static void dsdt_body(struct aml *a, const struct device_acpi *isa, unsigned nr_isa)
{
	/* SLP_TYPa, SLP_TYPb, reserved, reserved */
	static const uint32_t s0[4] = { 0, 0, 0, 0 };
	static const uint32_t s5[4] = { ACPI_PM_S5_SLP_TYP, ACPI_PM_S5_SLP_TYP, 0, 0 };

	aml_name_package(a, "_S0_", s0, 4);
	aml_name_package(a, "_S5_", s5, 4);
	aml_sb(a, isa, nr_isa);
}

static size_t dsdt_body_size(const struct device_acpi *isa, unsigned nr_isa)
{
	struct aml a = { .buf = NULL, .cap = ACPI_AREA_SIZE };

	dsdt_body(&a, isa, nr_isa);
	return a.len;
}

/* ---- tables -------------------------------------------------------------- */

/* Where each table goes, as offsets from LAYOUT_ACPI_START. */
struct acpi_plan {
	uint64_t rsdp, xsdt, fadt, facs, dsdt, madt, end;
	uint32_t xsdt_len, dsdt_len, madt_len;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static uint32_t madt_size(unsigned nr_vcpus)
{
	return (uint32_t)(sizeof(struct acpi_madt) + nr_vcpus * sizeof(struct madt_lapic) +
			  sizeof(struct madt_ioapic) + MADT_NR_ISO * sizeof(struct madt_iso) +
			  sizeof(struct madt_lapic_nmi));
}

static void acpi_plan(struct acpi_plan *p, unsigned nr_vcpus, const struct device_acpi *isa,
		      unsigned nr_isa)
{
	p->xsdt_len = (uint32_t)(sizeof(struct acpi_header) + XSDT_NR_ENTRIES * sizeof(uint64_t));
	p->dsdt_len = (uint32_t)(sizeof(struct acpi_header) + dsdt_body_size(isa, nr_isa));
	p->madt_len = madt_size(nr_vcpus);

	p->rsdp = 0;   /* 16-byte aligned, where the guest's scan starts */
	p->xsdt = align_up(p->rsdp + sizeof(struct acpi_rsdp), 16);
	p->fadt = align_up(p->xsdt + p->xsdt_len, 16);
	p->facs = align_up(p->fadt + sizeof(struct acpi_fadt), 64);   /* FACS: 64-byte aligned */
	p->dsdt = align_up(p->facs + sizeof(struct acpi_facs), 16);
	p->madt = align_up(p->dsdt + p->dsdt_len, 16);
	p->end = p->madt + p->madt_len;
}

static void acpi_header(struct acpi_header *h, const char sig[4], uint32_t len, uint8_t rev)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = ACPI_OEM_REVISION;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = ACPI_CREATOR_REV;
}

static void acpi_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = tables__checksum(h, h->length);
}

static struct acpi_gas gas_io(uint16_t port, uint8_t bytes, uint8_t access)
{
	return (struct acpi_gas){
		.space_id = ACPI_GAS_SYSTEM_IO,
		.bit_width = (uint8_t)(bytes * 8),
		.access_size = access,
		.address = port,
	};
}

static void write_fadt(uint8_t *area, const struct acpi_plan *p)
{
	struct acpi_fadt *f = (struct acpi_fadt *)(area + p->fadt);

	memset(f, 0, sizeof(*f));
	acpi_header(&f->h, "FACP", sizeof(*f), 6);
	f->minor_version = 3;
	f->firmware_ctrl = (uint32_t)(LAYOUT_ACPI_START + p->facs);
	f->x_firmware_ctrl = LAYOUT_ACPI_START + p->facs;
	f->dsdt = (uint32_t)(LAYOUT_ACPI_START + p->dsdt);
	f->x_dsdt = LAYOUT_ACPI_START + p->dsdt;
	f->sci_int = ACPI_SCI_IRQ;
	/* smi_cmd = 0: no SMM, the machine is in ACPI mode (SCI_EN set) from reset. */

	f->pm1a_evt_blk = PORT_ACPI_PM1A_EVT;
	f->pm1_evt_len = ACPI_PM1_EVT_LEN;
	f->x_pm1a_evt_blk = gas_io(PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_LEN, ACPI_GAS_ACCESS_WORD);
	f->pm1a_cnt_blk = PORT_ACPI_PM1A_CNT;
	f->pm1_cnt_len = ACPI_PM1_CNT_LEN;
	f->x_pm1a_cnt_blk = gas_io(PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_LEN, ACPI_GAS_ACCESS_WORD);

	f->p_lvl2_lat = FADT_NO_C2;
	f->p_lvl3_lat = FADT_NO_C3;
	f->iapc_boot_arch = FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042 | FADT_BOOT_NO_VGA |
			    FADT_BOOT_NO_CMOS_RTC;
	/* PWR_BUTTON clear: the power button is the fixed-feature one in PM1 (Linux's LNXPWRBN). */
	f->flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON |
		   FADT_F_FIX_RTC | FADT_F_RESET_REG_SUP | FADT_F_HEADLESS;
	f->reset_reg = gas_io(PORT_ACPI_RESET, ACPI_RESET_LEN, ACPI_GAS_ACCESS_BYTE);
	f->reset_value = ACPI_RESET_VALUE;
	acpi_seal(&f->h);
}

static void write_facs(uint8_t *area, const struct acpi_plan *p)
{
	struct acpi_facs *facs = (struct acpi_facs *)(area + p->facs);

	memset(facs, 0, sizeof(*facs));
	memcpy(facs->signature, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = 2;
}

static int write_dsdt(uint8_t *area, const struct acpi_plan *p, const struct device_acpi *isa,
		      unsigned nr_isa)
{
	struct acpi_header *h = (struct acpi_header *)(area + p->dsdt);
	struct aml a = {
		.buf = area + p->dsdt + sizeof(*h),
		.cap = p->dsdt_len - sizeof(*h),
	};

	dsdt_body(&a, isa, nr_isa);
	if (a.overflow || a.len != a.cap)
		return -E2BIG;
	/* Revision 2: integers in the definition block are 64-bit. */
	acpi_header(h, "DSDT", p->dsdt_len, 2);
	acpi_seal(h);
	return 0;
}

static uint8_t *put(uint8_t *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
	return dst + len;
}

static void write_madt(uint8_t *area, const struct acpi_plan *p, unsigned nr_vcpus)
{
	struct acpi_madt *m = (struct acpi_madt *)(area + p->madt);
	uint8_t ioapic_id = (uint8_t)nr_vcpus;
	uint8_t *e = (uint8_t *)(m + 1);
	const struct madt_iso iso[MADT_NR_ISO] = {
		{ .type = MADT_ISO, .length = sizeof(struct madt_iso), .bus = 0, .source = 0,
		  .gsi = TABLES_IRQ0_IOAPIC_PIN, .flags = MPS_INTI_CONFORMS },
		{ .type = MADT_ISO, .length = sizeof(struct madt_iso), .bus = 0,
		  .source = ACPI_SCI_IRQ, .gsi = ACPI_SCI_IRQ,
		  .flags = MPS_INTI_LEVEL | MPS_INTI_ACTIVE_HIGH },
	};
	unsigned i;

	acpi_header(&m->h, "APIC", p->madt_len, 5);
	m->lapic_addr = (uint32_t)LAYOUT_LAPIC;
	m->flags = MADT_PCAT_COMPAT;
	for (i = 0; i < nr_vcpus; i++)
		e = put(e, &(struct madt_lapic){
			.type = MADT_LAPIC,
			.length = sizeof(struct madt_lapic),
			.processor_uid = (uint8_t)i,
			.apic_id = (uint8_t)i,
			.flags = MADT_LAPIC_ENABLED,
		}, sizeof(struct madt_lapic));
	e = put(e, &(struct madt_ioapic){
		.type = MADT_IOAPIC,
		.length = sizeof(struct madt_ioapic),
		.ioapic_id = ioapic_id,
		.address = (uint32_t)LAYOUT_IOAPIC,
		.gsi_base = 0,
	}, sizeof(struct madt_ioapic));
	e = put(e, iso, sizeof(iso));
	put(e, &(struct madt_lapic_nmi){
		.type = MADT_LAPIC_NMI,
		.length = sizeof(struct madt_lapic_nmi),
		.processor_uid = MADT_ALL_PROCESSORS,
		.flags = MPS_INTI_CONFORMS,
		.lint = 1,
	}, sizeof(struct madt_lapic_nmi));
	acpi_seal(&m->h);
}

static void write_xsdt(uint8_t *area, const struct acpi_plan *p)
{
	struct acpi_header *h = (struct acpi_header *)(area + p->xsdt);
	const uint64_t entries[XSDT_NR_ENTRIES] = {
		LAYOUT_ACPI_START + p->fadt,
		LAYOUT_ACPI_START + p->madt,
	};

	acpi_header(h, "XSDT", p->xsdt_len, 1);
	memcpy(h + 1, entries, sizeof(entries));
	acpi_seal(h);
}

static void write_rsdp(uint8_t *area, const struct acpi_plan *p)
{
	struct acpi_rsdp *r = (struct acpi_rsdp *)(area + p->rsdp);

	memset(r, 0, sizeof(*r));
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, ACPI_OEM_ID, 6);
	r->revision = 2;
	r->rsdt_addr = 0;   /* no RSDT: the XSDT is the only root table */
	r->length = sizeof(*r);
	r->xsdt_addr = LAYOUT_ACPI_START + p->xsdt;
	r->checksum = tables__checksum(r, offsetof(struct acpi_rsdp, length));
	r->ext_checksum = tables__checksum(r, sizeof(*r));
}

int64_t acpi__write(struct guest_mem *mem, unsigned nr_vcpus, const struct device_acpi *isa,
		    unsigned nr_isa)
{
	struct acpi_plan plan;
	uint8_t *area;
	int err;

	if (nr_vcpus == 0)
		return -EINVAL;
	if (nr_vcpus > VM_MAX_VCPUS)
		return -E2BIG;
	acpi_plan(&plan, nr_vcpus, isa, nr_isa);
	if (plan.end > ACPI_AREA_SIZE)
		return -E2BIG;
	area = guest_mem__ptr(mem, LAYOUT_ACPI_START, ACPI_AREA_SIZE);
	if (!area)
		return -EFAULT;
	memset(area, 0, ACPI_AREA_SIZE);

	err = write_dsdt(area, &plan, isa, nr_isa);
	if (err)
		return err;
	write_facs(area, &plan);
	write_fadt(area, &plan);
	write_madt(area, &plan, nr_vcpus);
	write_xsdt(area, &plan);
	write_rsdp(area, &plan);
	return (int64_t)(LAYOUT_ACPI_START + plan.rsdp);
}
