#include "dataplane/log.h"

#include <stdarg.h>
#include <stdio.h>

void dp_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf(DP_PROG ": %s\n", line);
	fflush(stdout);
}
