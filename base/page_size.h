/* The page sizes guest RAM and the dataplane can be backed by: 4 KiB, 2 MiB and 1 GiB. */
#ifndef RTVMM_BASE_PAGE_SIZE_H
#define RTVMM_BASE_PAGE_SIZE_H

#include <stdint.h>

enum page_size {
	PAGE_4K = 0,
	PAGE_2M,
	PAGE_1G,
};

#define PAGE_SIZES 3               /* entries of enum page_size, for arrays indexed by it */

/* "4K", "2M", "1G". */
const char *page_size__name(enum page_size s);

/* Bytes of one page. */
uint64_t page_size__bytes(enum page_size s);

#endif
