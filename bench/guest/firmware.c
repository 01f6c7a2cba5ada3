/*
 * Finds the CPUs the firmware tables describe: ACPI first (RSDP in the EBDA's
 * first KiB or E0000-FFFFF, then XSDT, or RSDT for ACPI 1.0, then the MADT),
 * else the Intel MP table ("_MP_" floating pointer, "PCMP" config table).
 * Every table's checksum is validated; a bad one is reported and skipped.
 */
#include "rt.h"

/* Pointer to guest-physical `a` (identity map); hidden from GCC's bounds checks on low addresses. */
static const void *phys(uint64_t a)
{
	__asm__("" : "+r"(a));
	return (const void *)(uintptr_t)a;
}

static uint8_t sum8(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;
	while (n--)
		s += *b++;
	return s;
}

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* 16-byte aligned scan of [start, end) for an 8- or 4-byte signature. */
static const uint8_t *scan(uint64_t start, uint64_t end, uint64_t sig, unsigned siglen)
{
	uint64_t mask = siglen == 8 ? ~0ull : 0xffffffffull;
	for (uint64_t a = start; a + 16 <= end; a += 16)
		if ((*(const volatile uint64_t *)phys(a) & mask) == sig)
			return phys(a);
	return NULL;
}

static uint64_t ebda_base(void)
{
	uint64_t seg = *(const volatile uint16_t *)phys(0x40E);
	uint64_t a = seg << 4;
	return a >= 0x80000 && a < 0xA0000 ? a : 0;
}

/* ---- ACPI ---- */

#define SIG8(s) ((uint64_t)(s)[0] | (uint64_t)(s)[1] << 8 | (uint64_t)(s)[2] << 16 | (uint64_t)(s)[3] << 24 | \
		 (uint64_t)(s)[4] << 32 | (uint64_t)(s)[5] << 40 | (uint64_t)(s)[6] << 48 | (uint64_t)(s)[7] << 56)
#define SIG4(s) ((uint32_t)(s)[0] | (uint32_t)(s)[1] << 8 | (uint32_t)(s)[2] << 16 | (uint32_t)(s)[3] << 24)
#define SDT_HDR 36

static bool rsdp_valid(const uint8_t *p)
{
	if (sum8(p, 20))
		return false;
	if (p[15] < 2)                               /* ACPI 1.0: 20 bytes */
		return true;
	uint32_t len = rd32(p + 20);
	return len >= 36 && len <= 4096 && !sum8(p, len);
}

static bool mpfp_valid(const uint8_t *p)
{
	return p[8] == 1 && !sum8(p, 16);
}

/*
 * First structure with signature `sig` (first `siglen` bytes) that `valid`
 * accepts, in the EBDA's first KiB, then [bios_start, 1 MiB).
 */
static const uint8_t *find_struct(uint64_t sig, unsigned siglen, bool (*valid)(const uint8_t *),
				  uint64_t bios_start, const char *what)
{
	uint64_t e = ebda_base();
	const uint64_t ranges[2][2] = { { e, e ? e + 1024 : 0 }, { bios_start, 0x100000 } };

	for (int r = 0; r < 2; r++) {
		for (uint64_t a = ranges[r][0]; a < ranges[r][1]; a += 16) {
			const uint8_t *p = scan(a, ranges[r][1], sig, siglen);
			if (!p)
				break;
			if (valid(p))
				return p;
			console__log("%s at %p has a bad checksum, skipped", what, (const void *)p);
			a = (uint64_t)(uintptr_t)p;
		}
	}
	return NULL;
}

/* Validates an SDT's length and checksum; returns it or NULL. */
static const uint8_t *sdt(uint64_t addr, const char *expect)
{
	const uint8_t *t = phys(addr);

	if (!addr || addr >= 0x100000000ull)
		return NULL;
	uint32_t len = rd32(t + 4);
	char name[5] = { (char)t[0], (char)t[1], (char)t[2], (char)t[3], 0 };
	if (len < SDT_HDR || len > 0x100000) {
		console__log("acpi: table %s at 0x%lx has bad length %u", name, addr, len);
		return NULL;
	}
	if (sum8(t, len)) {
		console__log("acpi: table %s at 0x%lx has a bad checksum", name, addr);
		return NULL;
	}
	if (expect && rd32(t) != SIG4(expect))
		return NULL;
	return t;
}

int acpi__find_cpus(struct cpu_topology *t)
{
	const uint8_t *rsdp = find_struct(SIG8("RSD PTR "), 8, rsdp_valid, 0xE0000, "acpi: RSDP");
	const uint8_t *root = NULL, *madt = NULL;
	unsigned esize = 4;

	if (!rsdp)
		return -1;
	if (rsdp[15] >= 2 && rd64(rsdp + 24)) {
		root = sdt(rd64(rsdp + 24), "XSDT");
		esize = 8;
	}
	if (!root) {
		root = sdt(rd32(rsdp + 16), "RSDT");
		esize = 4;
	}
	if (!root) {
		console__log("acpi: RSDP found but no valid XSDT/RSDT");
		return -1;
	}
	uint32_t n = (rd32(root + 4) - SDT_HDR) / esize;
	for (uint32_t i = 0; i < n && !madt; i++) {
		const uint8_t *e = root + SDT_HDR + i * esize;
		uint64_t a = esize == 8 ? rd64(e) : rd32(e);
		const uint8_t *h = phys(a);
		if (a && a < 0x100000000ull && rd32(h) == SIG4("APIC"))
			madt = sdt(a, "APIC");
	}
	if (!madt) {
		console__log("acpi: no valid MADT");
		return -1;
	}

	uint32_t len = rd32(madt + 4);
	t->lapic_addr = rd32(madt + SDT_HDR);
	t->count = 0;
	for (uint32_t off = SDT_HDR + 8; off + 2 <= len;) {
		const uint8_t *e = madt + off;
		uint8_t type = e[0], elen = e[1];
		if (elen < 2 || off + elen > len) {
			console__log("acpi: MADT entry at +%u has bad length %u", off, elen);
			return -1;
		}
		uint32_t id = ~0u, flags = 0;
		if (type == 0 && elen >= 8) {            /* processor local APIC */
			id = e[3];
			flags = rd32(e + 4);
		} else if (type == 9 && elen >= 16) {    /* processor local x2APIC */
			id = rd32(e + 4);
			flags = rd32(e + 8);
		} else if (type == 5 && elen >= 12) {    /* local APIC address override */
			t->lapic_addr = rd64(e + 4);
		}
		if (id != ~0u && (flags & 1)) {          /* enabled (not just online-capable) */
			if (t->count < MAX_CPUS)
				t->apic_id[t->count] = id;
			t->count++;
		}
		off += elen;
	}
	t->source = "acpi-madt";
	return 0;
}

/* ---- Intel MP specification 1.4 ---- */

int mptable__find_cpus(struct cpu_topology *t)
{
	const uint8_t *fp = find_struct(SIG4("_MP_"), 4, mpfp_valid, 0xF0000, "mptable: floating pointer");

	if (!fp)
		return -1;
	if (fp[11]) {
		console__log("mptable: default configuration %u not supported", fp[11]);
		return -1;
	}
	const uint8_t *ct = phys(rd32(fp + 4));
	if (!rd32(fp + 4) || rd32(ct) != SIG4("PCMP")) {
		console__log("mptable: no PCMP config table");
		return -1;
	}
	uint16_t len = rd16(ct + 4), entries = rd16(ct + 34);
	if (len < 44 || sum8(ct, len)) {
		console__log("mptable: config table has a bad length or checksum");
		return -1;
	}
	t->lapic_addr = rd32(ct + 36);
	t->count = 0;
	const uint8_t *e = ct + 44, *end = ct + len;
	for (uint16_t i = 0; i < entries && e < end; i++) {
		if (e[0] == 0) {                         /* processor, 20 bytes */
			if (e[3] & 1) {                  /* enabled */
				if (t->count < MAX_CPUS)
					t->apic_id[t->count] = e[1];
				t->count++;
			}
			e += 20;
		} else if (e[0] <= 4) {
			e += 8;
		} else {
			console__log("mptable: unknown entry type %u", e[0]);
			return -1;
		}
	}
	t->source = "mptable";
	return 0;
}

int firmware__find_cpus(struct cpu_topology *t)
{
	if (!acpi__find_cpus(t) && t->count)
		return 0;
	if (!mptable__find_cpus(t) && t->count)
		return 0;
	return -1;
}
