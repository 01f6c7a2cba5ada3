#include "base/cpus.h"

#include <errno.h>
#include <stdio.h>

/* One decimal cpu number: digits only, below CPU_SETSIZE. */
static int parse_cpu(const char **s, unsigned *cpu)
{
	unsigned long v = 0;
	const char *q = *s;

	if (*q < '0' || *q > '9')
		return -EINVAL;
	while (*q >= '0' && *q <= '9') {
		v = v * 10 + (unsigned long)(*q - '0');
		if (v >= CPU_SETSIZE) {
			while (*q >= '0' && *q <= '9')
				q++;
			*s = q;
			return -ERANGE;
		}
		q++;
	}
	*s = q;
	*cpu = (unsigned)v;
	return 0;
}

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/*
 * The kernel's cpu list syntax (cpuset.cpus, isolcpus=, taskset -c):
 * comma-separated cpus and ranges "a-b"; blanks around items are allowed.
 * Syntax errors win over range errors so "99999,x" says -EINVAL.
 */
int cpus__parse(const char *s, cpu_set_t *set)
{
	cpu_set_t tmp;
	int range_err = 0;
	unsigned lo, hi, c;
	int rc;

	if (!s || !set)
		return -EINVAL;
	CPU_ZERO(&tmp);
	s = skip_blanks(s);
	if (!*s) {
		*set = tmp;
		return 0;
	}
	for (;;) {
		s = skip_blanks(s);
		rc = parse_cpu(&s, &lo);
		if (rc == -EINVAL)
			return rc;
		if (rc)
			range_err = rc;
		hi = lo;
		if (*s == '-') {
			s++;
			rc = parse_cpu(&s, &hi);
			if (rc == -EINVAL)
				return rc;
			if (rc)
				range_err = rc;
			else if (!range_err && hi < lo)
				return -EINVAL;
		}
		if (!range_err)
			for (c = lo; c <= hi; c++)
				CPU_SET(c, &tmp);
		s = skip_blanks(s);
		if (!*s)
			break;
		if (*s != ',')
			return -EINVAL;
		s++;
	}
	if (range_err)
		return range_err;
	*set = tmp;
	return 0;
}

const char *cpus__format(const cpu_set_t *set, char *buf, unsigned len)
{
	size_t used = 0;
	unsigned c, end;
	int n;

	if (!buf || !len)
		return buf;
	buf[0] = '\0';
	if (!set)
		return buf;
	for (c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		end = c;
		while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, set))
			end++;
		if (end == c)
			n = snprintf(buf + used, len - used, "%s%u", used ? "," : "", c);
		else
			n = snprintf(buf + used, len - used, "%s%u-%u", used ? "," : "", c, end);
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0';   /* no half-written item */
			break;
		}
		used += (size_t)n;
		c = end;
	}
	return buf;
}
