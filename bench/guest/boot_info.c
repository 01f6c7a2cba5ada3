/* The Linux zero page (struct boot_params) the monitor hands over in RSI, and the command line. */
#include "rt.h"

/* struct boot_params offsets (Documentation/arch/x86/zero-page.rst). */
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES     0x1e8
#define BP_CMD_LINE_PTR     0x228
#define BP_CMDLINE_SIZE     0x238
#define BP_E820_TABLE       0x2d0

struct boot_info boot_info;

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

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
	bi->ram_bytes = 0;
	for (uint32_t i = 0; i < bi->e820_count; i++)
		if (bi->e820[i].type == E820_RAM)
			bi->ram_bytes += bi->e820[i].size;

	uint64_t cl = rd32(bp + BP_CMD_LINE_PTR) | (uint64_t)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
	bi->cmdline[0] = '\0';
	if (cl) {
		const char *s = (const char *)(uintptr_t)cl;
		size_t n = 0;
		while (n + 1 < sizeof(bi->cmdline) && s[n])
			n++;
		memcpy(bi->cmdline, s, n);
		bi->cmdline[n] = '\0';
	}
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
