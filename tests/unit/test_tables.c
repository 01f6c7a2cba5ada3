/*
 * MP and ACPI tables, read back the way a guest reads them: scan for the
 * anchor on 16-byte boundaries, follow pointers, check every checksum, and
 * read fields at the offsets the specifications give (not through the
 * writer's structs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>

#include "vmm/bus.h"
#include "vmm/device.h"
#include "vmm/guest_mem.h"
#include "vmm/hw/acpi_pm.h"
#include "vmm/hw/i8042.h"
#include "vmm/hw/serial.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/tables.h"

#define RAM_SIZE (2ull << 20)

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint8_t sum8(const uint8_t *p, uint64_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* The DSDT's legacy devices as the real UART and i8042 describe themselves (COM1 at IRQ 4, keyboard at 1). */
static struct device_acpi isa[4];
static unsigned nr_isa;

static void irq_none(void *opaque, unsigned gsi, int level)
{
	(void)opaque, (void)gsi, (void)level;
}

static int describe_pc_devices(void)
{
	struct irq_sink com1 = { .set = irq_none, .gsi = PORT_COM1_IRQ }, kbd = { .set = irq_none, .gsi = 1 };
	struct vm_ctl ctl = { 0 };
	struct device_list devs = { 0 };
	struct serial *s;
	struct i8042 *k;
	struct bus pio;
	int err;

	bus__init(&pio, "pio");
	err = serial__add(&pio, PORT_COM1, &com1, -1, &s);
	if (!err && device_list__add(&devs, "COM1", &serial__device_ops, s))
		serial__destroy(s), err = -ENOMEM;
	if (!err)
		err = i8042__add(&pio, &ctl, &k);
	if (!err) {
		i8042__set_irqs(k, &kbd, NULL);
		if (device_list__add(&devs, "i8042", &i8042__device_ops, k))
			i8042__destroy(k), err = -ENOMEM;
	}
	if (!err)
		nr_isa = device_list__acpi(&devs, isa, 4);
	device_list__destroy(&devs);
	bus__exit(&pio);
	return err || nr_isa != 2 ? -1 : 0;
}

static int setup_mem(void **state)
{
	static struct guest_mem mem;

	if (describe_pc_devices() || guest_mem__create(&mem, RAM_SIZE))
		return -1;
	*state = &mem;
	return 0;
}

static int teardown_mem(void **state)
{
	guest_mem__destroy(*state);
	return 0;
}

static const uint8_t *gpa(const struct guest_mem *mem, uint64_t addr, uint64_t len)
{
	const uint8_t *p = guest_mem__ptr(mem, addr, len);

	assert_non_null(p);
	return p;
}

/* ---- ACPI, as Linux finds it ---------------------------------------------- */

/* Linux's acpi_find_root_pointer: 16-byte steps over E0000-FFFFF, signature + checksums. */
static uint64_t scan_rsdp(const struct guest_mem *mem)
{
	uint64_t a;

	for (a = 0xE0000; a < 0x100000; a += 16) {
		const uint8_t *p = gpa(mem, a, 16);

		if (memcmp(p, "RSD PTR ", 8))
			continue;
		p = gpa(mem, a, 36);
		if (sum8(p, 20))
			continue;
		if (p[15] >= 2 && sum8(p, rd32(p + 20)))
			continue;
		return a;
	}
	return 0;
}

/* Validates an SDT at `addr` (signature, length, checksum) and returns it. */
static const uint8_t *sdt(const struct guest_mem *mem, uint64_t addr, const char sig[4])
{
	const uint8_t *t = gpa(mem, addr, 36);
	uint32_t len = rd32(t + 4);

	assert_memory_equal(t, sig, 4);
	assert_true(len >= 36);
	t = gpa(mem, addr, len);
	assert_int_equal(sum8(t, len), 0);
	assert_memory_equal(t + 10, "RTVMM ", 6);
	return t;
}

/* Follows RSDP -> XSDT to the table with signature `sig`. */
static const uint8_t *find_table(const struct guest_mem *mem, const char sig[4])
{
	uint64_t rsdp = scan_rsdp(mem);
	const uint8_t *xsdt;
	uint32_t i, n;

	assert_int_not_equal(rsdp, 0);
	xsdt = sdt(mem, rd64(gpa(mem, rsdp, 36) + 24), "XSDT");
	n = (rd32(xsdt + 4) - 36) / 8;
	for (i = 0; i < n; i++) {
		uint64_t addr = rd64(xsdt + 36 + 8 * i);
		const uint8_t *t = gpa(mem, addr, 36);

		if (!memcmp(t, sig, 4))
			return sdt(mem, addr, sig);
	}
	fail_msg("no %.4s in the XSDT", sig);
	return NULL;
}

static void test_rsdp_found_by_linux_scan_with_valid_checksums(void **state)
{
	struct guest_mem *mem = *state;
	int64_t rsdp = acpi__write(mem, 2, isa, nr_isa);
	const uint8_t *p;

	assert_int_equal(rsdp, LAYOUT_ACPI_START);
	assert_int_equal(scan_rsdp(mem), rsdp);
	p = gpa(mem, rsdp, 36);
	assert_int_equal(p[15], 2);              /* revision: ACPI 2.0+ */
	assert_int_equal(rd32(p + 20), 36);      /* length */
	assert_int_equal(sum8(p, 20), 0);
	assert_int_equal(sum8(p, 36), 0);
	assert_memory_equal(p + 9, "RTVMM ", 6);
	assert_int_not_equal(rd64(p + 24), 0);   /* XSDT */
}

static void test_xsdt_lists_fadt_and_madt_inside_acpi_area(void **state)
{
	struct guest_mem *mem = *state;
	const uint8_t *xsdt;
	uint32_t i;

	assert_true(acpi__write(mem, 2, isa, nr_isa) > 0);
	xsdt = sdt(mem, rd64(gpa(mem, scan_rsdp(mem), 36) + 24), "XSDT");
	assert_int_equal(rd32(xsdt + 4), 36 + 2 * 8);
	for (i = 0; i < 2; i++) {
		uint64_t addr = rd64(xsdt + 36 + 8 * i);

		assert_true(addr >= LAYOUT_ACPI_START && addr < LAYOUT_ACPI_END);
		assert_true(addr + rd32(gpa(mem, addr, 8) + 4) <= LAYOUT_ACPI_END);
	}
	find_table(mem, "FACP");
	find_table(mem, "APIC");
}

static void assert_gas_io(const uint8_t *g, uint16_t port, uint8_t bits)
{
	assert_int_equal(g[0], 1);              /* system I/O */
	assert_int_equal(g[1], bits);
	assert_int_equal(g[2], 0);
	assert_int_equal(rd64(g + 4), port);
}

static void test_fadt_describes_pm1_ports_sci_power_button_and_reset(void **state)
{
	struct guest_mem *mem = *state;
	const uint8_t *f;
	uint32_t flags;

	assert_true(acpi__write(mem, 1, isa, nr_isa) > 0);
	f = find_table(mem, "FACP");
	assert_int_equal(rd32(f + 4), 276);
	assert_int_equal(f[8], 6);                          /* revision */
	assert_int_equal(rd16(f + 46), ACPI_SCI_IRQ);
	assert_int_equal(rd32(f + 48), 0);                  /* no SMI_CMD: always ACPI mode */
	assert_int_equal(rd32(f + 56), PORT_ACPI_PM1A_EVT);
	assert_int_equal(rd32(f + 64), PORT_ACPI_PM1A_CNT);
	assert_int_equal(rd32(f + 76), 0);                  /* no PM timer */
	assert_int_equal(f[88], 4);                         /* PM1_EVT_LEN */
	assert_int_equal(f[89], 2);                         /* PM1_CNT_LEN */
	assert_int_equal(f[91], 0);                         /* PM_TMR_LEN */
	assert_int_equal(rd16(f + 109) & 0x3, 0x3);        /* LEGACY_DEVICES | 8042 */
	flags = rd32(f + 112);
	assert_true(flags & (1u << 10));                    /* RESET_REG_SUP */
	assert_false(flags & (1u << 20));                   /* not HW_REDUCED_ACPI */
	assert_false(flags & (1u << 4));                    /* a fixed power button (PM1) */
	assert_true(flags & (1u << 5));                     /* no fixed sleep button */
	assert_gas_io(f + 116, PORT_ACPI_RESET, 8);
	assert_int_equal(f[128], ACPI_RESET_VALUE);
	assert_gas_io(f + 148, PORT_ACPI_PM1A_EVT, 32);    /* X_PM1a_EVT_BLK */
	assert_gas_io(f + 172, PORT_ACPI_PM1A_CNT, 16);    /* X_PM1a_CNT_BLK */
	assert_int_equal(rd64(f + 208), 0);                 /* X_PM_TMR_BLK */
}

static void test_fadt_points_to_facs_and_dsdt_in_both_widths(void **state)
{
	struct guest_mem *mem = *state;
	const uint8_t *f, *facs;

	assert_true(acpi__write(mem, 1, isa, nr_isa) > 0);
	f = find_table(mem, "FACP");
	assert_int_equal(rd32(f + 36), rd64(f + 132));     /* FIRMWARE_CTRL == X_FIRMWARE_CTRL */
	assert_int_equal(rd32(f + 40), rd64(f + 140));     /* DSDT == X_DSDT */
	assert_int_equal(rd64(f + 132) % 64, 0);           /* FACS is 64-byte aligned */
	facs = gpa(mem, rd64(f + 132), 64);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(rd32(facs + 4), 64);
	sdt(mem, rd64(f + 140), "DSDT");
}

/* Finds Name(seg, Package(){4 integers}) in the DSDT and decodes the integers. */
static void dsdt_sleep_package(const struct guest_mem *mem, const char seg[4], unsigned v[4])
{
	const uint8_t *f = find_table(mem, "FACP");
	const uint8_t *d = sdt(mem, rd64(f + 140), "DSDT");
	uint32_t len = rd32(d + 4), i;

	for (i = 36; i + 16 <= len; i++) {
		const uint8_t *p = d + i;
		const uint8_t *e;
		unsigned k;

		if (p[0] != 0x08 || memcmp(p + 1, seg, 4) || p[5] != 0x12)
			continue;
		assert_true(p[6] < 0x40);                   /* one-byte PkgLength */
		assert_int_equal(p[7], 4);                  /* NumElements */
		e = p + 8;
		for (k = 0; k < 4; k++) {
			if (e[0] == 0x0a) {                 /* BytePrefix */
				v[k] = e[1];
				e += 2;
			} else {
				assert_true(e[0] <= 1);      /* ZeroOp / OneOp */
				v[k] = e[0];
				e += 1;
			}
		}
		assert_int_equal(e - (p + 6), p[6]);        /* PkgLength covers exactly this */
		return;
	}
	fail_msg("no Name(%.4s, Package) in the DSDT", seg);
}

static void test_dsdt_s5_package_gives_poweroff_slp_typ(void **state)
{
	struct guest_mem *mem = *state;
	unsigned v[4];

	assert_true(acpi__write(mem, 1, isa, nr_isa) > 0);
	dsdt_sleep_package(mem, "_S5_", v);
	assert_int_equal(v[0], ACPI_PM_S5_SLP_TYP);        /* SLP_TYPa */
	assert_int_equal(v[1], ACPI_PM_S5_SLP_TYP);        /* SLP_TYPb */
	assert_int_equal(v[2], 0);
	assert_int_equal(v[3], 0);
	dsdt_sleep_package(mem, "_S0_", v);
	assert_int_equal(v[0] | v[1] | v[2] | v[3], 0);
}

static void test_dsdt_describes_com1_and_i8042_keyboard_only(void **state)
{
	struct guest_mem *mem = *state;
	const uint8_t *f, *d;
	/* Name(_HID, EisaId(...)) as DWordConst, and the first I/O descriptor of each _CRS. */
	const uint8_t pnp0501[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	const uint8_t pnp0303[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x03, 0x03 };
	const uint8_t pnp0f13[] = { 0x41, 0xd0, 0x0f, 0x13 };
	const uint8_t com1_io[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08 };
	const uint8_t kbd_io[] = { 0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01,
				   0x47, 0x01, 0x64, 0x00, 0x64, 0x00, 0x01, 0x01,
				   0x22, 0x02, 0x00 };   /* IRQ 1 */
	uint32_t len;

	assert_true(acpi__write(mem, 1, isa, nr_isa) > 0);
	f = find_table(mem, "FACP");
	d = sdt(mem, rd64(f + 140), "DSDT");
	len = rd32(d + 4);
	assert_int_equal(d[8], 2);                          /* 64-bit AML integers */
	assert_non_null(memmem(d, len, "COM1", 4));
	assert_non_null(memmem(d, len, pnp0501, sizeof(pnp0501)));
	assert_non_null(memmem(d, len, com1_io, sizeof(com1_io)));
	assert_non_null(memmem(d, len, pnp0303, sizeof(pnp0303)));
	assert_non_null(memmem(d, len, kbd_io, sizeof(kbd_io)));
	/* No PS/2 mouse: Linux then leaves the aux port alone. */
	assert_null(memmem(d, len, pnp0f13, sizeof(pnp0f13)));
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void test_dsdt_describes_pci_host_bridge_with_bus0_ports_and_window(void **state)
{
	struct guest_mem *mem = *state;
	const uint8_t *f, *d;
	const uint8_t pnp0a03[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	const uint8_t bbn[] = { 0x08, '_', 'B', 'B', 'N', 0x00 };
	const uint8_t seg[] = { 0x08, '_', 'S', 'E', 'G', 0x00 };
	/* WordBusNumber producer, fixed 0..0, length 1. */
	const uint8_t bus[] = { 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	/* IO(Decode16, 0xCF8, 0xCF8, 1, 8): the configuration ports. */
	const uint8_t cfg_io[] = { 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08 };
	uint8_t window[26] = { 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01 };
	uint32_t len;

	put32(window + 10, (uint32_t)LAYOUT_PCI_MMIO_BASE);
	put32(window + 14, (uint32_t)(LAYOUT_PCI_MMIO_BASE + LAYOUT_PCI_MMIO_SIZE - 1));
	put32(window + 22, (uint32_t)LAYOUT_PCI_MMIO_SIZE);
	assert_true(acpi__write(mem, 1, isa, nr_isa) > 0);
	f = find_table(mem, "FACP");
	d = sdt(mem, rd64(f + 140), "DSDT");
	len = rd32(d + 4);
	assert_non_null(memmem(d, len, "PCI0", 4));
	assert_non_null(memmem(d, len, pnp0a03, sizeof(pnp0a03)));
	assert_non_null(memmem(d, len, bbn, sizeof(bbn)));
	assert_non_null(memmem(d, len, seg, sizeof(seg)));
	assert_non_null(memmem(d, len, bus, sizeof(bus)));
	assert_non_null(memmem(d, len, cfg_io, sizeof(cfg_io)));
	assert_non_null(memmem(d, len, window, sizeof(window)));
}

static void test_pci_window_avoids_fixed_devices_and_ram(void **state)
{
	const uint64_t lo = LAYOUT_PCI_MMIO_BASE, hi = LAYOUT_PCI_MMIO_BASE + LAYOUT_PCI_MMIO_SIZE;

	(void)state;
	assert_true(lo >= GUEST_PCI_HOLE_START);       /* never RAM */
	assert_true(hi <= LAYOUT_IOAPIC);              /* IOAPIC, LAPIC above */
	assert_true(LAYOUT_TESTDEV_MMIO + LAYOUT_TESTDEV_MMIO_SIZE <= lo || LAYOUT_TESTDEV_MMIO >= hi);
}

/* Walks the MADT's interrupt controller structures, counting by type. */
struct madt_view {
	unsigned lapics, ioapics, isos, nmis;
	uint8_t lapic_seen[256];
	uint8_t ioapic_id;
	uint32_t ioapic_addr, ioapic_gsi_base;
	uint32_t iso_gsi[16];
	uint16_t iso_flags[16];
	uint8_t nmi_uid, nmi_lint;
};

static void madt_walk(const uint8_t *m, struct madt_view *v)
{
	uint32_t len = rd32(m + 4), off = 44;

	memset(v, 0, sizeof(*v));
	memset(v->iso_gsi, 0xff, sizeof(v->iso_gsi));
	while (off < len) {
		const uint8_t *e = m + off;

		assert_true(off + 2 <= len && e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], e[3]);             /* UID == APIC id */
			assert_true(rd32(e + 4) & 1);             /* enabled */
			assert_int_equal(v->lapic_seen[e[3]], 0);
			v->lapic_seen[e[3]] = 1;
			v->lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			v->ioapic_id = e[2];
			v->ioapic_addr = rd32(e + 4);
			v->ioapic_gsi_base = rd32(e + 8);
			v->ioapics++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0);                /* ISA */
			assert_true(e[3] < 16);
			v->iso_gsi[e[3]] = rd32(e + 4);
			v->iso_flags[e[3]] = rd16(e + 8);
			v->isos++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			v->nmi_uid = e[2];
			v->nmi_lint = e[5];
			v->nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(off, len);
}

static void test_madt_lists_one_lapic_per_vcpu(void **state)
{
	static const unsigned counts[] = { 1, 2, 3, 8, VM_MAX_VCPUS };
	struct guest_mem *mem = *state;
	struct madt_view v;
	unsigned c, i;

	for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		const uint8_t *m;

		assert_true(acpi__write(mem, counts[c], isa, nr_isa) > 0);
		m = find_table(mem, "APIC");
		assert_int_equal(rd32(m + 36), LAYOUT_LAPIC);
		assert_int_equal(rd32(m + 40) & 1, 1);     /* PCAT_COMPAT */
		madt_walk(m, &v);
		assert_int_equal(v.lapics, counts[c]);
		for (i = 0; i < counts[c]; i++)
			assert_int_equal(v.lapic_seen[i], 1);
	}
}

static void test_madt_ioapic_overrides_and_nmi(void **state)
{
	struct guest_mem *mem = *state;
	struct madt_view v;

	assert_true(acpi__write(mem, 4, isa, nr_isa) > 0);
	madt_walk(find_table(mem, "APIC"), &v);
	assert_int_equal(v.ioapics, 1);
	assert_int_equal(v.ioapic_id, 4);                   /* after the LAPIC ids */
	assert_int_equal(v.ioapic_addr, LAYOUT_IOAPIC);
	assert_int_equal(v.ioapic_gsi_base, 0);
	assert_int_equal(v.iso_gsi[0], TABLES_IRQ0_IOAPIC_PIN);   /* PIT: IRQ0 -> GSI2 */
	assert_int_equal(v.iso_flags[0], 0);                /* ISA default: edge, high */
	assert_int_equal(v.iso_gsi[ACPI_SCI_IRQ], ACPI_SCI_IRQ);
	assert_int_equal(v.iso_flags[ACPI_SCI_IRQ], 0xd);   /* level, active high */
	assert_int_equal(v.nmis, 1);
	assert_int_equal(v.nmi_uid, 0xff);
	assert_int_equal(v.nmi_lint, 1);
}

static void test_acpi_rejects_zero_and_too_many_vcpus(void **state)
{
	struct guest_mem *mem = *state;

	assert_int_equal(acpi__write(mem, 0, isa, nr_isa), -EINVAL);
	assert_int_equal(acpi__write(mem, VM_MAX_VCPUS + 1, isa, nr_isa), -E2BIG);
	assert_int_equal(acpi__write(mem, 1000, isa, nr_isa), -E2BIG);
}

static void test_tables_need_ram_under_1m(void **state)
{
	struct guest_mem small;

	(void)state;
	assert_int_equal(guest_mem__create(&small, 512 << 10), 0);
	assert_int_equal(acpi__write(&small, 1, isa, nr_isa), -EFAULT);
	assert_int_equal(mptable__write(&small, 1), -EFAULT);
	guest_mem__destroy(&small);
}

/* ---- MP table -------------------------------------------------------------- */

/* Linux's smp_scan_config over F0000-FFFFF: "_MP_", length 1, checksum. */
static uint64_t scan_mpf(const struct guest_mem *mem)
{
	uint64_t a;

	for (a = 0xF0000; a < 0x100000; a += 16) {
		const uint8_t *p = gpa(mem, a, 16);

		if (!memcmp(p, "_MP_", 4) && p[8] == 1 && sum8(p, 16) == 0)
			return a;
	}
	return 0;
}

struct mp_view {
	unsigned cpus, bsps, buses, ioapics, intsrcs, lints;
	uint8_t cpu_seen[256];
	int isa_bus;
	uint8_t ioapic_id;
	uint32_t ioapic_addr;
	int isa_pin[16];
	uint16_t isa_flags[16];
	uint8_t lint_type[2];
};

static const uint8_t *mp_config(const struct guest_mem *mem)
{
	uint64_t mpf = scan_mpf(mem);
	const uint8_t *p, *c;
	uint16_t len;

	assert_int_equal(mpf, LAYOUT_MPTABLE);
	p = gpa(mem, mpf, 16);
	assert_int_equal(p[9], 4);                          /* MP 1.4 */
	assert_int_equal(p[11], 0);                         /* config table present */
	c = gpa(mem, rd32(p + 4), 44);
	assert_memory_equal(c, "PCMP", 4);
	len = rd16(c + 4);
	c = gpa(mem, rd32(p + 4), len);
	assert_true(rd32(p + 4) + len <= LAYOUT_BIOS_END);
	assert_int_equal(c[6], 4);
	assert_int_equal(sum8(c, len), 0);
	assert_memory_equal(c + 8, "RTVMM", 5);
	assert_int_equal(rd32(c + 36), LAYOUT_LAPIC);
	return c;
}

static void mp_walk(const uint8_t *c, struct mp_view *v)
{
	uint16_t len = rd16(c + 4), count = rd16(c + 34), n = 0;
	uint32_t off = 44;
	int i;

	memset(v, 0, sizeof(*v));
	v->isa_bus = -1;
	for (i = 0; i < 16; i++)
		v->isa_pin[i] = -1;
	while (off < len) {
		const uint8_t *e = c + off;

		switch (e[0]) {
		case 0:
			assert_true(e[3] & 1);                    /* enabled */
			assert_int_equal(v->cpu_seen[e[1]], 0);
			v->cpu_seen[e[1]] = 1;
			if (e[3] & 2) {
				assert_int_equal(e[1], 0);      /* the BSP is APIC 0 */
				v->bsps++;
			}
			v->cpus++;
			off += 20;
			break;
		case 1:
			if (!memcmp(e + 2, "ISA   ", 6))
				v->isa_bus = e[1];
			v->buses++;
			off += 8;
			break;
		case 2:
			assert_true(e[3] & 1);
			v->ioapic_id = e[1];
			v->ioapic_addr = rd32(e + 4);
			v->ioapics++;
			off += 8;
			break;
		case 3:
			assert_int_equal(e[1], 0);                /* mp_INT */
			assert_int_equal(e[4], v->isa_bus);
			assert_int_equal(e[6], v->ioapic_id);
			assert_int_equal(v->isa_pin[e[5]], -1);
			v->isa_pin[e[5]] = e[7];
			v->isa_flags[e[5]] = rd16(e + 2);
			v->intsrcs++;
			off += 8;
			break;
		case 4:
			assert_int_equal(e[6], 0xff);             /* all LAPICs */
			assert_true(e[7] < 2);
			v->lint_type[e[7]] = e[1];
			v->lints++;
			off += 8;
			break;
		default:
			fail_msg("unexpected MP entry type %u", e[0]);
		}
		n++;
	}
	assert_int_equal(off, len);
	assert_int_equal(n, count);
}

static void test_mptable_lists_one_cpu_per_vcpu_with_bsp_first(void **state)
{
	static const unsigned counts[] = { 1, 2, 5, VM_MAX_VCPUS };
	struct guest_mem *mem = *state;
	struct mp_view v;
	unsigned c, i;

	for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		assert_int_equal(mptable__write(mem, counts[c]), 0);
		mp_walk(mp_config(mem), &v);
		assert_int_equal(v.cpus, counts[c]);
		assert_int_equal(v.bsps, 1);
		for (i = 0; i < counts[c]; i++)
			assert_int_equal(v.cpu_seen[i], 1);
	}
}

static void test_mptable_routes_isa_irqs_like_the_madt(void **state)
{
	struct guest_mem *mem = *state;
	struct mp_view v;
	int irq;

	assert_int_equal(mptable__write(mem, 3), 0);
	mp_walk(mp_config(mem), &v);
	assert_int_not_equal(v.isa_bus, -1);
	assert_int_equal(v.ioapics, 1);
	assert_int_equal(v.ioapic_id, 3);
	assert_int_equal(v.ioapic_addr, LAYOUT_IOAPIC);
	assert_int_equal(v.intsrcs, 15);
	assert_int_equal(v.isa_pin[0], TABLES_IRQ0_IOAPIC_PIN);   /* IRQ0 -> pin 2 */
	assert_int_equal(v.isa_pin[2], -1);                 /* cascade not listed */
	for (irq = 1; irq < 16; irq++)
		if (irq != 2)
			assert_int_equal(v.isa_pin[irq], irq);
	assert_int_equal(v.isa_flags[ACPI_SCI_IRQ], 0xd);   /* level, active high */
	assert_int_equal(v.isa_flags[4], 0);
	assert_int_equal(v.lints, 2);
	assert_int_equal(v.lint_type[0], 3);                /* LINT0 ExtINT */
	assert_int_equal(v.lint_type[1], 1);                /* LINT1 NMI */
}

static void test_mptable_rejects_zero_and_too_many_vcpus(void **state)
{
	struct guest_mem *mem = *state;

	assert_int_equal(mptable__write(mem, 0), -EINVAL);
	assert_int_equal(mptable__write(mem, VM_MAX_VCPUS + 1), -E2BIG);
}

static void test_mptable_and_acpi_coexist(void **state)
{
	struct guest_mem *mem = *state;
	struct madt_view mv;
	struct mp_view pv;

	assert_true(acpi__write(mem, 6, isa, nr_isa) > 0);
	assert_int_equal(mptable__write(mem, 6), 0);
	madt_walk(find_table(mem, "APIC"), &mv);
	mp_walk(mp_config(mem), &pv);
	assert_int_equal(mv.lapics, pv.cpus);
	assert_int_equal(mv.ioapic_id, pv.ioapic_id);
	assert_int_equal(mv.iso_gsi[0], (uint32_t)pv.isa_pin[0]);
}

static void test_checksum_makes_bytes_sum_to_zero(void **state)
{
	uint8_t buf[7] = { 1, 2, 3, 0xff, 0x80, 0, 9 };

	(void)state;
	buf[5] = tables__checksum(buf, sizeof(buf));
	assert_int_equal(sum8(buf, sizeof(buf)), 0);
	assert_int_equal(tables__checksum(buf, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsdp_found_by_linux_scan_with_valid_checksums),
		cmocka_unit_test(test_xsdt_lists_fadt_and_madt_inside_acpi_area),
		cmocka_unit_test(test_fadt_describes_pm1_ports_sci_power_button_and_reset),
		cmocka_unit_test(test_fadt_points_to_facs_and_dsdt_in_both_widths),
		cmocka_unit_test(test_dsdt_s5_package_gives_poweroff_slp_typ),
		cmocka_unit_test(test_dsdt_describes_com1_and_i8042_keyboard_only),
		cmocka_unit_test(test_dsdt_describes_pci_host_bridge_with_bus0_ports_and_window),
		cmocka_unit_test(test_pci_window_avoids_fixed_devices_and_ram),
		cmocka_unit_test(test_madt_lists_one_lapic_per_vcpu),
		cmocka_unit_test(test_madt_ioapic_overrides_and_nmi),
		cmocka_unit_test(test_acpi_rejects_zero_and_too_many_vcpus),
		cmocka_unit_test(test_tables_need_ram_under_1m),
		cmocka_unit_test(test_mptable_lists_one_cpu_per_vcpu_with_bsp_first),
		cmocka_unit_test(test_mptable_routes_isa_irqs_like_the_madt),
		cmocka_unit_test(test_mptable_rejects_zero_and_too_many_vcpus),
		cmocka_unit_test(test_mptable_and_acpi_coexist),
		cmocka_unit_test(test_checksum_makes_bytes_sum_to_zero),
	};

	return cmocka_run_group_tests(tests, setup_mem, teardown_mem);
}
