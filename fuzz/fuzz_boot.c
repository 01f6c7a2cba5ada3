/*
 * Fuzz target: the kernel loader (vmm/x86/boot.c): a kernel file (bzImage with its setup header
 * and compressed payload, or ELF64), an initrd and a command line, loaded into 16 MiB of guest
 * RAM in each of the three boot modes.
 *
 * Input: byte 0 (bits 0-1: boot mode, bit 2: an initrd), byte 1 the command line's length,
 * bytes 2-3 the initrd's, then the command line, the initrd and the kernel file (the rest).
 * Beyond the sanitizers: a load either fails with a message and a zeroed result (but the
 * protocol), or reports a kernel, an entry and an initrd that lie in guest RAM, the initrd
 * clear of the kernel.
 */
#include <stdint.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/x86/boot.h"
#include "vmm/x86/layout.h"

#include "fuzz.h"

#define RAM_SIZE (16ULL << 20)

static struct guest_mem mem;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(!guest_mem__create(&mem, RAM_SIZE), "cannot create guest RAM");
	return 0;
}

static void check_loaded(const struct boot_image *img)
{
	FUZZ_CHECK(img->kernel_start < img->kernel_end && img->kernel_end <= RAM_SIZE &&
		   img->kernel_start >= LAYOUT_KERNEL,
		   "kernel at [%#llx, %#llx) in %llu bytes of RAM",
		   (unsigned long long)img->kernel_start, (unsigned long long)img->kernel_end,
		   RAM_SIZE);
	FUZZ_CHECK(img->entry >= LAYOUT_KERNEL && img->entry < RAM_SIZE, "entry %#llx",
		   (unsigned long long)img->entry);
	FUZZ_CHECK(img->zero_page == LAYOUT_ZERO_PAGE, "zero page at %#llx",
		   (unsigned long long)img->zero_page);
	if (!img->initrd_size)
		return;
	FUZZ_CHECK(img->initrd_start >= LAYOUT_BIOS_END &&
		   img->initrd_size <= RAM_SIZE - img->initrd_start,
		   "initrd at %#llx, %llu bytes", (unsigned long long)img->initrd_start,
		   (unsigned long long)img->initrd_size);
	FUZZ_CHECK(img->initrd_start + img->initrd_size <= img->kernel_start ||
		   img->initrd_start >= img->kernel_end,
		   "initrd [%#llx, +%llu) overlaps the kernel [%#llx, %#llx)",
		   (unsigned long long)img->initrd_start, (unsigned long long)img->initrd_size,
		   (unsigned long long)img->kernel_start, (unsigned long long)img->kernel_end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct boot_config cfg = { 0 };
	struct boot_image img;
	struct err e = { 0 };
	char kpath[64], ipath[64], cmdline[256];
	const uint8_t *p;
	uint8_t opts = fuzz_in__u8(&in), cmd_len = fuzz_in__u8(&in);
	uint16_t initrd_len = fuzz_in__u16(&in);
	int kfd, ifd = -1, err;
	size_t n;

	p = fuzz_in__bytes(&in, cmd_len, &n);
	memcpy(cmdline, p, n);
	cmdline[n] = '\0';
	cfg.cmdline = cmdline;
	cfg.mode = (enum boot_mode)(opts % 3);
	if (opts & 4) {
		p = fuzz_in__bytes(&in, initrd_len, &n);
		ifd = fuzz_file(p, n, ipath, sizeof(ipath));
		FUZZ_CHECK(ifd >= 0, "cannot make the initrd file");
		cfg.initrd_path = ipath;
	}
	kfd = fuzz_file(in.p, in.n, kpath, sizeof(kpath));
	FUZZ_CHECK(kfd >= 0, "cannot make the kernel file");
	cfg.kernel_path = kpath;

	err = x86_boot__load(&mem, &cfg, &img, &e);
	if (err) {
		struct boot_image zero;

		memset(&zero, 0, sizeof(zero));
		zero.protocol = img.protocol;
		FUZZ_CHECK(err < 0 && e.msg[0], "x86_boot__load returned %d, message '%s'", err,
			   e.msg);
		FUZZ_CHECK(!memcmp(&img, &zero, sizeof(img)), "a failed load left a result");
	} else {
		check_loaded(&img);
	}
	close(kfd);
	if (ifd >= 0)
		close(ifd);
	return 0;
}
