/* Linux x86 boot protocol: load a kernel image, build the zero page, place cmdline and initrd. */
#ifndef RTVMM_X86_BOOT_H
#define RTVMM_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/guest_mem.h"

/* How to enter a bzImage. */
enum boot_mode {
	BOOT_MODE_AUTO = 0,      /* host-decompress when the payload codec is supported, else direct */
	BOOT_MODE_DIRECT,        /* 64-bit entry of the bzImage; the guest runs its own decompressor */
	BOOT_MODE_DECOMPRESS,    /* monitor decompresses the payload and loads vmlinux (fails if it cannot) */
};

struct boot_config {
	const char *kernel_path;   /* bzImage, or an ELF64 (vmlinux, rtvmm bare-metal guest) */
	const char *initrd_path;   /* optional */
	const char *cmdline;       /* optional */
	enum boot_mode mode;
	uint64_t acpi_rsdp;        /* gpa of the ACPI RSDP for boot_params.acpi_rsdp_addr, 0 if none */
};

/* What the loader did, for the CPU setup and for the user-facing report. */
struct boot_image {
	uint64_t entry;            /* 64-bit entry point, guest-physical (identity mapped) */
	uint64_t zero_page;        /* gpa of boot_params, passed in RSI */
	uint64_t kernel_start, kernel_end;   /* guest-physical range the kernel occupies */
	uint64_t initrd_start, initrd_size;  /* 0 size when none */
	uint16_t protocol;         /* boot protocol version (0x020f ...), 0 for plain ELF */
	char format[96];           /* e.g. "bzImage 2.15, xz payload decompressed by the monitor" */
};

/*
 * Loads the kernel (and initrd, cmdline) into guest RAM and writes the zero
 * page at LAYOUT_ZERO_PAGE with the e820 map of `mem` (acpi_rsdp_addr left 0:
 * the caller may patch it). The cmdline goes to LAYOUT_CMDLINE; the initrd to
 * the highest page-aligned place below min(initrd_addr_max, low RAM end) that
 * is clear of the kernel. ELF segments must lie in RAM at or above 1 MiB.
 *
 * Returns 0 or -errno with `e` naming the file and the problem:
 *   -ENOENT/-EACCES/-EISDIR/-EINVAL  kernel or initrd missing / unreadable
 *   -ENOEXEC   empty, truncated, bad magic, malformed header or ELF
 *   -ENOTSUP   protocol < 2.06, not 64-bit capable, unsupported codec (DECOMPRESS)
 *   -ENOMEM    kernel or initrd does not fit in guest RAM
 *   -E2BIG     cmdline longer than the kernel's cmdline_size
 *   -EBADMSG   corrupt compressed payload, or it is not an ELF vmlinux
 *   -EINVAL    empty initrd, ELF segment below 1 MiB
 * On failure `out` is zeroed except `protocol` (when a setup header was read).
 */
int x86_boot__load(struct guest_mem *mem, const struct boot_config *cfg,
		   struct boot_image *out, struct err *e);

#endif
