#include "base/page_size.h"

const char *page_size__name(enum page_size s)
{
	switch (s) {
	case PAGE_4K:
		return "4K";
	case PAGE_2M:
		return "2M";
	case PAGE_1G:
		return "1G";
	}
	return "?";
}

uint64_t page_size__bytes(enum page_size s)
{
	switch (s) {
	case PAGE_4K:
		return 4096;
	case PAGE_2M:
		return 2ULL << 20;
	case PAGE_1G:
		return 1ULL << 30;
	}
	return 0;
}
