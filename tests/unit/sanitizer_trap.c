/*
 * Misbehaves on purpose, for test_sanitizers.sh: "overflow" adds past INT_MAX
 * (UBSan), "leak" drops the only pointer to a malloc'd block (LeakSanitizer).
 * Either way it then exits 0: only a sanitizer can make it fail.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile kept;

int main(int argc, char **argv)
{
	volatile int big = INT_MAX;

	if (argc == 2 && !strcmp(argv[1], "overflow")) {
		printf("%d\n", big + argc);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "leak")) {
		kept = malloc(64);
		kept = NULL;
		return 0;
	}
	fprintf(stderr, "usage: %s overflow|leak\n", argv[0]);
	return 2;
}
