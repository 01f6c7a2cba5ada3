/*
 * x86 boot loader: synthetic bzImages and ELFs in temp files, loaded into a
 * memfd-backed guest_mem; optionally the real Debian kernel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "base/err.h"
#include "vmm/guest_mem.h"
#include "vmm/x86/boot.h"
#include "vmm/x86/e820.h"
#include "vmm/x86/layout.h"

#define MiB (1ULL << 20)
#define MAX_FILES 8

struct fixture {
	struct guest_mem mem;
	char dir[64];
	char *files[MAX_FILES];
	unsigned nr_files;
};

/* ---- fixture ------------------------------------------------------------------ */

static void fx_mem(struct fixture *f, uint64_t size)
{
	guest_mem__destroy(&f->mem);
	assert_int_equal(guest_mem__create(&f->mem, size), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->mem.fd = -1;
	snprintf(f->dir, sizeof(f->dir), "%s/rtvmm-boot-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir) || guest_mem__create(&f->mem, 256 * MiB) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unsigned i;

	for (i = 0; i < f->nr_files; i++) {
		chmod(f->files[i], 0600);
		if (unlink(f->files[i]) < 0)
			rmdir(f->files[i]);
		free(f->files[i]);
	}
	rmdir(f->dir);
	guest_mem__destroy(&f->mem);
	free(f);
	return 0;
}

static const char *fx_path(struct fixture *f, const char *name)
{
	char *p;

	assert_true(f->nr_files < MAX_FILES);
	assert_true(asprintf(&p, "%s/%s", f->dir, name) > 0);
	f->files[f->nr_files++] = p;
	return p;
}

static const char *fx_file(struct fixture *f, const char *name, const void *buf, size_t len)
{
	const char *path = fx_path(f, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	return path;
}

static void *gptr(struct fixture *f, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem__ptr(&f->mem, gpa, len);

	assert_non_null(p);
	return p;
}

static void assert_err(int ret, const struct err *e, int code, const char *path, const char *what)
{
	if (ret != code || !strstr(e->msg, path) || (what && !strstr(e->msg, what)))
		print_error("ret %d (want %d), message: \"%s\" (want \"%s\" and \"%s\")\n",
			    ret, code, e->msg, path, what ? what : "");
	assert_int_equal(ret, code);
	assert_int_equal(e->code, code);
	assert_non_null(strstr(e->msg, path));
	if (what)
		assert_non_null(strstr(e->msg, what));
	assert_null(strchr(e->msg, '\n'));
}

/* ---- synthetic images ---------------------------------------------------------- */

struct seg {
	uint64_t paddr, vaddr;
	const void *data;
	uint64_t filesz, memsz;
};

/* ELF64 x86-64 executable: headers, then each segment's bytes at a 4 KiB-aligned offset. */
static uint8_t *elf_build(uint64_t entry, const struct seg *segs, unsigned n, size_t *len)
{
	size_t off = 0x1000, size = off;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
	uint8_t *buf;
	unsigned i;

	for (i = 0; i < n; i++)
		size += (segs[i].filesz + 0xfff) & ~0xfffULL;
	buf = calloc(1, size);
	assert_non_null(buf);
	eh = (Elf64_Ehdr *)buf;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = entry;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = (Elf64_Half)n;
	ph = (Elf64_Phdr *)(buf + sizeof(*eh));
	for (i = 0; i < n; i++) {
		ph[i] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = off,
				      .p_vaddr = segs[i].vaddr ? segs[i].vaddr : segs[i].paddr,
				      .p_paddr = segs[i].paddr, .p_filesz = segs[i].filesz,
				      .p_memsz = segs[i].memsz, .p_align = 0x1000 };
		if (segs[i].filesz)
			memcpy(buf + off, segs[i].data, segs[i].filesz);
		off += (segs[i].filesz + 0xfff) & ~0xfffULL;
	}
	*len = size;
	return buf;
}

static uint8_t text[0x3000], data[0x800];

static void fill_patterns(void)
{
	size_t i;

	for (i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)(i * 7 + 1);
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(0xA5 ^ i);
}

/* A small "vmlinux": text at 16 MiB, data + bss at 18 MiB. */
static uint8_t *vmlinux_build(uint64_t entry, size_t *len)
{
	struct seg segs[] = {
		{ .paddr = 0x1000000, .vaddr = 0xffffffff81000000ULL, .data = text,
		  .filesz = sizeof(text), .memsz = sizeof(text) },
		{ .paddr = 0x1200000, .vaddr = 0xffffffff81200000ULL, .data = data,
		  .filesz = sizeof(data), .memsz = 0x2000 },
	};

	fill_patterns();
	return elf_build(entry, segs, 2, len);
}

static void assert_vmlinux_loaded(struct fixture *f)
{
	uint8_t *bss;
	size_t i;

	assert_memory_equal(gptr(f, 0x1000000, sizeof(text)), text, sizeof(text));
	assert_memory_equal(gptr(f, 0x1200000, sizeof(data)), data, sizeof(data));
	bss = gptr(f, 0x1200000 + sizeof(data), 0x2000 - sizeof(data));
	for (i = 0; i < 0x2000 - sizeof(data); i++)
		assert_int_equal(bss[i], 0);
}

struct bz_spec {
	uint16_t version;
	uint16_t xloadflags;
	uint8_t setup_sects;
	uint8_t relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
	uint32_t syssize_extra;    /* claim this many more paragraphs than the file holds */
	const void *payload;
	size_t payload_len;
	size_t pm_size;            /* protected-mode part, >= payload end */
};

#define BZ_PAYLOAD_OFFSET 0x100

static struct bz_spec bz_default(void)
{
	return (struct bz_spec){
		.version = 0x020f, .xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
		.setup_sects = 4, .relocatable = 1, .kernel_alignment = 0x200000,
		.pref_address = 0x1000000, .init_size = 4 * MiB, .cmdline_size = 2047,
		.initrd_addr_max = 0x7fffffff, .pm_size = 0x4000,
	};
}

/* A bzImage: boot sector + setup header, setup sectors, then the protected-mode part. */
static uint8_t *bz_build(const struct bz_spec *s, size_t *len)
{
	unsigned sects = s->setup_sects ? s->setup_sects : 4;
	size_t setup = (sects + 1) * 512, pm = s->pm_size, i;
	struct setup_header h = { 0 };
	uint8_t *buf;

	if (pm < BZ_PAYLOAD_OFFSET + s->payload_len)
		pm = BZ_PAYLOAD_OFFSET + s->payload_len;
	buf = calloc(1, setup + pm);
	assert_non_null(buf);
	for (i = 0; i < pm; i++)
		buf[setup + i] = (uint8_t)(i ^ 0x5c);
	if (s->payload_len)
		memcpy(buf + setup + BZ_PAYLOAD_OFFSET, s->payload, s->payload_len);

	h.setup_sects = s->setup_sects;
	h.syssize = (uint32_t)(pm / 16) + s->syssize_extra;
	h.boot_flag = 0xAA55;
	h.jump = 0x6aeb; /* jmp to 0x26c: end of the 2.15 header */
	h.header = 0x53726448;
	h.version = s->version;
	h.loadflags = LOADED_HIGH;
	h.initrd_addr_max = s->initrd_addr_max;
	h.kernel_alignment = s->kernel_alignment;
	h.relocatable_kernel = s->relocatable;
	h.min_alignment = 21;
	h.xloadflags = s->xloadflags;
	h.cmdline_size = s->cmdline_size;
	h.payload_offset = s->payload_len ? BZ_PAYLOAD_OFFSET : 0;
	h.payload_length = (uint32_t)s->payload_len;
	h.pref_address = s->pref_address;
	h.init_size = s->init_size;
	memcpy(buf + 0x1f1, &h, sizeof(h));
	*len = setup + pm;
	return buf;
}

static const char *bz_file(struct fixture *f, const struct bz_spec *s)
{
	size_t len;
	uint8_t *img = bz_build(s, &len);
	const char *path = fx_file(f, "bzImage", img, len);

	free(img);
	return path;
}

static void append_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* As the kernel build does: xz with the x86 BCJ filter and CRC32, then the size (LE32). */
static uint8_t *xz_compress(const uint8_t *in, size_t n, size_t *out_len)
{
	lzma_options_lzma opt;
	lzma_filter filters[] = {
		{ .id = LZMA_FILTER_X86, .options = NULL },
		{ .id = LZMA_FILTER_LZMA2, .options = &opt },
		{ .id = LZMA_VLI_UNKNOWN, .options = NULL },
	};
	size_t cap = lzma_stream_buffer_bound(n) + 4, pos = 0;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	assert_false(lzma_lzma_preset(&opt, 6));
	assert_int_equal(lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, NULL, in, n,
						   out, &pos, cap - 4), LZMA_OK);
	append_le32(out + pos, (uint32_t)n);
	*out_len = pos + 4;
	return out;
}

static uint8_t *gzip_compress(const uint8_t *in, size_t n, size_t *out_len)
{
	z_stream z = { 0 };
	size_t cap = n + 1024;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = z.total_out;
	deflateEnd(&z);
	return out;
}

static uint8_t *zstd_compress(const uint8_t *in, size_t n, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(n) + 4, r;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	r = ZSTD_compress(out, cap - 4, in, n, 19);
	assert_false(ZSTD_isError(r));
	append_le32(out + r, (uint32_t)n);
	*out_len = r + 4;
	return out;
}

typedef uint8_t *(*compress_fn)(const uint8_t *in, size_t n, size_t *out_len);

/* A bzImage whose payload is `vmlinux` compressed with `compress`. */
static const char *bz_with_vmlinux(struct fixture *f, struct bz_spec *s, uint64_t entry,
				   compress_fn compress)
{
	size_t vlen, plen;
	uint8_t *vmlinux = vmlinux_build(entry, &vlen);
	uint8_t *payload = compress(vmlinux, vlen, &plen);
	const char *path;

	s->payload = payload;
	s->payload_len = plen;
	path = bz_file(f, s);
	free(payload);
	free(vmlinux);
	s->payload = NULL;
	return path;
}

static int load(struct fixture *f, const char *kernel, const char *initrd, const char *cmdline,
		enum boot_mode mode, struct boot_image *img, struct err *e)
{
	struct boot_config cfg = { .kernel_path = kernel, .initrd_path = initrd,
				   .cmdline = cmdline, .mode = mode };

	memset(e, 0, sizeof(*e));
	return x86_boot__load(&f->mem, &cfg, img, e);
}

static struct boot_params *zero_page(struct fixture *f)
{
	return gptr(f, LAYOUT_ZERO_PAGE, sizeof(struct boot_params));
}

/* ---- bzImage, 64-bit entry ------------------------------------------------------ */

static void test_bzimage_direct_loads_at_pref_address_and_enters_at_plus_0x200(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *bz = bz_build(&s, &len);
	const char *k = fx_file(f, "bzImage", bz, len);

	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000200);
	assert_int_equal(img.protocol, 0x020f);
	assert_int_equal(img.zero_page, LAYOUT_ZERO_PAGE);
	assert_int_equal(img.kernel_start, 0x1000000);
	assert_int_equal(img.kernel_end, 0x1000000 + 4 * MiB);
	assert_memory_equal(gptr(f, 0x1000000, s.pm_size), bz + 5 * 512, s.pm_size);
	assert_non_null(strstr(img.format, "bzImage 2.15"));
	free(bz);
}

static void test_bzimage_not_relocatable_loads_at_1mib(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *bz;
	const char *k;

	s.relocatable = 0;
	bz = bz_build(&s, &len);
	k = fx_file(f, "bzImage", bz, len);
	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_int_equal(img.entry, LAYOUT_KERNEL + 0x200);
	assert_memory_equal(gptr(f, LAYOUT_KERNEL, s.pm_size), bz + 5 * 512, s.pm_size);
	/* It decompresses itself to pref_address: that range is the kernel's too. */
	assert_int_equal(img.kernel_start, LAYOUT_KERNEL);
	assert_int_equal(img.kernel_end, 0x1000000 + 4 * MiB);
	free(bz);
}

static void test_bzimage_setup_sects_zero_means_four(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *bz;
	const char *k;

	s.setup_sects = 0;
	bz = bz_build(&s, &len);
	k = fx_file(f, "bzImage", bz, len);
	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_memory_equal(gptr(f, 0x1000000, s.pm_size), bz + 5 * 512, s.pm_size);
	free(bz);
}

static void test_bzimage_zero_page_has_header_loader_heap_cmdline_e820(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct boot_params *zp;
	struct err e;
	const char *k = bz_file(f, &s);
	const char *cmdline = "console=ttyS0 earlyprintk=serial";

	memset(gptr(f, LAYOUT_ZERO_PAGE, 4096), 0xEE, 4096);
	assert_int_equal(load(f, k, NULL, cmdline, BOOT_MODE_DIRECT, &img, &e), 0);
	zp = zero_page(f);
	assert_int_equal(zp->hdr.boot_flag, 0xAA55);
	assert_int_equal(zp->hdr.header, 0x53726448);
	assert_int_equal(zp->hdr.version, 0x020f);
	assert_int_equal(zp->hdr.type_of_loader, 0xff);
	assert_true(zp->hdr.loadflags & CAN_USE_HEAP);
	assert_true(zp->hdr.loadflags & LOADED_HIGH);
	assert_int_equal(zp->hdr.heap_end_ptr, 0xfe00);
	assert_int_equal(zp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	assert_int_equal(zp->ext_cmd_line_ptr, 0);
	assert_int_equal(zp->hdr.pref_address, 0x1000000);
	assert_int_equal(zp->hdr.init_size, 4 * MiB);
	assert_string_equal((char *)gptr(f, LAYOUT_CMDLINE, strlen(cmdline) + 1), cmdline);
	assert_int_equal(zp->hdr.ramdisk_image, 0);
	assert_int_equal(zp->hdr.ramdisk_size, 0);
	assert_int_equal(zp->acpi_rsdp_addr, 0);
	assert_int_equal(zp->sentinel, 0);
	assert_int_equal(zp->e820_entries, 4);
	assert_int_equal(zp->e820_table[0].addr, 0);
	assert_int_equal(zp->e820_table[0].type, E820_RAM);
	assert_int_equal(zp->e820_table[3].addr, LAYOUT_BIOS_END);
	assert_int_equal(zp->e820_table[3].size, 256 * MiB - LAYOUT_BIOS_END);
}

static void test_bzimage_rejects_protocol_205(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.version = 0x0205;
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOTSUP, k, "2.05");
	assert_non_null(strstr(e.msg, "2.06"));
	assert_int_equal(img.protocol, 0x0205);
}

static void test_bzimage_rejects_protocol_211_without_xloadflags(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.version = 0x020b;
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -ENOTSUP, k,
		   "not 64-bit capable");
}

static void test_bzimage_rejects_kernel_without_xlf_kernel_64(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.xloadflags = 0;
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOTSUP, k,
		   "XLF_KERNEL_64");
}

static void test_bzimage_too_big_for_ram_names_size_and_address(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.init_size = 20 * MiB;
	k = bz_file(f, &s);
	fx_mem(f, 32 * MiB);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -ENOMEM, k,
		   "kernel needs 20 MiB at 0x1000000, guest has 32 MiB");
}

static void test_bzimage_rejects_bad_kernel_alignment(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.kernel_alignment = 0x300000;
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -ENOEXEC, k,
		   "kernel_alignment");
}

static void test_bzimage_truncated_setup_rejected(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *bz = bz_build(&s, &len);
	const char *k = fx_file(f, "bzImage", bz, 3 * 512);

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, k, "truncated");
	free(bz);
}

static void test_bzimage_truncated_protected_mode_rejected(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.syssize_extra = 1;
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -ENOEXEC, k, "truncated");
}

/* ---- kernel file errors --------------------------------------------------------- */

static void test_kernel_missing_names_file_and_strerror(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	const char *k = fx_path(f, "no-such-kernel");

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOENT, k,
		   "No such file or directory");
}

static void test_kernel_directory_is_unreadable(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	const char *k = fx_path(f, "kernel-dir");

	assert_int_equal(mkdir(k, 0700), 0);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -EISDIR, k, "cannot read");
}

static void test_kernel_without_read_permission_is_unreadable(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	const char *k;

	if (geteuid() == 0)
		skip(); /* root reads anything */
	k = fx_file(f, "kernel", "x", 1);
	assert_int_equal(chmod(k, 0), 0);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -EACCES, k,
		   "Permission denied");
}

static void test_kernel_empty_file_rejected(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	const char *k = fx_file(f, "empty", "", 0);

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, k, "empty");
}

static void test_kernel_bad_magic_rejected(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	char junk[4096];
	const char *k, *tiny;

	memset(junk, 'x', sizeof(junk));
	k = fx_file(f, "junk", junk, sizeof(junk));
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, k, "bad magic");
	tiny = fx_file(f, "tiny", "MZ", 2);
	assert_err(load(f, tiny, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, tiny,
		   "bad magic");
}

static void test_missing_kernel_path_rejected(void **state)
{
	struct fixture *f = *state;
	struct boot_config cfg = { 0 };
	struct boot_image img;
	struct err e = { 0 };

	assert_int_equal(x86_boot__load(&f->mem, &cfg, &img, &e), -EINVAL);
	assert_int_equal(e.code, -EINVAL);
}

/* ---- command line ---------------------------------------------------------------- */

static void test_cmdline_too_long_rejected(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.cmdline_size = 16;
	k = bz_file(f, &s);
	assert_int_equal(load(f, k, NULL, "0123456789abcdef", BOOT_MODE_DIRECT, &img, &e), 0);
	assert_err(load(f, k, NULL, "0123456789abcdefg", BOOT_MODE_DIRECT, &img, &e), &e, -E2BIG,
		   k, "17 bytes");
}

static void test_cmdline_limited_by_layout_for_elf(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x1000000, &len);
	const char *k = fx_file(f, "vmlinux", elf, len);
	char *big = malloc(LAYOUT_CMDLINE_MAX + 1);

	memset(big, 'a', LAYOUT_CMDLINE_MAX);
	big[LAYOUT_CMDLINE_MAX] = 0;
	assert_err(load(f, k, NULL, big, BOOT_MODE_AUTO, &img, &e), &e, -E2BIG, k, "command line");
	big[LAYOUT_CMDLINE_MAX - 1] = 0;
	assert_int_equal(load(f, k, NULL, big, BOOT_MODE_AUTO, &img, &e), 0);
	assert_int_equal(strlen(gptr(f, LAYOUT_CMDLINE, LAYOUT_CMDLINE_MAX)), LAYOUT_CMDLINE_MAX - 1);
	free(big);
	free(elf);
}

static void test_no_cmdline_writes_empty_string(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_file(f, &s);

	memset(gptr(f, LAYOUT_CMDLINE, 16), 'z', 16);
	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_string_equal((char *)gptr(f, LAYOUT_CMDLINE, 1), "");
	assert_int_equal(zero_page(f)->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
}

/* ---- initrd ----------------------------------------------------------------------- */

static const char *initrd_file(struct fixture *f, size_t size)
{
	uint8_t *buf = malloc(size);
	const char *path;
	size_t i;

	assert_non_null(buf);
	for (i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 13 + 5);
	path = fx_file(f, "initrd", buf, size);
	free(buf);
	return path;
}

static void assert_initrd_at(struct fixture *f, const struct boot_image *img, uint64_t addr,
			     size_t size)
{
	struct boot_params *zp = zero_page(f);
	uint8_t *p = gptr(f, addr, size);
	size_t i;

	assert_int_equal(img->initrd_start, addr);
	assert_int_equal(img->initrd_size, size);
	assert_int_equal(zp->hdr.ramdisk_image, (uint32_t)addr);
	assert_int_equal(zp->ext_ramdisk_image, (uint32_t)(addr >> 32));
	assert_int_equal(zp->hdr.ramdisk_size, size);
	assert_int_equal(zp->ext_ramdisk_size, 0);
	for (i = 0; i < size; i++)
		if (p[i] != (uint8_t)(i * 13 + 5))
			fail_msg("initrd byte %zu differs", i);
}

static void test_initrd_placed_below_initrd_addr_max(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k, *rd;

	s.initrd_addr_max = 0x3FFFFFF; /* 64 MiB - 1, RAM is 256 MiB */
	k = bz_file(f, &s);
	rd = initrd_file(f, 10000);
	assert_int_equal(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	/* Highest page-aligned start with end <= 64 MiB. */
	assert_initrd_at(f, &img, 0x4000000 - 0x3000, 10000);
}

static void test_initrd_placed_at_top_of_low_ram(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_file(f, &s);
	const char *rd = initrd_file(f, 2 * 4096);

	fx_mem(f, 64 * MiB);
	assert_int_equal(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_initrd_at(f, &img, 64 * MiB - 2 * 4096, 2 * 4096);
}

static void test_initrd_placed_below_kernel_when_above_is_full(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k, *rd;

	/* Kernel occupies [16, 20) MiB; the initrd may not end above 18 MiB. */
	s.initrd_addr_max = 0x11FFFFF;
	k = bz_file(f, &s);
	rd = initrd_file(f, 5000);
	assert_int_equal(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_initrd_at(f, &img, 0x1000000 - 0x2000, 5000);
	assert_true(img.initrd_start + img.initrd_size <= img.kernel_start);
}

static void test_initrd_too_big_rejected_with_free_space(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_file(f, &s);
	const char *rd = initrd_file(f, 16 * MiB);

	fx_mem(f, 40 * MiB);
	assert_int_equal(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_initrd_at(f, &img, 24 * MiB, 16 * MiB);
	/* 21 MiB guest, kernel at [16, 20) MiB: 15 MiB free below it, 1 MiB above. */
	fx_mem(f, 21 * MiB);
	assert_err(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -ENOMEM, rd,
		   "initrd");
	assert_non_null(strstr(e.msg, "(16 MiB) does not fit: 15 MiB free below 0x1500000"));
}

static void test_initrd_missing_rejected(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_file(f, &s);
	const char *rd = fx_path(f, "no-such-initrd");

	assert_err(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -ENOENT, rd,
		   "No such file or directory");
	assert_non_null(strstr(e.msg, "initrd"));
}

static void test_initrd_directory_rejected(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_file(f, &s);
	const char *rd = fx_path(f, "initrd-dir");

	assert_int_equal(mkdir(rd, 0700), 0);
	assert_err(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -EISDIR, rd, "initrd");
}

static void test_initrd_empty_rejected(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_file(f, &s);
	const char *rd = fx_file(f, "initrd", "", 0);

	assert_err(load(f, k, rd, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -EINVAL, rd, "empty");
}

/* ---- host decompression --------------------------------------------------------- */

static void test_decompress_xz_payload_loads_vmlinux_segments(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_with_vmlinux(f, &s, 0x1000000, xz_compress);

	memset(gptr(f, 0x1200000, 0x2000), 0xAA, 0x2000); /* bss must be cleared */
	assert_int_equal(load(f, k, NULL, "quiet", BOOT_MODE_DECOMPRESS, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000000);
	assert_int_equal(img.protocol, 0x020f);
	assert_int_equal(img.kernel_start, 0x1000000);
	assert_int_equal(img.kernel_end, 0x1000000 + 4 * MiB); /* init_size covers bss/brk */
	assert_vmlinux_loaded(f);
	assert_non_null(strstr(img.format, "bzImage 2.15, xz payload decompressed by the monitor"));
	assert_non_null(strstr(img.format, "at 0x1000000"));
	/* The zero page still comes from the bzImage's setup header. */
	assert_int_equal(zero_page(f)->hdr.header, 0x53726448);
	assert_int_equal(zero_page(f)->hdr.type_of_loader, 0xff);
	assert_int_equal(zero_page(f)->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
}

static void test_decompress_gzip_payload_loads_vmlinux_segments(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_with_vmlinux(f, &s, 0x1000000, gzip_compress);

	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000000);
	assert_vmlinux_loaded(f);
	assert_non_null(strstr(img.format, "gzip payload decompressed by the monitor"));
}

static void test_decompress_zstd_payload_loads_vmlinux_segments(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_with_vmlinux(f, &s, 0x1000000, zstd_compress);

	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000000);
	assert_vmlinux_loaded(f);
	assert_non_null(strstr(img.format, "zstd payload decompressed by the monitor"));
}

static void test_decompress_converts_virtual_entry_to_physical(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_with_vmlinux(f, &s, 0xffffffff81000040ULL, xz_compress);

	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000040);
}

static void test_auto_decompresses_supported_payload(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_with_vmlinux(f, &s, 0x1000000, xz_compress);

	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000000);
	assert_vmlinux_loaded(f);
}

static void test_direct_mode_ignores_supported_payload(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_with_vmlinux(f, &s, 0x1000000, xz_compress);

	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000200);
	assert_non_null(strstr(img.format, "xz payload decompressed by the guest"));
}

static const uint8_t lz4_payload[] = { 0x02, 0x21, 0x4C, 0x18, 1, 2, 3, 4, 5, 6, 7, 8 };

static void test_auto_falls_back_to_direct_for_unsupported_codec(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.payload = lz4_payload;
	s.payload_len = sizeof(lz4_payload);
	k = bz_file(f, &s);
	assert_int_equal(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000200);
	assert_non_null(strstr(img.format, "lz4 payload decompressed by the guest"));
}

static void test_decompress_mode_rejects_unsupported_codec_naming_it(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.payload = lz4_payload;
	s.payload_len = sizeof(lz4_payload);
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), &e, -ENOTSUP, k, "lz4");
}

static void test_decompress_mode_rejects_image_without_payload(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k = bz_file(f, &s);

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), &e, -ENOTSUP, k,
		   "payload");
}

static void test_decompress_rejects_corrupt_xz_payload(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	size_t vlen, plen, i;
	uint8_t *vmlinux = vmlinux_build(0x1000000, &vlen);
	uint8_t *payload = xz_compress(vmlinux, vlen, &plen);
	const char *k;

	for (i = 40; i < plen - 40; i += 7)
		payload[i] ^= 0x55;
	s.payload = payload;
	s.payload_len = plen;
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), &e, -EBADMSG, k,
		   "xz payload is corrupt");
	free(payload);
	free(vmlinux);
}

static void test_decompress_rejects_truncated_gzip_and_zstd_payloads(void **state)
{
	struct fixture *f = *state;
	compress_fn fns[] = { gzip_compress, zstd_compress, xz_compress };
	const char *names[] = { "gzip payload is corrupt", "zstd payload is corrupt",
				"xz payload is corrupt" };
	size_t vlen, plen, i;
	uint8_t *vmlinux = vmlinux_build(0x1000000, &vlen);

	for (i = 0; i < 3; i++) {
		struct bz_spec s = bz_default();
		struct boot_image img;
		struct err e;
		uint8_t *payload = fns[i](vmlinux, vlen, &plen);
		char name[32];
		const char *k;

		s.payload = payload;
		s.payload_len = plen / 2;
		snprintf(name, sizeof(name), "bzImage-%zu", i);
		{
			size_t len;
			uint8_t *bz = bz_build(&s, &len);

			k = fx_file(f, name, bz, len);
			free(bz);
		}
		assert_err(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), &e, -EBADMSG, k,
			   names[i]);
		free(payload);
	}
	free(vmlinux);
}

static void test_decompress_rejects_payload_that_is_not_elf(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	static const uint8_t junk[4096] = { 1, 2, 3 };
	size_t plen;
	uint8_t *payload = xz_compress(junk, sizeof(junk), &plen);
	const char *k;

	s.payload = payload;
	s.payload_len = plen;
	k = bz_file(f, &s);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), &e, -EBADMSG, k,
		   "not an ELF");
	free(payload);
}

static void test_decompress_rejects_payload_beyond_file(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *bz;
	const char *k;

	s.payload = lz4_payload;
	s.payload_len = sizeof(lz4_payload);
	bz = bz_build(&s, &len);
	/* payload_length claims more than the protected-mode part holds */
	((struct setup_header *)(bz + 0x1f1))->payload_length = 0x100000;
	k = fx_file(f, "bzImage", bz, len);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, k, "truncated");
	free(bz);
}

static void test_decompress_vmlinux_too_big_for_ram(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = bz_default();
	struct boot_image img;
	struct err e;
	const char *k;

	s.init_size = 40 * MiB;
	k = bz_with_vmlinux(f, &s, 0x1000000, zstd_compress);
	fx_mem(f, 32 * MiB);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_DECOMPRESS, &img, &e), &e, -ENOMEM, k,
		   "kernel needs 40 MiB at 0x1000000, guest has 32 MiB");
}

/* ---- plain ELF ---------------------------------------------------------------- */

static void test_elf_loads_segments_and_writes_zero_page(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct boot_params *zp;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x1000010, &len);
	const char *k = fx_file(f, "guest.elf", elf, len);
	const char *rd = initrd_file(f, 3000);

	memset(gptr(f, 0x1200000, 0x2000), 0xAA, 0x2000);
	assert_int_equal(load(f, k, rd, "rtvmm.test=1", BOOT_MODE_AUTO, &img, &e), 0);
	assert_int_equal(img.entry, 0x1000010);
	assert_int_equal(img.protocol, 0);
	assert_int_equal(img.kernel_start, 0x1000000);
	assert_int_equal(img.kernel_end, 0x1202000);
	assert_vmlinux_loaded(f);
	assert_non_null(strstr(img.format, "ELF64"));
	assert_initrd_at(f, &img, 256 * MiB - 4096, 3000);
	zp = zero_page(f);
	assert_int_equal(zp->hdr.boot_flag, 0xAA55);
	assert_int_equal(zp->hdr.header, 0x53726448);
	assert_int_equal(zp->hdr.type_of_loader, 0xff);
	assert_int_equal(zp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	assert_string_equal((char *)gptr(f, LAYOUT_CMDLINE, 13), "rtvmm.test=1");
	assert_int_equal(zp->e820_entries, 4);
	assert_int_equal(zp->e820_table[1].type, E820_RESERVED);
	free(elf);
}

static void test_elf_rejects_segment_outside_ram(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	struct seg seg = { .paddr = 255 * MiB, .data = text, .filesz = 0x1000, .memsz = 2 * MiB };
	size_t len;
	uint8_t *elf = elf_build(255 * MiB, &seg, 1, &len);
	const char *k = fx_file(f, "guest.elf", elf, len);

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOMEM, k,
		   "outside guest RAM");
	free(elf);
}

static void test_elf_rejects_overflowing_segment(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	struct seg seg = { .paddr = 0xfffffffffffff000ULL, .data = text, .filesz = 0x1000,
			   .memsz = 0x2000 };
	size_t len;
	uint8_t *elf = elf_build(0xfffffffffffff000ULL, &seg, 1, &len);
	const char *k = fx_file(f, "guest.elf", elf, len);

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOMEM, k,
		   "outside guest RAM");
	free(elf);
}

static void test_elf_rejects_segment_below_1mib(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	struct seg seg = { .paddr = 0x7000, .data = text, .filesz = 0x1000, .memsz = 0x1000 };
	size_t len;
	uint8_t *elf = elf_build(0x7000, &seg, 1, &len);
	const char *k = fx_file(f, "guest.elf", elf, len);

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -EINVAL, k, "boot area");
	free(elf);
}

static void test_elf_rejects_segment_offset_beyond_file(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x1000000, &len);
	const char *k;

	((Elf64_Phdr *)(elf + sizeof(Elf64_Ehdr)))[1].p_offset = 0xfffffffffffff000ULL;
	k = fx_file(f, "guest.elf", elf, len);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, k, "truncated");
	free(elf);
}

static void test_elf_rejects_truncated_file(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x1000000, &len);
	const char *hdr_only = fx_file(f, "hdr.elf", elf, 40);
	const char *no_data = fx_file(f, "nodata.elf", elf, 0x1800);

	assert_err(load(f, hdr_only, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, hdr_only,
		   "truncated");
	assert_err(load(f, no_data, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, no_data,
		   "truncated");
	free(elf);
}

static void test_elf_rejects_32bit_class(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x1000000, &len);
	const char *k;

	elf[EI_CLASS] = ELFCLASS32;
	k = fx_file(f, "guest32.elf", elf, len);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOTSUP, k,
		   "not 64-bit capable");
	free(elf);
}

static void test_elf_rejects_foreign_machine(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x1000000, &len);
	const char *k;

	((Elf64_Ehdr *)elf)->e_machine = EM_AARCH64;
	k = fx_file(f, "arm.elf", elf, len);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, k, "x86-64");
	free(elf);
}

static void test_elf_rejects_entry_outside_segments(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x5000000, &len);
	const char *k = fx_file(f, "guest.elf", elf, len);

	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOEXEC, k,
		   "entry point 0x5000000");
	free(elf);
}

static void test_tiny_guest_rejects_kernel_without_crashing(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	size_t len;
	uint8_t *elf = vmlinux_build(0x1000000, &len);
	const char *k = fx_file(f, "guest.elf", elf, len);
	struct bz_spec s = bz_default();
	const char *bz = bz_file(f, &s);

	fx_mem(f, 512 * 1024);
	assert_err(load(f, k, NULL, NULL, BOOT_MODE_AUTO, &img, &e), &e, -ENOMEM, k, "guest RAM");
	assert_err(load(f, bz, NULL, NULL, BOOT_MODE_DIRECT, &img, &e), &e, -ENOMEM, bz,
		   "kernel needs");
	assert_int_equal(img.entry, 0);
	free(elf);
}

/* ---- the real Debian kernel ------------------------------------------------------ */

/* Where a fetched Debian kernel lands, relative to the source root. */
static const char *const kernel_globs[] = {
	".cache/kernel/vmlinuz*",
	".cache/debian-kernel/*/boot/vmlinuz*",
};

/* RTVMM_TEST_KERNEL, else a cached Debian kernel under the source root, else NULL. */
static char *real_kernel(void)
{
	const char *env = getenv("RTVMM_TEST_KERNEL");
	const char *suffix = "tests/unit/test_boot.c";
	size_t flen = strlen(__FILE__), slen = strlen(suffix);
	char exe[PATH_MAX], roots[2][PATH_MAX + 8], pattern[3 * PATH_MAX];
	char *found = NULL;
	unsigned i, j, nr = 0;
	ssize_t n;

	if (env && *env)
		return access(env, R_OK) == 0 ? strdup(env) : NULL;
	if (flen < slen || strcmp(__FILE__ + flen - slen, suffix) != 0)
		return NULL;
	/* __FILE__ is absolute, or relative to the build root: the cwd or the exe's parent. */
	snprintf(roots[nr++], sizeof(roots[0]), "%.*s", (int)(flen - slen), __FILE__);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (__FILE__[0] != '/' && n > 0) {
		exe[n] = 0;
		snprintf(roots[nr++], sizeof(roots[0]), "%s/../%.*s", dirname(exe),
			 (int)(flen - slen), __FILE__);
	}
	for (i = 0; i < nr && !found; i++)
		for (j = 0; j < sizeof(kernel_globs) / sizeof(kernel_globs[0]) && !found; j++) {
			glob_t g;

			snprintf(pattern, sizeof(pattern), "%s%s", roots[i], kernel_globs[j]);
			if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0)
				found = strdup(g.gl_pathv[0]);
			globfree(&g);
		}
	return found;
}

static uint32_t file_le32(const char *path, long off)
{
	uint8_t b[4] = { 0 };
	FILE *fp = fopen(path, "rb");

	assert_non_null(fp);
	assert_int_equal(fseek(fp, off, SEEK_SET), 0);
	assert_int_equal(fread(b, 1, 4, fp), 4);
	fclose(fp);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void test_real_kernel_decompresses_to_startup_64(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	char *k = real_kernel();
	uint32_t pref;

	if (!k)
		skip();
	pref = file_le32(k, 0x258);
	fx_mem(f, 512 * MiB);
	if (load(f, k, NULL, "console=ttyS0", BOOT_MODE_DECOMPRESS, &img, &e) != 0)
		fail_msg("%s", e.msg);
	print_message("%s: %s, entry 0x%llx, kernel [0x%llx, 0x%llx)\n", k, img.format,
		      (unsigned long long)img.entry, (unsigned long long)img.kernel_start,
		      (unsigned long long)img.kernel_end);
	assert_true(img.protocol >= 0x020c);
	assert_int_equal(img.entry, pref); /* startup_64 at LOAD_PHYSICAL_ADDR */
	assert_int_equal(img.kernel_start, pref);
	assert_non_null(strstr(img.format, "decompressed by the monitor"));
	assert_int_equal(zero_page(f)->hdr.version, img.protocol);
	/* The kernel's own startup code: not all zeroes. */
	assert_int_not_equal(*(uint64_t *)gptr(f, img.entry, 8), 0);
	free(k);
}

static void test_real_kernel_direct_entry(void **state)
{
	struct fixture *f = *state;
	struct boot_image img;
	struct err e;
	char *k = real_kernel();

	if (!k)
		skip();
	fx_mem(f, 512 * MiB);
	if (load(f, k, NULL, NULL, BOOT_MODE_DIRECT, &img, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(img.entry, file_le32(k, 0x258) + 0x200);
	assert_non_null(strstr(img.format, "decompressed by the guest"));
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_bzimage_direct_loads_at_pref_address_and_enters_at_plus_0x200),
		T(test_bzimage_not_relocatable_loads_at_1mib),
		T(test_bzimage_setup_sects_zero_means_four),
		T(test_bzimage_zero_page_has_header_loader_heap_cmdline_e820),
		T(test_bzimage_rejects_protocol_205),
		T(test_bzimage_rejects_protocol_211_without_xloadflags),
		T(test_bzimage_rejects_kernel_without_xlf_kernel_64),
		T(test_bzimage_too_big_for_ram_names_size_and_address),
		T(test_bzimage_rejects_bad_kernel_alignment),
		T(test_bzimage_truncated_setup_rejected),
		T(test_bzimage_truncated_protected_mode_rejected),
		T(test_kernel_missing_names_file_and_strerror),
		T(test_kernel_directory_is_unreadable),
		T(test_kernel_without_read_permission_is_unreadable),
		T(test_kernel_empty_file_rejected),
		T(test_kernel_bad_magic_rejected),
		T(test_missing_kernel_path_rejected),
		T(test_cmdline_too_long_rejected),
		T(test_cmdline_limited_by_layout_for_elf),
		T(test_no_cmdline_writes_empty_string),
		T(test_initrd_placed_below_initrd_addr_max),
		T(test_initrd_placed_at_top_of_low_ram),
		T(test_initrd_placed_below_kernel_when_above_is_full),
		T(test_initrd_too_big_rejected_with_free_space),
		T(test_initrd_missing_rejected),
		T(test_initrd_directory_rejected),
		T(test_initrd_empty_rejected),
		T(test_decompress_xz_payload_loads_vmlinux_segments),
		T(test_decompress_gzip_payload_loads_vmlinux_segments),
		T(test_decompress_zstd_payload_loads_vmlinux_segments),
		T(test_decompress_converts_virtual_entry_to_physical),
		T(test_auto_decompresses_supported_payload),
		T(test_direct_mode_ignores_supported_payload),
		T(test_auto_falls_back_to_direct_for_unsupported_codec),
		T(test_decompress_mode_rejects_unsupported_codec_naming_it),
		T(test_decompress_mode_rejects_image_without_payload),
		T(test_decompress_rejects_corrupt_xz_payload),
		T(test_decompress_rejects_truncated_gzip_and_zstd_payloads),
		T(test_decompress_rejects_payload_that_is_not_elf),
		T(test_decompress_rejects_payload_beyond_file),
		T(test_decompress_vmlinux_too_big_for_ram),
		T(test_elf_loads_segments_and_writes_zero_page),
		T(test_elf_rejects_segment_outside_ram),
		T(test_elf_rejects_overflowing_segment),
		T(test_elf_rejects_segment_below_1mib),
		T(test_elf_rejects_segment_offset_beyond_file),
		T(test_elf_rejects_truncated_file),
		T(test_elf_rejects_32bit_class),
		T(test_elf_rejects_foreign_machine),
		T(test_elf_rejects_entry_outside_segments),
		T(test_tiny_guest_rejects_kernel_without_crashing),
		T(test_real_kernel_decompresses_to_startup_64),
		T(test_real_kernel_direct_entry),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
