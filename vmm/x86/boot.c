/*
 * Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry only.
 *
 * Three kinds of kernel file:
 *  - bzImage, entered at its 64-bit entry (load address + 0x200): the guest
 *    runs the kernel's own decompressor;
 *  - bzImage whose payload (xz, gzip, zstd) the monitor decompresses: the
 *    vmlinux ELF inside is loaded at its link-time physical address and
 *    entered at startup_64. The guest's kernel mode is slow under nested
 *    virtualisation, so this saves minutes per boot;
 *  - plain ELF64 (vmlinux, the rtvmm bare-metal guest): PT_LOAD segments at
 *    p_paddr, entry e_entry.
 * Every kind gets a zero page (RSI) with the e820 map, command line and initrd.
 * Kernel files are untrusted: every offset and size is checked against the
 * file and guest RAM with overflow-safe arithmetic.
 */
#include "vmm/x86/boot.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZLIB_CONST
#include <zlib.h>
#include <zstd.h>

#include "vmm/x86/e820.h"
#include "vmm/x86/layout.h"

#define MiB (1ULL << 20)
#define WHAT_MAX 600           /* "kernel PATH: vmlinux from the xz payload" */
#define PAGE_SIZE_4K 0x1000ULL

/* Setup header (boot.rst "THE REAL-MODE KERNEL HEADER"). */
#define SETUP_HDR_OFFSET     0x1f1
#define SETUP_HDR_JUMP_LEN   0x201   /* byte: header ends at 0x202 + this */
#define SETUP_HDR_MAGIC_OFF  0x202
#define SETUP_SECTS_DEFAULT  4
#define SECTOR_SIZE          512
#define BOOT_FLAG_MAGIC      0xAA55
#define HDRS_MAGIC           0x53726448U /* "HdrS" */

#define PROTO_MIN            0x0206  /* cmdline_size: the oldest header we accept */
#define PROTO_PAYLOAD        0x0208  /* payload_offset/payload_length */
#define PROTO_XLOADFLAGS     0x020c  /* xloadflags (XLF_KERNEL_64) */
#define PROTO_SYNTHETIC      0x020f  /* what the zero page of a plain ELF claims */
#define INITRD_ADDR_MAX_OLD  0x37FFFFFFU

#define ENTRY64_OFFSET       0x200   /* 64-bit entry: protected-mode start + 0x200 */
#define LOADER_UNDEFINED     0xff    /* type_of_loader: no assigned loader id */
#define HEAP_END_PTR         0xfe00  /* end of setup heap, relative to the setup code, - 0x200 */

#define IDENTITY_MAP_END     0x100000000ULL       /* the boot page tables map 0..4 GiB */

/* Host-side limits on what an untrusted payload may make us allocate. */
#define DECOMPRESS_MAX       (1ULL << 30)
#define DECOMPRESS_MEMLIMIT  (1ULL << 30)
#define DECOMPRESS_FIRST     (64 * MiB)

_Static_assert(sizeof(struct boot_params) == 4096, "boot_params is one page");
_Static_assert(sizeof(struct e820_entry) == sizeof(struct boot_e820_entry), "e820 entry layout");

enum codec { CODEC_NONE, CODEC_XZ, CODEC_GZIP, CODEC_ZSTD, CODEC_OTHER };

/* State of one x86_boot__load() call. */
struct loader {
	struct guest_mem *mem;
	const struct boot_config *cfg;
	struct boot_image *out;
	struct err *e;
	const char *path;          /* kernel file, for messages */
	const uint8_t *img;        /* the kernel file, mapped read-only */
	size_t img_size;
	struct boot_params zp;     /* zero page, built here, copied to the guest last */
	uint64_t initrd_max;       /* highest byte an initrd may occupy */
	uint32_t cmdline_max;      /* longest command line, without the NUL */
};

/* What loading an ELF image produced. */
struct elf_loaded {
	uint64_t entry;
	uint64_t lo, hi;           /* guest-physical range incl. the run-time footprint */
	uint64_t loaded_end;       /* highest+1 byte of PT_LOAD */
	unsigned nr_segments;
};

static uint64_t mib_up(uint64_t bytes)
{
	return bytes / MiB + (bytes % MiB != 0);
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Opens `path` for reading and checks it is a non-empty regular file (else `empty_code`). */
static int file_open(const char *what, const char *path, int empty_code, int *fdp,
		     uint64_t *sizep, struct err *e)
{
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		return err__set(e, ret, "%s %s: cannot open: %s", what, path, strerror(-ret));
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		err__set(e, ret, "%s %s: cannot stat: %s", what, path, strerror(-ret));
		goto err_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = err__set(e, -EISDIR, "%s %s: cannot read: is a directory", what, path);
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = err__set(e, -EINVAL, "%s %s: cannot read: not a regular file", what, path);
		goto err_close;
	}
	if (st.st_size == 0) {
		ret = err__set(e, empty_code, "%s %s: file is empty", what, path);
		goto err_close;
	}
	*fdp = fd;
	*sizep = (uint64_t)st.st_size;
	return 0;

err_close:
	close(fd);
	return ret;
}

/* ---- ELF64 ---------------------------------------------------------------- */

static bool is_elf(const uint8_t *buf, size_t size)
{
	return size >= SELFMAG && memcmp(buf, ELFMAG, SELFMAG) == 0;
}

/* The physical address of `entry`: as is inside a segment's paddr range, else via its vaddr. */
static bool elf_entry_phys(const Elf64_Phdr *ph, unsigned n, uint64_t entry, uint64_t *phys)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (ph[i].p_type == PT_LOAD && entry >= ph[i].p_paddr &&
		    entry - ph[i].p_paddr < ph[i].p_memsz) {
			*phys = entry;
			return true;
		}
	for (i = 0; i < n; i++)
		if (ph[i].p_type == PT_LOAD && entry >= ph[i].p_vaddr &&
		    entry - ph[i].p_vaddr < ph[i].p_memsz) {
			*phys = entry - ph[i].p_vaddr + ph[i].p_paddr;
			return true;
		}
	return false;
}

/*
 * Validates an ELF64 x86-64 executable in `buf` and copies its PT_LOAD
 * segments to p_paddr. `what` names the image in messages ("kernel F" or
 * "kernel F: decompressed vmlinux"). `footprint` is the number of bytes from
 * the lowest segment the image needs at run time (init_size, bss); the whole
 * range must be RAM. Nothing is written to the guest unless all checks pass.
 */
static int elf_load(struct loader *l, const uint8_t *buf, size_t size, const char *what,
		    uint64_t footprint, struct elf_loaded *res)
{
	struct err *e = l->e;
	Elf64_Ehdr eh;
	Elf64_Phdr *ph;
	uint64_t lo = UINT64_MAX, hi = 0, need_end, region_end;
	unsigned i, nload = 0;
	int ret;

	if (size < sizeof(eh))
		return err__set(e, -ENOEXEC, "%s: truncated ELF header (%zu bytes)", what, size);
	memcpy(&eh, buf, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return err__set(e, -ENOTSUP, "%s: not 64-bit capable: ELF class %u, need ELF64",
				what, eh.e_ident[EI_CLASS]);
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return err__set(e, -ENOEXEC, "%s: ELF is not little-endian", what);
	if (eh.e_machine != EM_X86_64)
		return err__set(e, -ENOEXEC, "%s: ELF machine %u is not x86-64 (%u)",
				what, eh.e_machine, EM_X86_64);
	if (eh.e_type != ET_EXEC)
		return err__set(e, -ENOEXEC, "%s: ELF type %u is not an executable (ET_EXEC)",
				what, eh.e_type);
	if (eh.e_phnum == 0 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return err__set(e, -ENOEXEC, "%s: ELF has %u program headers of %u bytes",
				what, eh.e_phnum, eh.e_phentsize);
	if (eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
		return err__set(e, -ENOEXEC, "%s: truncated: program headers at 0x%llx lie beyond "
				"the end of the file (%zu bytes)", what,
				(unsigned long long)eh.e_phoff, size);

	ph = calloc(eh.e_phnum, sizeof(*ph));
	if (!ph)
		return err__set(e, -ENOMEM, "%s: out of memory", what);
	memcpy(ph, buf + eh.e_phoff, eh.e_phnum * sizeof(*ph));

	for (i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz) {
			ret = err__set(e, -ENOEXEC, "%s: segment %u has p_filesz 0x%llx > p_memsz 0x%llx",
				       what, i, (unsigned long long)p->p_filesz,
				       (unsigned long long)p->p_memsz);
			goto err_free;
		}
		if (p->p_offset > size || p->p_filesz > size - p->p_offset) {
			ret = err__set(e, -ENOEXEC, "%s: truncated: segment %u needs file bytes "
				       "0x%llx+0x%llx, the file has %zu", what, i,
				       (unsigned long long)p->p_offset,
				       (unsigned long long)p->p_filesz, size);
			goto err_free;
		}
		if (p->p_paddr < LAYOUT_KERNEL) {
			ret = err__set(e, -EINVAL, "%s: segment %u at 0x%llx overlaps the boot area "
				       "below 0x%llx", what, i, (unsigned long long)p->p_paddr,
				       LAYOUT_KERNEL);
			goto err_free;
		}
		if (!guest_mem__ptr(l->mem, p->p_paddr, p->p_memsz)) {
			ret = err__set(e, -ENOMEM, "%s: segment %u [0x%llx, +0x%llx) is outside "
				       "guest RAM (%llu MiB)", what, i,
				       (unsigned long long)p->p_paddr,
				       (unsigned long long)p->p_memsz,
				       (unsigned long long)(l->mem->size / MiB));
			goto err_free;
		}
		if (p->p_paddr < lo)
			lo = p->p_paddr;
		if (p->p_paddr + p->p_memsz > hi)
			hi = p->p_paddr + p->p_memsz;
		nload++;
	}
	if (!nload) {
		ret = err__set(e, -ENOEXEC, "%s: ELF has no PT_LOAD segment", what);
		goto err_free;
	}
	if (!elf_entry_phys(ph, eh.e_phnum, eh.e_entry, &res->entry)) {
		ret = err__set(e, -ENOEXEC, "%s: entry point 0x%llx lies in no PT_LOAD segment",
			       what, (unsigned long long)eh.e_entry);
		goto err_free;
	}
	if (res->entry >= IDENTITY_MAP_END) {
		ret = err__set(e, -EINVAL, "%s: entry point 0x%llx is above 4 GiB (not identity mapped)",
			       what, (unsigned long long)res->entry);
		goto err_free;
	}

	/* The run-time footprint (bss, brk, early page tables) must be RAM as well. */
	need_end = hi;
	if (footprint > need_end - lo)
		need_end = footprint > UINT64_MAX - lo ? UINT64_MAX : lo + footprint;
	region_end = guest_mem__region_end(l->mem, lo);
	if (need_end > region_end) {
		ret = err__set(e, -ENOMEM, "%s: kernel needs %llu MiB at 0x%llx, guest has %llu MiB",
			       what, (unsigned long long)mib_up(need_end - lo),
			       (unsigned long long)lo, (unsigned long long)(l->mem->size / MiB));
		goto err_free;
	}

	for (i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		uint8_t *dst;

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		dst = guest_mem__ptr(l->mem, p->p_paddr, p->p_memsz);
		memcpy(dst, buf + p->p_offset, p->p_filesz);
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
	}
	res->lo = lo;
	res->hi = need_end;
	res->loaded_end = hi;
	res->nr_segments = nload;
	ret = 0;

err_free:
	free(ph);
	return ret;
}

/* A zero page for a kernel without a setup header: enough for the guest to find its data. */
static void zero_page_synthetic(struct loader *l)
{
	struct setup_header *h = &l->zp.hdr;
	uint64_t low_end = guest_mem__low_size(l->mem);

	h->boot_flag = BOOT_FLAG_MAGIC;
	h->header = HDRS_MAGIC;
	h->version = PROTO_SYNTHETIC;
	h->type_of_loader = LOADER_UNDEFINED;
	h->loadflags = LOADED_HIGH;
	h->cmdline_size = LAYOUT_CMDLINE_MAX - 1;
	h->initrd_addr_max = low_end ? (uint32_t)(low_end - 1) : 0;
	l->cmdline_max = h->cmdline_size;
	l->initrd_max = h->initrd_addr_max;
}

static int load_plain_elf(struct loader *l)
{
	struct elf_loaded res = { 0 };
	char what[WHAT_MAX];
	int ret;

	snprintf(what, sizeof(what), "kernel %s", l->path);
	ret = elf_load(l, l->img, l->img_size, what, 0, &res);
	if (ret < 0)
		return ret;
	zero_page_synthetic(l);
	l->out->entry = res.entry;
	l->out->kernel_start = res.lo;
	l->out->kernel_end = res.hi;
	l->out->protocol = 0;
	snprintf(l->out->format, sizeof(l->out->format),
		 "ELF64, %u segments, %llu KiB at 0x%llx", res.nr_segments,
		 (unsigned long long)((res.hi - res.lo + 1023) / 1024),
		 (unsigned long long)res.lo);
	return 0;
}

/* ---- compressed payloads ---------------------------------------------------- */

/* Output of a decompressor: grows by doubling, never beyond DECOMPRESS_MAX. */
struct outbuf {
	uint8_t *p;
	size_t len, cap;
};

static int outbuf_grow(struct outbuf *b)
{
	size_t cap = b->cap ? b->cap * 2 : DECOMPRESS_FIRST;
	uint8_t *p;

	if (b->cap >= DECOMPRESS_MAX)
		return -EFBIG;
	if (cap > DECOMPRESS_MAX)
		cap = DECOMPRESS_MAX;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static enum codec codec_detect(const uint8_t *p, size_t n, const char **name)
{
	static const struct {
		uint8_t magic[6];
		size_t len;
		enum codec codec;
		const char *name;
	} codecs[] = {
		{ { 0xFD, '7', 'z', 'X', 'Z', 0x00 }, 6, CODEC_XZ, "xz" },
		{ { 0x1F, 0x8B }, 2, CODEC_GZIP, "gzip" },
		{ { 0x28, 0xB5, 0x2F, 0xFD }, 4, CODEC_ZSTD, "zstd" },
		{ { 'B', 'Z', 'h' }, 3, CODEC_OTHER, "bzip2" },
		{ { 0x5D, 0x00, 0x00 }, 3, CODEC_OTHER, "lzma" },
		{ { 0x89, 'L', 'Z', 'O' }, 4, CODEC_OTHER, "lzo" },
		{ { 0x02, 0x21, 0x4C, 0x18 }, 4, CODEC_OTHER, "lz4" },
	};
	size_t i;

	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (n >= codecs[i].len && memcmp(p, codecs[i].magic, codecs[i].len) == 0) {
			*name = codecs[i].name;
			return codecs[i].codec;
		}
	*name = "unknown";
	return CODEC_OTHER;
}

static const char *lzma_why(lzma_ret r)
{
	switch (r) {
	case LZMA_MEM_ERROR:     return "out of memory";
	case LZMA_MEMLIMIT_ERROR: return "needs more than 1 GiB of decoder memory";
	case LZMA_FORMAT_ERROR:  return "not an xz stream";
	case LZMA_OPTIONS_ERROR: return "unsupported xz options";
	case LZMA_DATA_ERROR:    return "data is corrupt";
	case LZMA_BUF_ERROR:     return "stream is truncated";
	default:                 return "liblzma error";
	}
}

/* One .xz stream (the kernel's may use the x86 BCJ filter); trailing bytes are ignored. */
static int unxz(const uint8_t *in, size_t n, struct outbuf *b, const char **why)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_ret r;
	int ret;

	r = lzma_stream_decoder(&s, DECOMPRESS_MEMLIMIT, 0);
	if (r != LZMA_OK) {
		*why = lzma_why(r);
		return -ENOMEM;
	}
	s.next_in = in;
	s.avail_in = n;
	for (;;) {
		if (b->len == b->cap) {
			ret = outbuf_grow(b);
			if (ret < 0)
				break;
		}
		s.next_out = b->p + b->len;
		s.avail_out = b->cap - b->len;
		r = lzma_code(&s, LZMA_FINISH);
		b->len = b->cap - s.avail_out;
		if (r == LZMA_STREAM_END) {
			ret = 0;
			break;
		}
		if (r != LZMA_OK) {
			*why = lzma_why(r);
			ret = r == LZMA_MEM_ERROR ? -ENOMEM : -EBADMSG;
			break;
		}
	}
	lzma_end(&s);
	return ret;
}

/* One gzip member; trailing bytes are ignored. */
static int gunzip(const uint8_t *in, size_t n, struct outbuf *b, const char **why)
{
	z_stream z;
	int r, ret;

	memset(&z, 0, sizeof(z));
	if (n > UINT32_MAX) {
		*why = "payload larger than 4 GiB";
		return -EBADMSG;
	}
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		*why = "out of memory";
		return -ENOMEM;
	}
	z.next_in = in;
	z.avail_in = (uInt)n;
	for (;;) {
		if (b->len == b->cap) {
			ret = outbuf_grow(b);
			if (ret < 0)
				break;
		}
		z.next_out = b->p + b->len;
		z.avail_out = (uInt)(b->cap - b->len);
		r = inflate(&z, Z_NO_FLUSH);
		b->len = b->cap - z.avail_out;
		if (r == Z_STREAM_END) {
			ret = 0;
			break;
		}
		if (r == Z_OK || (r == Z_BUF_ERROR && z.avail_out == 0))
			continue;
		if (r == Z_MEM_ERROR) {
			*why = "out of memory";
			ret = -ENOMEM;
		} else {
			*why = r == Z_BUF_ERROR ? "stream is truncated" : z.msg ? z.msg : "data is corrupt";
			ret = -EBADMSG;
		}
		break;
	}
	inflateEnd(&z);
	return ret;
}

/* One zstd frame; trailing bytes are ignored. */
static int unzstd(const uint8_t *in, size_t n, struct outbuf *b, const char **why)
{
	ZSTD_inBuffer ib = { .src = in, .size = n, .pos = 0 };
	ZSTD_DCtx *d;
	size_t r;
	int ret;

	d = ZSTD_createDCtx();
	if (!d) {
		*why = "out of memory";
		return -ENOMEM;
	}
	for (;;) {
		ZSTD_outBuffer ob;

		if (b->len == b->cap) {
			ret = outbuf_grow(b);
			if (ret < 0)
				break;
		}
		ob = (ZSTD_outBuffer){ .dst = b->p, .size = b->cap, .pos = b->len };
		r = ZSTD_decompressStream(d, &ob, &ib);
		b->len = ob.pos;
		if (ZSTD_isError(r)) {
			*why = ZSTD_getErrorName(r);
			ret = -EBADMSG;
			break;
		}
		if (r == 0) {
			ret = 0;
			break;
		}
		if (ib.pos == ib.size && ob.pos < ob.size) {
			*why = "stream is truncated";
			ret = -EBADMSG;
			break;
		}
	}
	ZSTD_freeDCtx(d);
	return ret;
}

/*
 * Decompresses the payload on the host and loads the vmlinux inside at its
 * link-time physical address (LOAD_PHYSICAL_ADDR): no relocation is needed
 * there, and the guest enters startup_64 as the kernel's decompressor would.
 */
static int load_decompressed(struct loader *l, const uint8_t *payload, size_t len,
			     enum codec codec, const char *name)
{
	const struct setup_header *h = &l->zp.hdr;
	struct outbuf b = { 0 };
	struct elf_loaded res = { 0 };
	const char *why = "";
	char what[WHAT_MAX];
	uint32_t hint;
	int ret;

	/* The kernel appends the decompressed size (gzip's ISIZE is the same): a sizing hint. */
	hint = len >= 4 ? get_le32(payload + len - 4) : 0;
	if (hint && hint <= DECOMPRESS_MAX - PAGE_SIZE_4K) {
		b.cap = hint + PAGE_SIZE_4K;
		b.p = malloc(b.cap);
		if (!b.p)
			return err__set(l->e, -ENOMEM, "kernel %s: out of memory for the %u-byte vmlinux",
					l->path, hint);
	}

	if (codec == CODEC_XZ)
		ret = unxz(payload, len, &b, &why);
	else if (codec == CODEC_GZIP)
		ret = gunzip(payload, len, &b, &why);
	else
		ret = unzstd(payload, len, &b, &why);
	if (ret == -EFBIG) {
		err__set(l->e, ret, "kernel %s: %s payload decompresses to more than %llu MiB",
			 l->path, name, DECOMPRESS_MAX / MiB);
		goto err_free;
	}
	if (ret < 0) {
		err__set(l->e, ret, "kernel %s: %s payload is corrupt: %s", l->path, name, why);
		goto err_free;
	}
	if (!is_elf(b.p, b.len)) {
		ret = err__set(l->e, -EBADMSG, "kernel %s: %s payload is not an ELF vmlinux "
			       "(%zu bytes)", l->path, name, b.len);
		goto err_free;
	}

	snprintf(what, sizeof(what), "kernel %s: vmlinux from the %s payload", l->path, name);
	ret = elf_load(l, b.p, b.len, what, h->init_size, &res);
	if (ret < 0)
		goto err_free;
	l->out->entry = res.entry;
	l->out->kernel_start = res.lo;
	l->out->kernel_end = res.hi;
	snprintf(l->out->format, sizeof(l->out->format),
		 "bzImage %u.%02u, %s payload decompressed by the monitor (vmlinux %llu MiB at 0x%llx)",
		 h->version >> 8, h->version & 0xff, name,
		 (unsigned long long)mib_up(res.loaded_end - res.lo), (unsigned long long)res.lo);

err_free:
	free(b.p);
	return ret;
}

/* ---- bzImage ----------------------------------------------------------------- */

static bool is_bzimage(const uint8_t *img, size_t size)
{
	return size >= 0x208 && get_le16(img + 0x1fe) == BOOT_FLAG_MAGIC &&
	       get_le32(img + SETUP_HDR_MAGIC_OFF) == HDRS_MAGIC;
}

/*
 * 64-bit entry: the protected-mode kernel goes to pref_address when it is
 * relocatable and fits, else to 1 MiB; the guest then decompresses itself
 * into [runtime start, + init_size) (boot.rst, "init_size"). `codec` names
 * the payload for the report, NULL when the header has none.
 */
static int load_direct(struct loader *l, const uint8_t *pm, size_t pm_size, const char *codec)
{
	const struct setup_header *h = &l->zp.hdr;
	uint64_t align = h->kernel_alignment, pref = h->pref_address;
	uint64_t init = h->init_size > pm_size ? h->init_size : pm_size;
	uint64_t load = LAYOUT_KERNEL, run, start, end;
	bool reloc = h->relocatable_kernel;

	if (reloc && (align == 0 || (align & (align - 1))))
		return err__set(l->e, -ENOEXEC, "kernel %s: kernel_alignment 0x%llx is not a power of two",
				l->path, (unsigned long long)align);
	if (pref < LAYOUT_KERNEL || pref >= IDENTITY_MAP_END)
		return err__set(l->e, -ENOEXEC, "kernel %s: pref_address 0x%llx is outside [1 MiB, 4 GiB)",
				l->path, (unsigned long long)pref);
	if (reloc && guest_mem__ptr(l->mem, pref, init))
		load = pref;
	if (reloc) {
		run = load > pref ? load : pref;
		run = (run + align - 1) & ~(align - 1);
	} else {
		run = pref;
	}
	start = load < run ? load : run;
	end = run + init > load + pm_size ? run + init : load + pm_size;
	if (end > guest_mem__region_end(l->mem, start))
		return err__set(l->e, -ENOMEM, "kernel %s: kernel needs %llu MiB at 0x%llx, guest has %llu MiB",
				l->path, (unsigned long long)mib_up(init), (unsigned long long)run,
				(unsigned long long)(l->mem->size / MiB));
	if (guest_mem__write(l->mem, load, pm, pm_size) < 0)
		return err__set(l->e, -ENOMEM, "kernel %s: %zu bytes at 0x%llx are not guest RAM",
				l->path, pm_size, (unsigned long long)load);

	l->out->entry = load + ENTRY64_OFFSET;
	l->out->kernel_start = start;
	l->out->kernel_end = end;
	snprintf(l->out->format, sizeof(l->out->format),
		 "bzImage %u.%02u, 64-bit entry at 0x%llx%s%s%s", h->version >> 8, h->version & 0xff,
		 (unsigned long long)l->out->entry, codec ? ", " : "", codec ? codec : "",
		 codec ? " payload decompressed by the guest" : "");
	return 0;
}

static int load_bzimage(struct loader *l)
{
	struct setup_header *h = &l->zp.hdr;
	const uint8_t *img = l->img, *pm, *payload = NULL;
	size_t hdr_end, setup_size, pm_size;
	const char *name = NULL;
	enum codec codec = CODEC_NONE;
	unsigned setup_sects;

	/* The header ends at 0x202 + the jump offset at 0x201; copy only what we know. */
	hdr_end = SETUP_HDR_MAGIC_OFF + img[SETUP_HDR_JUMP_LEN];
	if (hdr_end > SETUP_HDR_OFFSET + sizeof(*h))
		hdr_end = SETUP_HDR_OFFSET + sizeof(*h);
	if (hdr_end > l->img_size)
		return err__set(l->e, -ENOEXEC, "kernel %s: truncated: setup header ends at 0x%zx, "
				"the file has %zu bytes", l->path, hdr_end, l->img_size);
	memcpy(h, img + SETUP_HDR_OFFSET, hdr_end - SETUP_HDR_OFFSET);
	l->out->protocol = h->version;

	if (h->version < PROTO_MIN)
		return err__set(l->e, -ENOTSUP, "kernel %s: boot protocol %u.%02u is too old, "
				"need %u.%02u or newer", l->path, h->version >> 8, h->version & 0xff,
				PROTO_MIN >> 8, PROTO_MIN & 0xff);
	if (h->version < PROTO_XLOADFLAGS)
		return err__set(l->e, -ENOTSUP, "kernel %s: not 64-bit capable: boot protocol %u.%02u "
				"has no xloadflags (the 64-bit entry needs %u.%02u+)", l->path,
				h->version >> 8, h->version & 0xff,
				PROTO_XLOADFLAGS >> 8, PROTO_XLOADFLAGS & 0xff);
	if (!(h->xloadflags & XLF_KERNEL_64))
		return err__set(l->e, -ENOTSUP, "kernel %s: not 64-bit capable: xloadflags 0x%x "
				"lacks XLF_KERNEL_64", l->path, h->xloadflags);

	setup_sects = h->setup_sects ? h->setup_sects : SETUP_SECTS_DEFAULT;
	setup_size = (size_t)(setup_sects + 1) * SECTOR_SIZE;
	if (l->img_size <= setup_size)
		return err__set(l->e, -ENOEXEC, "kernel %s: truncated: %zu bytes, the setup code "
				"alone takes %zu", l->path, l->img_size, setup_size);
	pm = img + setup_size;
	pm_size = l->img_size - setup_size;
	if ((uint64_t)h->syssize * 16 > pm_size)
		return err__set(l->e, -ENOEXEC, "kernel %s: truncated: protected-mode kernel has %zu "
				"bytes, syssize says %llu", l->path, pm_size,
				(unsigned long long)h->syssize * 16);

	/* What the kernel reads back from the zero page: loader id, heap, limits. */
	h->type_of_loader = LOADER_UNDEFINED;
	h->loadflags |= CAN_USE_HEAP;
	h->heap_end_ptr = HEAP_END_PTR;
	l->cmdline_max = h->cmdline_size < LAYOUT_CMDLINE_MAX - 1 ? h->cmdline_size
								   : LAYOUT_CMDLINE_MAX - 1;
	l->initrd_max = h->initrd_addr_max ? h->initrd_addr_max : INITRD_ADDR_MAX_OLD;

	/* The payload only matters when we decompress it; in DIRECT mode it just names the codec. */
	if (h->version >= PROTO_PAYLOAD && h->payload_length) {
		if ((uint64_t)h->payload_offset + h->payload_length <= pm_size) {
			payload = pm + h->payload_offset;
			codec = codec_detect(payload, h->payload_length, &name);
		} else if (l->cfg->mode != BOOT_MODE_DIRECT) {
			return err__set(l->e, -ENOEXEC, "kernel %s: truncated: payload at 0x%x+0x%x lies "
					"beyond the protected-mode kernel (%zu bytes)", l->path,
					h->payload_offset, h->payload_length, pm_size);
		} else {
			name = "unknown";
		}
	}

	if (l->cfg->mode == BOOT_MODE_DIRECT)
		return load_direct(l, pm, pm_size, name);
	if (codec == CODEC_XZ || codec == CODEC_GZIP || codec == CODEC_ZSTD)
		return load_decompressed(l, payload, h->payload_length, codec, name);
	if (l->cfg->mode == BOOT_MODE_AUTO)
		return load_direct(l, pm, pm_size, name);
	if (codec == CODEC_NONE)
		return err__set(l->e, -ENOTSUP, "kernel %s: no compressed payload to decompress "
				"(payload_length 0)", l->path);
	return err__set(l->e, -ENOTSUP, "kernel %s: cannot decompress the %s payload "
			"(starts %02x %02x %02x %02x); the monitor supports xz, gzip, zstd",
			l->path, name, h->payload_length > 0 ? payload[0] : 0,
			h->payload_length > 1 ? payload[1] : 0, h->payload_length > 2 ? payload[2] : 0,
			h->payload_length > 3 ? payload[3] : 0);
}

/* ---- command line, initrd, zero page ------------------------------------------- */

static int load_cmdline(struct loader *l)
{
	const char *cmdline = l->cfg->cmdline ? l->cfg->cmdline : "";
	size_t len = strlen(cmdline);

	if (len > l->cmdline_max)
		return err__set(l->e, -E2BIG, "kernel %s: command line is %zu bytes, the kernel "
				"accepts at most %u", l->path, len, l->cmdline_max);
	if (guest_mem__write(l->mem, LAYOUT_CMDLINE, cmdline, len + 1) < 0)
		return err__set(l->e, -ENOMEM, "kernel %s: guest RAM (%llu KiB) too small for the "
				"command line at 0x%llx", l->path,
				(unsigned long long)(l->mem->size / 1024), LAYOUT_CMDLINE);
	l->zp.hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	l->zp.ext_cmd_line_ptr = 0;
	return 0;
}

/*
 * Highest page-aligned place for `size` bytes ending at or below `limit`,
 * above 1 MiB and clear of the kernel [ks, ke).
 */
static bool initrd_place(uint64_t size, uint64_t limit, uint64_t ks, uint64_t ke, uint64_t *addr)
{
	uint64_t a;

	if (size > limit)
		return false;
	a = (limit - size) & ~(PAGE_SIZE_4K - 1);
	if (a < ke && a + size > ks) {
		if (ks < size)
			return false;
		a = (ks - size) & ~(PAGE_SIZE_4K - 1);
	}
	if (a < LAYOUT_BIOS_END)
		return false;
	*addr = a;
	return true;
}

/* The largest gap an initrd could use below `limit`, for the error message. */
static uint64_t initrd_free(uint64_t limit, uint64_t ks, uint64_t ke)
{
	uint64_t above_from = ke > LAYOUT_BIOS_END ? ke : LAYOUT_BIOS_END;
	uint64_t below_to = ks < limit ? ks : limit;
	uint64_t above = limit > above_from ? limit - above_from : 0;
	uint64_t below = below_to > LAYOUT_BIOS_END ? below_to - LAYOUT_BIOS_END : 0;

	return above > below ? above : below;
}

static int load_initrd(struct loader *l)
{
	const char *path = l->cfg->initrd_path;
	uint64_t size, limit, low_end, addr, done = 0;
	uint8_t *dst;
	int fd, ret;

	if (!path)
		return 0;
	ret = file_open("initrd", path, -EINVAL, &fd, &size, l->e);
	if (ret < 0)
		return ret;

	low_end = guest_mem__low_size(l->mem);
	limit = l->initrd_max + 1 < low_end ? l->initrd_max + 1 : low_end;
	if (!initrd_place(size, limit, l->out->kernel_start, l->out->kernel_end, &addr)) {
		ret = err__set(l->e, -ENOMEM, "initrd %s (%llu MiB) does not fit: %llu MiB free "
			       "below 0x%llx", path, (unsigned long long)mib_up(size),
			       (unsigned long long)(initrd_free(limit, l->out->kernel_start,
								l->out->kernel_end) / MiB),
			       (unsigned long long)limit);
		goto err_close;
	}
	dst = guest_mem__ptr(l->mem, addr, size);
	while (done < size) {
		ssize_t n = pread(fd, dst + done, size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			err__set(l->e, ret, "initrd %s: cannot read: %s", path, strerror(-ret));
			goto err_close;
		}
		if (n == 0) {
			ret = err__set(l->e, -EIO, "initrd %s: short read: %llu of %llu bytes", path,
				       (unsigned long long)done, (unsigned long long)size);
			goto err_close;
		}
		done += (uint64_t)n;
	}
	close(fd);

	l->zp.hdr.ramdisk_image = (uint32_t)addr;
	l->zp.ext_ramdisk_image = (uint32_t)(addr >> 32);
	l->zp.hdr.ramdisk_size = (uint32_t)size;
	l->zp.ext_ramdisk_size = (uint32_t)(size >> 32);
	l->out->initrd_start = addr;
	l->out->initrd_size = size;
	return 0;

err_close:
	close(fd);
	return ret;
}

static int write_zero_page(struct loader *l)
{
	struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
	unsigned n;

	n = e820__build(l->mem, map, E820_MAX_ENTRIES_ZEROPAGE);
	memcpy(l->zp.e820_table, map, n * sizeof(map[0]));
	l->zp.e820_entries = (uint8_t)n;
	l->zp.acpi_rsdp_addr = l->cfg->acpi_rsdp;
	if (guest_mem__write(l->mem, LAYOUT_ZERO_PAGE, &l->zp, sizeof(l->zp)) < 0)
		return err__set(l->e, -ENOMEM, "kernel %s: guest RAM (%llu KiB) too small for the "
				"zero page at 0x%llx", l->path,
				(unsigned long long)(l->mem->size / 1024), LAYOUT_ZERO_PAGE);
	l->out->zero_page = LAYOUT_ZERO_PAGE;
	return 0;
}

int x86_boot__load(struct guest_mem *mem, const struct boot_config *cfg,
		   struct boot_image *out, struct err *e)
{
	struct loader *l;
	uint64_t size;
	void *img;
	int fd, ret;

	memset(out, 0, sizeof(*out));
	if (!cfg || !cfg->kernel_path)
		return err__set(e, -EINVAL, "no kernel image given");
	ret = file_open("kernel", cfg->kernel_path, -ENOEXEC, &fd, &size, e);
	if (ret < 0)
		return ret;
	img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED) {
		ret = -errno;
		close(fd);
		return err__set(e, ret, "kernel %s: cannot read: %s", cfg->kernel_path, strerror(-ret));
	}
	close(fd);

	l = calloc(1, sizeof(*l));
	if (!l) {
		ret = err__set(e, -ENOMEM, "kernel %s: out of memory", cfg->kernel_path);
		goto err_unmap;
	}
	*l = (struct loader){ .mem = mem, .cfg = cfg, .out = out, .e = e,
			      .path = cfg->kernel_path, .img = img, .img_size = size };

	if (is_elf(img, size))
		ret = load_plain_elf(l);
	else if (is_bzimage(img, size))
		ret = load_bzimage(l);
	else
		ret = err__set(e, -ENOEXEC, "kernel %s: bad magic: neither a bzImage (0xAA55 at "
			       "0x1fe, \"HdrS\" at 0x202) nor an ELF", cfg->kernel_path);
	if (ret < 0)
		goto err_free;
	ret = load_cmdline(l);
	if (ret < 0)
		goto err_free;
	ret = load_initrd(l);
	if (ret < 0)
		goto err_free;
	ret = write_zero_page(l);

err_free:
	free(l);
err_unmap:
	munmap(img, size);
	if (ret < 0) {
		uint16_t protocol = out->protocol;

		memset(out, 0, sizeof(*out));
		out->protocol = protocol;
	}
	return ret;
}
