#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"

static void test_guest_mem_layout_splits_around_pci_hole(void **state)
{
	struct guest_mem mem;

	(void)state;
	guest_mem__layout(&mem, 256ULL << 20);
	assert_int_equal(mem.nr_regions, 1);
	assert_int_equal(mem.regions[0].size, 256ULL << 20);
	guest_mem__layout(&mem, 4ULL << 30);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, GUEST_PCI_HOLE_START);
	assert_int_equal(mem.regions[1].gpa, GUEST_PCI_HOLE_END);
	assert_int_equal(mem.regions[1].size, (4ULL << 30) - GUEST_PCI_HOLE_START);
	assert_int_equal(mem.regions[1].fd_offset, GUEST_PCI_HOLE_START);
}

static void test_guest_mem_ptr_rejects_ranges_outside_ram(void **state)
{
	struct guest_mem mem;

	(void)state;
	assert_int_equal(guest_mem__create(&mem, 16ULL << 20), 0);
	assert_non_null(guest_mem__ptr(&mem, 0, 16ULL << 20));
	assert_null(guest_mem__ptr(&mem, (16ULL << 20) - 8, 16));
	assert_null(guest_mem__ptr(&mem, UINT64_MAX - 4, 8));
	assert_null(guest_mem__ptr(&mem, 4, UINT64_MAX));
	assert_int_equal(guest_mem__write(&mem, 16ULL << 20, "x", 1), -EFAULT);
	guest_mem__destroy(&mem);
}

static void test_guest_mem_memfd_is_shared_and_sealed_against_resizing(void **state)
{
	struct guest_mem mem;
	uint8_t byte = 0;
	int seals;

	(void)state;
	assert_int_equal(guest_mem__create(&mem, 8ULL << 20), 0);
	seals = fcntl(mem.fd, F_GET_SEALS);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	/* A backend mapping the fd can never see it shrink under it. */
	assert_int_equal(ftruncate(mem.fd, 4ULL << 20), -1);
	assert_int_equal(errno, EPERM);
	/* MAP_SHARED: what the guest writes is in the fd a backend maps. */
	mem.base[4096] = 0x5a;
	assert_int_equal(pread(mem.fd, &byte, 1, 4096), 1);
	assert_int_equal(byte, 0x5a);
	guest_mem__destroy(&mem);
}

/* ---- the dirty log ---- */

#define LOW   GUEST_PCI_HOLE_START            /* RAM below the hole */
#define HIGH  (8ull << 20)                    /* and from 4 GiB */
#define PAGE  4096ull

/* How many pages a harvest set (`bits` by memfd offset, RAM of `size` bytes). */
static unsigned count_pages(const uint64_t *bits, uint64_t size)
{
	uint64_t w;
	unsigned n = 0;

	for (w = 0; w < (size / PAGE + 63) / 64; w++)
		n += (unsigned)__builtin_popcountll(bits[w]);
	return n;
}

static bool has_page(const uint64_t *bits, uint64_t memfd_off)
{
	uint64_t p = memfd_off / PAGE;

	return bits[p / 64] >> (p % 64) & 1;
}

static uint64_t *harvest(const struct guest_mem *mem)
{
	uint64_t *bits = calloc((mem->size / PAGE + 63) / 64, 8);

	assert_non_null(bits);
	guest_mem__log_take(mem, bits);
	return bits;
}

static void test_guest_mem_log_is_a_sealed_memfd_covering_ram_to_its_highest_gpa(void **state)
{
	struct guest_mem mem;
	struct stat st;
	uint8_t *peer;

	(void)state;
	/* Sparse: 3 GiB low and 8 MiB from 4 GiB cost nothing until touched. */
	assert_int_equal(guest_mem__create(&mem, LOW + HIGH), 0);
	assert_null(mem.log);
	assert_int_equal(mem.log_fd, -1);
	/* A bit per page from 0 to 4 GiB + 8 MiB, hole included, in whole pages of log. */
	assert_int_equal(guest_mem__log_bytes(&mem),
			 ((GUEST_PCI_HOLE_END + HIGH) / PAGE / 8 + 4095) / 4096 * 4096);
	assert_int_equal(guest_mem__log_start(&mem), 0);
	assert_non_null(mem.log);
	assert_int_equal(mem.log_size, guest_mem__log_bytes(&mem));
	assert_int_equal(guest_mem__log_start(&mem), -EBUSY);
	assert_int_equal(fstat(mem.log_fd, &st), 0);
	assert_int_equal(st.st_size, mem.log_size);
	/* A backend can neither shrink nor grow it under our mapping. */
	assert_true(fcntl(mem.log_fd, F_GET_SEALS) & F_SEAL_SHRINK);
	assert_int_equal(ftruncate(mem.log_fd, 4096), -1);
	/* Its mapping of the fd is ours: a bit it sets is one we read. */
	peer = mmap(NULL, mem.log_size, PROT_READ | PROT_WRITE, MAP_SHARED, mem.log_fd, 0);
	assert_true(peer != MAP_FAILED);
	peer[5] |= 1u << 3;                           /* page 43 (as vhost-user's spec marks one) */
	assert_true(mem.log[0] >> 43 & 1);
	munmap(peer, mem.log_size);
	guest_mem__log_stop(&mem);
	assert_null(mem.log);
	assert_int_equal(mem.log_fd, -1);
	guest_mem__log_stop(&mem);                    /* off already: nothing */
	guest_mem__destroy(&mem);
}

static void test_guest_mem_log_harvest_names_ram_pages_by_memfd_offset(void **state)
{
	struct guest_mem mem;
	uint64_t *bits;
	uint8_t *peer;

	(void)state;
	assert_int_equal(guest_mem__create(&mem, LOW + HIGH), 0);
	/* Off: a write marks nothing, and the harvest finds nothing. */
	guest_mem__log_write(&mem, 0x5000, 1);
	bits = harvest(&mem);
	assert_int_equal(count_pages(bits, mem.size), 0);
	free(bits);
	assert_int_equal(guest_mem__log_start(&mem), 0);
	/* Every page a write touches: 2 bytes across a page boundary are two pages. */
	guest_mem__log_write(&mem, 0x7fff, 2);
	/* Through a host pointer: the high region's third page. */
	guest_mem__log_host(&mem, guest_mem__ptr(&mem, GUEST_PCI_HOLE_END + 2 * PAGE, 16), 16);
	/* From the last low page across the hole into the high region: only RAM is marked. */
	guest_mem__log_write(&mem, LOW - PAGE, GUEST_PCI_HOLE_END - LOW + PAGE + 1);
	/* A backend's bit in the hole names no page of RAM. */
	peer = mmap(NULL, mem.log_size, PROT_READ | PROT_WRITE, MAP_SHARED, mem.log_fd, 0);
	assert_true(peer != MAP_FAILED);
	peer[(LOW + 64 * PAGE) / PAGE / 8] |= 1;
	munmap(peer, mem.log_size);
	bits = harvest(&mem);
	assert_int_equal(count_pages(bits, mem.size), 5);
	assert_true(has_page(bits, 0x7000) && has_page(bits, 0x8000));
	/* gpa 4 GiB + 8 KiB is memfd offset 3 GiB + 8 KiB. */
	assert_true(has_page(bits, LOW + 2 * PAGE));
	assert_true(has_page(bits, LOW - PAGE) && has_page(bits, LOW));
	free(bits);
	/* Taken: the log is clear until the next write. */
	bits = harvest(&mem);
	assert_int_equal(count_pages(bits, mem.size), 0);
	free(bits);
	/* A whole 256 KiB run: 64 pages, whole words at once. */
	guest_mem__log_write(&mem, 0x40000, 64 * PAGE);
	bits = harvest(&mem);
	assert_int_equal(count_pages(bits, mem.size), 64);
	assert_true(bits[0x40000 / PAGE / 64] == ~0ull);
	free(bits);
	/* Stopped: nothing marks, nothing is harvested. */
	guest_mem__log_stop(&mem);
	guest_mem__log_write(&mem, 0x5000, 1);
	bits = harvest(&mem);
	assert_int_equal(count_pages(bits, mem.size), 0);
	free(bits);
	guest_mem__destroy(&mem);
}

struct marker {
	struct guest_mem *mem;
	bool stop;
	uint64_t marks;
};

static void *mark_loop(void *arg)
{
	struct marker *m = arg;

	while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
		guest_mem__log_write(m->mem, (m->marks * PAGE) % m->mem->size, 3 * PAGE);
		m->marks++;
	}
	return NULL;
}

static void test_guest_mem_log_stops_safely_under_concurrent_writers(void **state)
{
	struct guest_mem mem;
	struct marker m[2] = { { .mem = &mem }, { .mem = &mem } };
	pthread_t t[2];
	unsigned i;

	(void)state;
	assert_int_equal(guest_mem__create(&mem, 64ull << 20), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, mark_loop, &m[i]), 0);
	/* Each stop unmaps a log the writers were marking: none may touch it after. */
	for (i = 0; i < 200; i++) {
		uint64_t *bits;

		assert_int_equal(guest_mem__log_start(&mem), 0);
		usleep(100);
		bits = harvest(&mem);
		free(bits);
		guest_mem__log_stop(&mem);
	}
	for (i = 0; i < 2; i++) {
		__atomic_store_n(&m[i].stop, true, __ATOMIC_RELAXED);
		pthread_join(t[i], NULL);
	}
	assert_int_equal(mem.log_users, 0);
	guest_mem__destroy(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_mem_layout_splits_around_pci_hole),
		cmocka_unit_test(test_guest_mem_ptr_rejects_ranges_outside_ram),
		cmocka_unit_test(test_guest_mem_memfd_is_shared_and_sealed_against_resizing),
		cmocka_unit_test(test_guest_mem_log_is_a_sealed_memfd_covering_ram_to_its_highest_gpa),
		cmocka_unit_test(test_guest_mem_log_harvest_names_ram_pages_by_memfd_offset),
		cmocka_unit_test(test_guest_mem_log_stops_safely_under_concurrent_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
