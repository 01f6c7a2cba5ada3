/*
 * What every libFuzzer target in fuzz/ shares: a reader that takes typed values off the front of
 * the fuzz input (zeros once it runs dry, so every input is a valid program), a file holding
 * bytes for the loaders that only take a path, and the check that a target broke a rule of its
 * own (abort: libFuzzer reports it as a crash and saves the input).
 */
#ifndef RTVMM_FUZZ_FUZZ_H
#define RTVMM_FUZZ_FUZZ_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* libFuzzer's entry points, which each target defines. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint64_t fuzz_in__take(struct fuzz_in *in, unsigned bytes)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)in->p[0] << (8 * i);
	return v;
}

static inline uint8_t fuzz_in__u8(struct fuzz_in *in)
{
	return (uint8_t)fuzz_in__take(in, 1);
}

static inline uint16_t fuzz_in__u16(struct fuzz_in *in)
{
	return (uint16_t)fuzz_in__take(in, 2);
}

static inline uint32_t fuzz_in__u32(struct fuzz_in *in)
{
	return (uint32_t)fuzz_in__take(in, 4);
}

static inline uint64_t fuzz_in__u64(struct fuzz_in *in)
{
	return fuzz_in__take(in, 8);
}

/* Up to `max` bytes off the front; *len receives how many. */
static inline const uint8_t *fuzz_in__bytes(struct fuzz_in *in, size_t max, size_t *len)
{
	const uint8_t *p = in->p;

	*len = in->n < max ? in->n : max;
	in->p += *len;
	in->n -= *len;
	return p;
}

/* A target's own invariant: on failure, say which and abort (libFuzzer keeps the input). */
#define FUZZ_CHECK(cond, ...)                                                          \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "fuzz check failed: %s: ", #cond);             \
			fprintf(stderr, __VA_ARGS__);                                  \
			fprintf(stderr, "\n");                                         \
			abort();                                                       \
		}                                                                      \
	} while (0)

/* Open file descriptors of the process: a target compares them before and after an input. */
static inline unsigned fuzz_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	FUZZ_CHECK(d, "cannot list /proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/*
 * A memfd holding `data`, reachable by path for loaders that open files: fills `path` with
 * "/proc/self/fd/N" and returns the fd (close it after), or -1.
 */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t path_size)
{
	int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -1;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);

		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	snprintf(path, path_size, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
