/*
 * dump_acpi OUTDIR [NR_VCPUS]: builds the ACPI tables with acpi__write and
 * writes each one as OUTDIR/<signature>.dat (rsdp, xsdt, facp, facs, dsdt,
 * apic), following the pointers a guest follows, for `iasl -d` and acpiexec.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/device.h"
#include "vmm/guest_mem.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/tables.h"

static struct guest_mem mem;

/* The legacy devices rtvmm's PC describes in its DSDT (vmm/hw: serial and i8042's device_ops). */
static const struct device_acpi pc_isa[] = {
	{ .name = "COM1", .hid = "PNP0501", .nr_io = 1, .io = { { PORT_COM1, 8 } }, .irq = PORT_COM1_IRQ },
	{ .name = "PS2K", .hid = "PNP0303", .nr_io = 2,
	  .io = { { PORT_I8042_DATA, 1 }, { PORT_I8042_CMD, 1 } }, .irq = 1 },
};
static const char *outdir;

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

static const uint8_t *at(uint64_t gpa, uint64_t len)
{
	const uint8_t *p = guest_mem__ptr(&mem, gpa, len);

	if (!p || gpa < LAYOUT_ACPI_START || gpa + len > LAYOUT_ACPI_END) {
		fprintf(stderr, "dump_acpi: [0x%llx, +%llu) is outside the ACPI area\n",
			(unsigned long long)gpa, (unsigned long long)len);
		exit(1);
	}
	return p;
}

static void dump(const char *name, const uint8_t *p, uint64_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.dat", outdir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "dump_acpi: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	printf("%s 0x%llx %llu\n", name, (unsigned long long)(p - mem.base),
	       (unsigned long long)len);
}

/* Dumps the SDT at gpa under its lower-cased signature; returns it. */
static const uint8_t *dump_sdt(uint64_t gpa)
{
	const uint8_t *t = at(gpa, 36);
	char name[5];
	int i;

	for (i = 0; i < 4; i++)
		name[i] = (char)(t[i] >= 'A' && t[i] <= 'Z' ? t[i] - 'A' + 'a' : t[i]);
	name[4] = 0;
	t = at(gpa, rd32(t + 4));
	dump(name, t, rd32(t + 4));
	return t;
}

int main(int argc, char **argv)
{
	unsigned nr_vcpus = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 4;
	const uint8_t *rsdp, *xsdt;
	int64_t rsdp_gpa;
	uint32_t i, n;

	if (argc < 2) {
		fprintf(stderr, "usage: dump_acpi OUTDIR [NR_VCPUS]\n");
		return 2;
	}
	outdir = argv[1];
	if (guest_mem__create(&mem, 2u << 20)) {
		perror("dump_acpi: guest_mem__create");
		return 1;
	}
	rsdp_gpa = acpi__write(&mem, nr_vcpus, pc_isa, sizeof(pc_isa) / sizeof(pc_isa[0]));
	if (rsdp_gpa < 0) {
		fprintf(stderr, "dump_acpi: acpi__write(%u vCPUs): %s\n", nr_vcpus,
			strerror((int)-rsdp_gpa));
		return 1;
	}
	/* iasl cannot read a bare RSDP: check it here the way Linux does. */
	rsdp = at((uint64_t)rsdp_gpa, 36);
	if (memcmp(rsdp, "RSD PTR ", 8) || rsdp[15] < 2 || rd32(rsdp + 20) != 36 ||
	    tables__checksum(rsdp, 20) || tables__checksum(rsdp, 36)) {
		fprintf(stderr, "dump_acpi: RSDP at 0x%llx is invalid (signature, revision, "
			"length or checksum)\n", (unsigned long long)rsdp_gpa);
		return 1;
	}
	dump("rsdp", rsdp, rd32(rsdp + 20));
	xsdt = dump_sdt(rd64(rsdp + 24));
	n = (rd32(xsdt + 4) - 36) / 8;
	for (i = 0; i < n; i++) {
		const uint8_t *t = dump_sdt(rd64(xsdt + 36 + 8 * i));

		if (!memcmp(t, "FACP", 4)) {
			dump("facs", at(rd64(t + 132), 64), 64);
			dump_sdt(rd64(t + 140));
		}
	}
	guest_mem__destroy(&mem);
	return 0;
}
