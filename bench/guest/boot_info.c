/*
 * What the boot loader tells the guest: the Linux zero page (struct
 * boot_params, rtvmm) or the PVH struct hvm_start_info (QEMU -kernel), and
 * the command line.
 */
#include "rt.h"

/* struct boot_params offsets (Documentation/arch/x86/zero-page.rst). */
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES     0x1e8
#define BP_CMD_LINE_PTR     0x228
#define BP_CMDLINE_SIZE     0x238
#define BP_E820_TABLE       0x2d0

/* struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). */
#define PVH_MAGIC           0x336ec578
#define PVH_VERSION         0x04
#define PVH_CMDLINE_PADDR   0x18
#define PVH_MEMMAP_PADDR    0x28   /* version >= 1 */
#define PVH_MEMMAP_ENTRIES  0x30
#define PVH_MEMMAP_ENTRY    24     /* struct hvm_memmap_table_entry: addr, size, type, reserved */

struct boot_info boot_info;
const char *boot_info_source = "none";

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void copy_cmdline(uint64_t cl)
{
	struct boot_info *bi = &boot_info;

	bi->cmdline[0] = '\0';
	if (cl) {
		const char *s = (const char *)(uintptr_t)cl;
		size_t n = 0;
		while (n + 1 < sizeof(bi->cmdline) && s[n])
			n++;
		memcpy(bi->cmdline, s, n);
		bi->cmdline[n] = '\0';
	}
}

static void count_ram(void)
{
	boot_info.ram_bytes = 0;
	for (uint32_t i = 0; i < boot_info.e820_count; i++)
		if (boot_info.e820[i].type == E820_RAM)
			boot_info.ram_bytes += boot_info.e820[i].size;
}

int boot_info__parse(const void *zero_page)
{
	const uint8_t *bp = zero_page;
	struct boot_info *bi = &boot_info;

	if (!bp)
		return -1;
	bi->e820_count = bp[BP_E820_ENTRIES];
	if (bi->e820_count > E820_MAX)
		return -2;
	memcpy(bi->e820, bp + BP_E820_TABLE, bi->e820_count * sizeof(struct e820_entry));
	count_ram();
	copy_cmdline(rd32(bp + BP_CMD_LINE_PTR) | (uint64_t)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32);
	boot_info_source = "zero page";
	return 0;
}

int boot_info__parse_pvh(const void *start_info)
{
	const uint8_t *si = start_info;
	struct boot_info *bi = &boot_info;

	if (!si)
		return -1;
	if (rd32(si) != PVH_MAGIC)
		return -3;
	if (rd32(si + PVH_VERSION) < 1)
		return -4;   /* version 0 has no memory map: nothing tells us where RAM is */
	uint64_t map = rd64(si + PVH_MEMMAP_PADDR);
	uint32_t n = rd32(si + PVH_MEMMAP_ENTRIES);
	if (!map || !n || n > E820_MAX || map >= 0x100000000ull)
		return -2;
	bi->e820_count = n;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = (const uint8_t *)(uintptr_t)map + i * PVH_MEMMAP_ENTRY;
		bi->e820[i] = (struct e820_entry){ rd64(e), rd64(e + 8), rd32(e + 16) };
	}
	count_ram();
	uint64_t cl = rd64(si + PVH_CMDLINE_PADDR);
	copy_cmdline(cl < 0x100000000ull ? cl : 0);
	boot_info_source = "pvh start info";
	return 0;
}

bool boot_info__e820_is_ram(uint64_t addr, uint64_t len)
{
	for (uint32_t i = 0; i < boot_info.e820_count; i++) {
		const struct e820_entry *e = &boot_info.e820[i];
		if (e->type == E820_RAM && addr >= e->addr && addr + len <= e->addr + e->size)
			return true;
	}
	return false;
}

const char *boot_info__cmdline_get(const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = boot_info.cmdline;

	while (*p) {
		while (*p == ' ')
			p++;
		const char *tok = p;
		while (*p && *p != ' ')
			p++;
		size_t tlen = (size_t)(p - tok);
		if (tlen >= klen && !strncmp(tok, key, klen) && (tlen == klen || tok[klen] == '=')) {
			const char *v = tlen == klen ? tok + klen : tok + klen + 1;
			size_t n = (size_t)(p - v);
			if (n + 1 > len)
				n = len - 1;
			memcpy(buf, v, n);
			buf[n] = '\0';
			return buf;
		}
	}
	return NULL;
}

uint64_t boot_info__cmdline_u64(const char *key, uint64_t def, uint32_t status)
{
	char buf[24];
	const char *end;

	if (!boot_info__cmdline_get(key, buf, sizeof(buf)))
		return def;
	uint64_t v = strtou64(buf, &end);
	if (end == buf || *end)
		rt__fail(status, "cmdline: %s=%s is not a number", key, buf);
	return v;
}

bool boot_info__list_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	while (*list) {
		const char *s = list;
		while (*list && *list != ',')
			list++;
		if ((size_t)(list - s) == n && !strncmp(s, item, n))
			return true;
		if (*list == ',')
			list++;
	}
	return false;
}
