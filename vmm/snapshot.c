#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/clock.h"

#define STATE_MAGIC      "RTVMMSNP"
#define STATE_MAX_BYTES  (256u << 20)   /* a state.bin larger than this is not ours */
#define MAX_SECTIONS     4096
#define MEM_CHUNK        (2u << 20)     /* memory.bin's checksummed unit */
#define MANIFEST         "manifest.json"
#define STATE_FILE       "state.bin"
#define MEMORY_FILE      "memory.bin"

static uint32_t crc(const void *p, size_t n)
{
	uLong c = crc32(0, Z_NULL, 0);

	while (n) {
		uInt part = n > (1u << 30) ? 1u << 30 : (uInt)n;

		c = crc32(c, p, part);
		p = (const uint8_t *)p + part;
		n -= part;
	}
	return (uint32_t)c;
}

/* ---- state.bin: sections ---- */

/* Appends section `name` holding `data` to the state file's bytes. */
static void put_section(struct state_out *file, const char *name, const struct state_out *data)
{
	state_out__u16(file, (uint16_t)strlen(name));
	state_out__bytes(file, name, strlen(name));
	state_out__u64(file, data->len);
	state_out__u32(file, crc(data->buf, data->len));
	state_out__bytes(file, data->buf, data->len);
}

struct section {
	char name[64];
	const uint8_t *p;
	uint64_t len;
};

struct state_file {
	uint8_t *bytes;
	size_t len;
	struct section *sec;
	unsigned nr;
};

static const struct section *find_section(const struct state_file *f, const char *name)
{
	unsigned i;

	for (i = 0; i < f->nr; i++)
		if (!strcmp(f->sec[i].name, name))
			return &f->sec[i];
	return NULL;
}

/* Reads `path` whole (at most `max` bytes) into *out. */
static int read_whole(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *b;
	size_t got = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		err = fstat(fd, &st) < 0 ? -errno : -EFBIG;
		goto out_close;
	}
	b = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!b) {
		err = -ENOMEM;
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);

		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			free(b);
			goto out_close;
		}
		got += (size_t)n;
	}
	*out = b;
	*len = got;
out_close:
	close(fd);
	return err;
}

/*
 * Parses state bytes (f->bytes, f->len: magic, version, sections, trailing
 * CRC), checking every checksum; `what` names them in errors.
 */
static int parse_state(struct state_file *f, const char *what, struct err *e)
{
	struct state_in in;
	uint32_t version, want;

	if (f->len < 16 || memcmp(f->bytes, STATE_MAGIC, 8))
		return err__set(e, -EINVAL, "%s: not an rtvmm state", what);
	memcpy(&want, f->bytes + f->len - 4, 4);
	if (crc(f->bytes, f->len - 4) != want)
		return err__set(e, -EINVAL, "%s: checksum mismatch (truncated or corrupt)", what);
	in = state_in__of(f->bytes + 8, f->len - 12);
	version = state_in__u32(&in);
	if (version != SNAPSHOT_VERSION)
		return err__set(e, -EINVAL, "%s: format version %u, this rtvmm reads %u", what, version,
				SNAPSHOT_VERSION);
	f->sec = calloc(MAX_SECTIONS, sizeof(*f->sec));
	if (!f->sec)
		return err__set(e, -ENOMEM, "%s: out of memory", what);
	while (!in.err && in.off < in.len) {
		struct section *s = &f->sec[f->nr];
		uint16_t nlen = state_in__u16(&in);
		uint32_t sum;

		if (f->nr == MAX_SECTIONS || nlen == 0 || nlen >= sizeof(s->name))
			return err__set(e, -EINVAL, "%s: malformed section %u", what, f->nr);
		state_in__bytes(&in, s->name, nlen);
		s->len = state_in__u64(&in);
		sum = state_in__u32(&in);
		if (in.err || s->len > in.len - in.off)
			break;
		s->p = in.p + in.off;
		in.off += s->len;
		if (memchr(s->name, 0, nlen) || find_section(f, s->name))
			return err__set(e, -EINVAL, "%s: malformed section %u", what, f->nr);
		if (crc(s->p, s->len) != sum)
			return err__set(e, -EINVAL, "%s: section %s: checksum mismatch", what, s->name);
		f->nr++;
	}
	if (in.err || in.off != in.len)
		return err__set(e, -EINVAL, "%s: truncated section %u", what, f->nr);
	return 0;
}

/* Reads state.bin of `dir` and parses it. */
static int load_state_file(const char *dir, struct state_file *f, struct err *e)
{
	char path[4096];
	int err;

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
	err = read_whole(path, STATE_MAX_BYTES, &f->bytes, &f->len);
	if (err)
		return err__set(e, err, "snapshot %s: %s", path, err == -EFBIG ?
				"not a regular file of at most 256 MiB" : strerror(-err));
	snprintf(path, sizeof(path), "snapshot %s/%s", dir, STATE_FILE);
	return parse_state(f, path, e);
}

static void free_state_file(struct state_file *f)
{
	free(f->sec);
	free(f->bytes);
	memset(f, 0, sizeof(*f));
}

/* ---- files ---- */

static int write_all(int fd, const void *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* Creates `dir/name` (it must not exist), writes `len` bytes and syncs it. */
static int write_file(const char *dir, const char *name, const void *p, size_t len)
{
	char path[4096];
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = write_all(fd, p, len, 0);
	if (!err && fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

/*
 * Writes the pages of [p, p+n) that are not all zero at file offset `off`,
 * in runs; the zero pages stay holes (reading them gives zeros). Counts the
 * bytes written into *written.
 */
static int write_pages(int fd, const uint8_t *p, size_t n, uint64_t off, uint64_t *written)
{
	size_t i = 0;
	int err;

	while (i < n) {
		size_t end = i + 4096;

		if (state__all_zero(p + i, 4096)) {
			i = end;
			continue;
		}
		while (end < n && !state__all_zero(p + end, 4096))
			end += 4096;
		err = write_all(fd, p + i, end - i, (off_t)(off + i));
		if (err)
			return err;
		*written += end - i;
		i = end;
	}
	return 0;
}

/*
 * Writes guest RAM to memory.bin, sparse: pages of zeros stay holes. The chunk
 * table (per chunk: data or all holes, CRC-32 of the chunk) goes to `table`.
 */
static int save_memory(const struct guest_mem *mem, const char *dir, struct state_out *table,
		       struct snapshot_stats *st, struct err *e)
{
	uint64_t off, nchunks = (mem->size + MEM_CHUNK - 1) / MEM_CHUNK;
	char path[4096];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, MEMORY_FILE);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return err__set(e, -errno, "snapshot %s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)mem->size) < 0) {
		err = err__set(e, -errno, "snapshot %s: %s", path, strerror(errno));
		goto out_close;
	}
	state_out__u64(table, mem->size);
	state_out__u32(table, MEM_CHUNK);
	state_out__u64(table, nchunks);
	for (off = 0; off < mem->size; off += MEM_CHUNK) {
		size_t n = mem->size - off < MEM_CHUNK ? (size_t)(mem->size - off) : MEM_CHUNK;
		const uint8_t *p = mem->base + off;

		if (state__all_zero(p, n)) {
			state_out__u8(table, 0);
			state_out__u32(table, 0);
			continue;
		}
		err = write_pages(fd, p, n, off, &st->memory_written);
		if (err) {
			err__set(e, err, "snapshot %s: %s", path, strerror(-err));
			goto out_close;
		}
		state_out__u8(table, 1);
		state_out__u32(table, crc(p, n));
	}
	if (fsync(fd) < 0)
		err = err__set(e, -errno, "snapshot %s: %s", path, strerror(errno));
out_close:
	close(fd);
	return err;
}

/* Reads memory.bin back into guest RAM, checking each chunk against the table. */
static int load_memory(const struct guest_mem *mem, const char *dir, const struct section *sec,
		       struct err *e)
{
	struct state_in t = state_in__of(sec->p, sec->len);
	uint64_t size = state_in__u64(&t), nchunks, i;
	uint32_t chunk = state_in__u32(&t);
	char path[4096];
	struct stat st;
	int fd, err = 0;

	nchunks = state_in__u64(&t);
	snprintf(path, sizeof(path), "%s/%s", dir, MEMORY_FILE);
	if (t.err || chunk != MEM_CHUNK || size != mem->size ||
	    nchunks != (size + MEM_CHUNK - 1) / MEM_CHUNK || t.len - t.off != nchunks * 5)
		return err__set(e, -EINVAL, "snapshot %s: memory table: %" PRIu64 " bytes in %" PRIu64
				" chunks of %u, this VM has %" PRIu64 " bytes", path, size, nchunks,
				chunk, mem->size);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err__set(e, -errno, "snapshot %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
		err = err__set(e, -EINVAL, "snapshot %s: %lld bytes, the memory table says %" PRIu64,
			       path, (long long)st.st_size, size);
		goto out_close;
	}
	for (i = 0; i < nchunks; i++) {
		uint64_t off = i * MEM_CHUNK;
		size_t n = size - off < MEM_CHUNK ? (size_t)(size - off) : MEM_CHUNK, got = 0;
		uint8_t has = state_in__u8(&t), *p = mem->base + off;
		uint32_t sum = state_in__u32(&t);

		if (has > 1) {
			err = err__set(e, -EINVAL, "snapshot %s: memory table entry %" PRIu64 " is %u",
				       path, i, has);
			goto out_close;
		}
		if (!has) {
			/* A hole: what the builder wrote there goes (a 4 KiB memfd gives the pages back). */
			if (mem->page_size != 4096 ||
			    fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				      (off_t)n) < 0)
				memset(p, 0, n);
			continue;
		}
		while (got < n) {
			ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));

			if (r <= 0) {
				err = err__set(e, r < 0 ? -errno : -EINVAL, "snapshot %s: %s at %" PRIu64,
					       path, r < 0 ? strerror(errno) : "truncated", off + got);
				goto out_close;
			}
			got += (size_t)r;
		}
		if (crc(p, n) != sum) {
			err = err__set(e, -EINVAL, "snapshot %s: chunk at %#" PRIx64 ": checksum mismatch "
				       "(the file is corrupt)", path, off);
			goto out_close;
		}
	}
out_close:
	close(fd);
	return err;
}

/* ---- the machine's shape ---- */

static void save_shape(const struct vm *vm, struct state_out *o)
{
	unsigned i;

	state_out__u64(o, vm->mem.size);
	state_out__u32(o, vm->nr_vcpus);
	state_out__u32(o, vm->devices.nr);
	for (i = 0; i < vm->devices.nr; i++) {
		state_out__u16(o, (uint16_t)strlen(vm->devices.v[i].name));
		state_out__bytes(o, vm->devices.v[i].name, strlen(vm->devices.v[i].name));
	}
}

/* The saved machine against the one built: -EINVAL naming the first difference. */
static int check_shape(const struct vm *vm, const struct section *sec, const char *what,
		       struct err *e)
{
	struct state_in in = state_in__of(sec->p, sec->len);
	uint64_t mem = state_in__u64(&in);
	uint32_t vcpus = state_in__u32(&in), ndev = state_in__u32(&in), i;

	if (in.err)
		return err__set(e, -EINVAL, "%s: malformed machine section", what);
	if (mem != vm->mem.size)
		return err__set(e, -EINVAL, "%s: the guest had %" PRIu64 " MiB of memory, this "
				"VM has %" PRIu64 " MiB (--memory must match)", what, mem >> 20,
				vm->mem.size >> 20);
	if (vcpus != vm->nr_vcpus)
		return err__set(e, -EINVAL, "%s: the guest had %u vCPUs, this VM has %u "
				"(--vcpus must match)", what, vcpus, vm->nr_vcpus);
	for (i = 0; i < ndev; i++) {
		char name[sizeof(vm->devices.v[0].name)] = "";
		uint16_t n = state_in__u16(&in);

		if (n >= sizeof(name)) {
			state_in__fail(&in);
			break;
		}
		state_in__bytes(&in, name, n);
		if (in.err)
			break;
		if (i >= vm->devices.nr || strcmp(name, vm->devices.v[i].name))
			return err__set(e, -EINVAL, "%s: device %u was %s, this VM has %s (the "
					"NICs, disks and --test-device must match)", what, i, name,
					i < vm->devices.nr ? vm->devices.v[i].name : "none");
	}
	if (state_in__end(&in))
		return err__set(e, -EINVAL, "%s: malformed machine section", what);
	if (ndev != vm->devices.nr)
		return err__set(e, -EINVAL, "%s: the guest had %u devices, this VM has %u (the "
				"NICs, disks and --test-device must match)", what, ndev, vm->devices.nr);
	return 0;
}

/* ---- the VM's in-kernel state ---- */

static int save_vm(struct vm *vm, struct state_out *o, struct err *e)
{
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	unsigned i;

	for (i = 0; i < VM_NR_IRQCHIPS; i++) {
		struct kvm_irqchip chip = { .chip_id = i };

		if (ioctl(vm->fd, KVM_GET_IRQCHIP, &chip) < 0)
			return err__set(e, -errno, "KVM_GET_IRQCHIP %u: %s", i, strerror(errno));
		state_out__bytes(o, &chip, sizeof(chip));
	}
	if (ioctl(vm->fd, KVM_GET_PIT2, &pit) < 0)
		return err__set(e, -errno, "KVM_GET_PIT2: %s", strerror(errno));
	state_out__bytes(o, &pit, sizeof(pit));
	/* Guest time as it stood at the pause (vm__pause froze it), else now. */
	if (vm->clock_frozen)
		clock = vm->paused_clock;
	else if (ioctl(vm->fd, KVM_GET_CLOCK, &clock) < 0)
		return err__set(e, -errno, "KVM_GET_CLOCK: %s", strerror(errno));
	state_out__u64(o, clock.clock);
	return 0;
}

static int load_vm(struct vm *vm, const struct section *sec, uint64_t *clock, const char *what,
		   struct err *e)
{
	struct state_in in = state_in__of(sec->p, sec->len);
	struct kvm_irqchip chips[VM_NR_IRQCHIPS];
	struct kvm_pit_state2 pit;
	unsigned i;

	for (i = 0; i < VM_NR_IRQCHIPS; i++)
		state_in__bytes(&in, &chips[i], sizeof(chips[i]));
	state_in__bytes(&in, &pit, sizeof(pit));
	*clock = state_in__u64(&in);
	if (state_in__end(&in))
		return err__set(e, -EINVAL, "%s: malformed vm section (%" PRIu64 " bytes)", what,
				sec->len);
	for (i = 0; i < VM_NR_IRQCHIPS; i++) {
		if (chips[i].chip_id != i)
			return err__set(e, -EINVAL, "%s: irqchip %u has id %u", what, i,
					chips[i].chip_id);
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chips[i]) < 0)
			return err__set(e, -errno, "KVM_SET_IRQCHIP %u: %s", i, strerror(errno));
	}
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0)
		return err__set(e, -errno, "KVM_SET_PIT2: %s", strerror(errno));
	return 0;
}

/* ---- manifest ---- */

static int write_manifest(const struct vm *vm, const char *dir, const struct snapshot_stats *st,
			  uint32_t state_crc)
{
	json_t *devices = json_array(), *m;
	char tmp[4096], path[4096], *text;
	unsigned i;
	int err = 0;

	for (i = 0; devices && i < vm->devices.nr; i++)
		json_array_append_new(devices, json_string(vm->devices.v[i].name));
	m = json_pack("{s:s, s:i, s:s, s:{s:I, s:i, s:o}, s:{s:s, s:I, s:I}, s:{s:s, s:I, s:I, s:I}}",
		      "format", "rtvmm-snapshot", "version", SNAPSHOT_VERSION, "rtvmm", RTVMM_VERSION,
		      "machine", "memory_bytes", (json_int_t)vm->mem.size, "vcpus", (int)vm->nr_vcpus,
		      "devices", devices,
		      "state", "file", STATE_FILE, "bytes", (json_int_t)st->state_bytes,
		      "crc32", (json_int_t)state_crc,
		      "memory", "file", MEMORY_FILE, "bytes", (json_int_t)st->memory_bytes,
		      "bytes_with_data", (json_int_t)st->memory_written, "chunk_bytes",
		      (json_int_t)MEM_CHUNK);
	text = m ? json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(m);
	if (!text)
		return -ENOMEM;
	err = write_file(dir, MANIFEST ".tmp", text, strlen(text));
	free(text);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, MANIFEST);
	snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST);
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	/* The directory too: a snapshot reported written has its manifest after a crash. */
	if (!err) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0 || fsync(dfd) < 0)
			err = -errno;
		if (dfd >= 0)
			close(dfd);
	}
	return err;
}

/* The manifest's format and version: -EINVAL naming what is wrong. */
static int check_manifest(const char *dir, struct err *e)
{
	char path[4096];
	json_error_t je;
	json_t *m, *v;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST);
	m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!m)
		return err__set(e, -EINVAL, "snapshot %s: %s (no manifest: not a complete snapshot)", path,
				je.text);
	v = json_object_get(m, "version");
	if (strcmp(json_string_value(json_object_get(m, "format")) ?: "", "rtvmm-snapshot"))
		err = err__set(e, -EINVAL, "snapshot %s: \"format\" is not \"rtvmm-snapshot\"", path);
	else if (!json_is_integer(v))
		err = err__set(e, -EINVAL, "snapshot %s: no \"version\"", path);
	else if (json_integer_value(v) != SNAPSHOT_VERSION)
		err = err__set(e, -EINVAL, "snapshot %s: format version %lld (written by rtvmm %s); this "
			       "rtvmm (%s) reads version %d", path, (long long)json_integer_value(v),
			       json_string_value(json_object_get(m, "rtvmm")) ?: "?", RTVMM_VERSION,
			       SNAPSHOT_VERSION);
	json_decref(m);
	return err;
}

/* ---- save ---- */

/* Removes what a failed snapshot left in `dir`, and `dir`. */
static void remove_partial(const char *dir)
{
	static const char *const files[] = { MEMORY_FILE, STATE_FILE, MANIFEST ".tmp", MANIFEST };
	char path[4096];
	unsigned i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* Every section but the memory of a paused, frozen VM, after the magic and version. */
static int encode_sections(struct vm *vm, struct state_out *file, struct err *e)
{
	struct state_out sec = { 0 };
	char name[64];
	unsigned i;
	int err;

	state_out__bytes(file, STATE_MAGIC, 8);
	state_out__u32(file, SNAPSHOT_VERSION);
	save_shape(vm, &sec);
	put_section(file, "machine", &sec);
	state_out__free(&sec);
	err = save_vm(vm, &sec, e);
	if (!err)
		put_section(file, "vm", &sec);
	state_out__free(&sec);
	if (err)
		return err;
	for (i = 0; i < vm->nr_vcpus; i++) {
		const char *call = "";

		err = vcpu__save_state(&vm->vcpus[i], &vm->msrs,
				       vm->clock_frozen ? vm->paused_since : 0, &sec, &call);
		if (err) {
			state_out__free(&sec);
			return err__set(e, err, "vcpu%u: %s: %s", i, call, strerror(-err));
		}
		snprintf(name, sizeof(name), "vcpu.%u", i);
		put_section(file, name, &sec);
		state_out__free(&sec);
	}
	for (i = 0; i < vm->devices.nr; i++) {
		const struct device *d = &vm->devices.v[i];

		if (!d->ops->save)
			return err__set(e, -ENOTSUP, "device %s cannot be saved: this rtvmm has no "
					"snapshot support for it", d->name);
		err = d->ops->save(d->dev, &sec);
		if (!err)
			err = sec.err;
		if (err) {
			state_out__free(&sec);
			return err__set(e, err, "device %s: saving its state: %s", d->name,
					strerror(-err));
		}
		snprintf(name, sizeof(name), "dev.%u", i);
		put_section(file, name, &sec);
		state_out__free(&sec);
	}
	return 0;
}

/* The trailing CRC-32 of everything before it. */
static int seal_state(struct state_out *file, struct err *e)
{
	state_out__u32(file, crc(file->buf, file->len));
	return file->err ? err__set(e, file->err, "state: out of memory") : 0;
}

int snapshot__encode(struct vm *vm, struct state_out *out, struct err *e)
{
	int err = encode_sections(vm, out, e);

	return err ? err : seal_state(out, e);
}

/* Writes the snapshot of a paused VM; the devices are frozen around it. */
static int save_paused(struct vm *vm, const char *dir, struct snapshot_stats *st, struct err *e)
{
	struct state_out file = { 0 };
	const struct device *bad = NULL;
	int err, terr;

	if (mkdir(dir, 0700) < 0)
		return err__set(e, -errno, "snapshot %s: %s", dir, errno == EEXIST ?
				"already exists (a snapshot goes into a new directory)" :
				strerror(errno));
	err = device_list__freeze(&vm->devices, &bad);
	if (err) {
		rmdir(dir);
		return err__set(e, err, "device %s: stopping it for the snapshot: %s", bad->name,
				strerror(-err));
	}
	err = encode_sections(vm, &file, e);
	if (!err) {
		struct state_out table = { 0 };

		err = save_memory(&vm->mem, dir, &table, st, e);
		if (!err)
			put_section(&file, "memory", &table);
		state_out__free(&table);
	}
	if (!err)
		err = seal_state(&file, e);
	if (!err) {
		st->state_bytes = file.len;
		err = write_file(dir, STATE_FILE, file.buf, file.len);
		if (err)
			err__set(e, err, "snapshot %s/%s: %s", dir, STATE_FILE, strerror(-err));
	}
	if (!err) {
		err = write_manifest(vm, dir, st, crc(file.buf, file.len));
		if (err)
			err__set(e, err, "snapshot %s/%s: %s", dir, MANIFEST, strerror(-err));
	}
	state_out__free(&file);
	terr = device_list__thaw(&vm->devices, &bad);
	if (terr && !err)
		err = err__set(e, terr, "device %s: starting it again after the snapshot: %s",
			       bad->name, strerror(-terr));
	if (err)
		remove_partial(dir);
	return err;
}

int snapshot__save(struct vm *vm, const char *dir, struct snapshot_stats *st, struct err *e)
{
	uint64_t t0 = clock__mono_ns();
	bool was_running;
	int err;

	memset(st, 0, sizeof(*st));
	st->memory_bytes = vm->mem.size;
	pthread_mutex_lock(&vm->snapshot_lock);
	was_running = vm__state(vm) == VM_STATE_RUNNING;
	if (was_running)
		err = vm__pause(vm);
	else    /* a reboot in place asked while paused resets the machine under way */
		err = vm__state(vm) == VM_STATE_PAUSED &&
		      !__atomic_load_n(&vm->reboot_pending, __ATOMIC_ACQUIRE) ? 0 : -EBUSY;
	if (err) {
		pthread_mutex_unlock(&vm->snapshot_lock);
		return err__set(e, err, "snapshot: the VM %s%s", was_running || vm__state(vm) ==
				VM_STATE_PAUSED ? "cannot be snapshotted now: a pause or a reboot in place "
				"is under way" : "is ", was_running || vm__state(vm) == VM_STATE_PAUSED ?
				"" : vm_state__name(vm__state(vm)));
	}
	err = save_paused(vm, dir, st, e);
	st->paused_ns = clock__mono_ns() - t0;
	if (was_running)
		vm__resume(vm);
	pthread_mutex_unlock(&vm->snapshot_lock);
	return err;
}

/* ---- restore ---- */

static int restore_devices(struct vm *vm, const struct state_file *f, const char *what,
			   struct err *e)
{
	char name[64], why[160];
	unsigned i;
	int err;

	/* Each load leaves its device frozen: vm__run thaws them right before the guest runs. */
	vm->devices_loaded = true;
	for (i = 0; i < vm->devices.nr; i++) {
		const struct device *d = &vm->devices.v[i];
		const struct section *s;
		struct state_in in;

		snprintf(name, sizeof(name), "dev.%u", i);
		s = find_section(f, name);
		if (!s)
			return err__set(e, -EINVAL, "%s: no state for device %s", what, d->name);
		if (!d->ops->load)
			return err__set(e, -ENOTSUP, "device %s cannot be restored: this rtvmm has no "
					"snapshot support for it", d->name);
		in = state_in__of(s->p, s->len);
		why[0] = 0;
		err = d->ops->load(d->dev, &in, why, sizeof(why));
		if (err)
			return err__set(e, err, "%s: device %s: %s", what, d->name,
					why[0] ? why : strerror(-err));
	}
	return 0;
}

static int restore_vcpus(struct vm *vm, const struct state_file *f, const char *what,
			 struct err *e)
{
	char name[64], why[256];
	unsigned i;
	int err;

	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		const struct section *s;
		struct state_in in;

		snprintf(name, sizeof(name), "vcpu.%u", i);
		s = find_section(f, name);
		if (!s)
			return err__set(e, -EINVAL, "%s: no state for vcpu%u", what, i);
		/* What a guest reset goes back to: the boot state, before the snapshot's. */
		if (vm->restart_on_reboot && !v->boot) {
			const char *call = "";

			err = vcpu__save_boot_state(v, &call);
			if (err)
				return err__set(e, err, "vcpu%u: recording its boot state: %s: %s", i,
						call, strerror(-err));
		}
		in = state_in__of(s->p, s->len);
		why[0] = 0;
		err = vcpu__load_state(v, &in, why, sizeof(why));
		if (err)
			return err__set(e, err, "%s: vcpu%u: %s", what, i, why[0] ? why : strerror(-err));
	}
	return 0;
}

/* Everything but guest RAM (in place already) from parsed state: vm, devices, vCPUs, clock. */
static int apply_state(struct vm *vm, const struct state_file *f, const char *what, struct err *e)
{
	struct kvm_clock_data clock = { 0 };
	const struct section *s;
	uint64_t now = 0;
	int err;

	s = find_section(f, "machine");
	err = s ? check_shape(vm, s, what, e) : err__set(e, -EINVAL, "%s: no machine section", what);
	if (err)
		return err;
	s = find_section(f, "vm");
	err = s ? load_vm(vm, s, &now, what, e) : err__set(e, -EINVAL, "%s: no vm section", what);
	/* vCPUs before devices: a guest this host cannot run (CPUID, TSC, MSRs) is refused first. */
	if (!err)
		err = restore_vcpus(vm, f, what, e);
	if (!err)
		err = restore_devices(vm, f, what, e);
	/* Guest time goes on from where the snapshot stopped it. */
	clock.clock = now;
	if (!err && ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
		err = err__set(e, -errno, "KVM_SET_CLOCK: %s", strerror(errno));
	return err;
}

int snapshot__decode(struct vm *vm, const void *bytes, size_t len, const char *what, struct err *e)
{
	struct state_file f = { 0 };
	int err;

	f.bytes = malloc(len ? len : 1);
	if (!f.bytes)
		return err__set(e, -ENOMEM, "%s: out of memory", what);
	memcpy(f.bytes, bytes, len);
	f.len = len;
	err = parse_state(&f, what, e);
	if (!err)
		err = apply_state(vm, &f, what, e);
	free_state_file(&f);
	return err;
}

int snapshot__check_shape(const struct vm *vm, const void *bytes, size_t len, const char *what,
			  struct err *e)
{
	struct section sec = { .p = bytes, .len = len };

	return check_shape(vm, &sec, what, e);
}

void snapshot__shape(const struct vm *vm, struct state_out *out)
{
	save_shape(vm, out);
}

int snapshot__restore(struct vm *vm, const char *dir, struct err *e)
{
	char what[4200];
	const struct section *s;
	struct state_file f;
	int err;

	err = check_manifest(dir, e);
	if (err)
		return err;
	err = load_state_file(dir, &f, e);
	if (err)
		goto out_free;
	snprintf(what, sizeof(what), "snapshot %s", dir);
	s = find_section(&f, "machine");
	err = s ? check_shape(vm, s, what, e) :
		  err__set(e, -EINVAL, "%s: no machine section", what);
	if (err)
		goto out_free;
	s = find_section(&f, "memory");
	err = s ? load_memory(&vm->mem, dir, s, e) :
		  err__set(e, -EINVAL, "%s: no memory section", what);
	if (!err)
		err = apply_state(vm, &f, what, e);
out_free:
	free_state_file(&f);
	return err;
}
