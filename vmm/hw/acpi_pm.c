/* ACPI PM1a event/control blocks and reset register: the power button, poweroff and reboot. */
#include "vmm/hw/acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "vmm/x86/layout.h"

#define PM1_EN_MASK   0x4721 /* TMR, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE_DIS */
/* Status bits that raise the SCI when enabled: the only event this machine has. */
#define PM1_SCI_EVENTS ACPI_PM1_PWRBTN
#define PM1_CNT_BM_RLD 0x0002
#define PM1_CNT_KEEP  (PM1_CNT_BM_RLD | ACPI_PM1_CNT_SLP_TYP) /* GBL_RLS, SLP_EN read 0 */

struct acpi_pm {
	pthread_mutex_t lock;
	struct vm_ctl ctl;
	struct irq_sink sci;
	uint16_t sts;
	uint16_t en;
	uint16_t cnt;
	bool sci_level;            /* what the SCI line was last driven to */
	uint64_t presses;          /* power button presses (relaxed atomic: read by reporters) */
};

/* The SCI's level: an event both pending and enabled. */
static bool acpi_pm_sci_wanted(const struct acpi_pm *pm)
{
	return (pm->sts & pm->en & PM1_SCI_EVENTS) != 0;
}

/* Drives the SCI to (status & enable) of an event; called with pm->lock held. */
static void acpi_pm_update_sci(struct acpi_pm *pm)
{
	bool level = acpi_pm_sci_wanted(pm);

	if (level == pm->sci_level)
		return;
	pm->sci_level = level;
	irq_sink__set(&pm->sci, level);
}

/* Bytes [off, off+len) of a little-endian register file `v`. */
static void acpi_pm_get(uint32_t v, uint64_t off, void *data, uint32_t len)
{
	uint8_t *p = data;
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = v >> (8 * (off + i));
}

/* `v` with bytes [off, off+len) replaced by `data`. */
static uint32_t acpi_pm_put(uint32_t v, uint64_t off, const void *data, uint32_t len)
{
	const uint8_t *p = data;
	uint32_t i;

	for (i = 0; i < len; i++) {
		unsigned shift = 8 * (off + i);

		v = (v & ~(0xffu << shift)) | (uint32_t)p[i] << shift;
	}
	return v;
}

static void acpi_pm_evt_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct acpi_pm *pm = dev;
	uint32_t v;

	pthread_mutex_lock(&pm->lock);
	v = pm->sts | (uint32_t)pm->en << 16;
	pthread_mutex_unlock(&pm->lock);
	acpi_pm_get(v, off, data, len);
}

static void acpi_pm_evt_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct acpi_pm *pm = dev;
	uint32_t v, mask;

	/* The bytes written, and which of them the access covers. */
	v = acpi_pm_put(0, off, data, len);
	mask = acpi_pm_put(0, off, (const uint8_t[4]){ 0xff, 0xff, 0xff, 0xff }, len);
	pthread_mutex_lock(&pm->lock);
	pm->sts &= ~(uint16_t)v; /* write 1 to clear */
	pm->en = ((pm->en & ~(mask >> 16)) | (v >> 16)) & PM1_EN_MASK;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static void acpi_pm_cnt_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct acpi_pm *pm = dev;
	uint32_t v;

	pthread_mutex_lock(&pm->lock);
	v = pm->cnt | ACPI_PM1_CNT_SCI_EN;
	pthread_mutex_unlock(&pm->lock);
	acpi_pm_get(v, off, data, len);
}

static void acpi_pm_cnt_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct acpi_pm *pm = dev;
	bool poweroff;
	uint16_t v;

	pthread_mutex_lock(&pm->lock);
	v = acpi_pm_put(pm->cnt, off, data, len);
	pm->cnt = v & PM1_CNT_KEEP;
	pthread_mutex_unlock(&pm->lock);

	/* S1-S4 are not offered by the DSDT; a request for them is ignored. */
	poweroff = (v & ACPI_PM1_CNT_SLP_EN) &&
		   (v & ACPI_PM1_CNT_SLP_TYP) >> ACPI_PM1_CNT_SLP_TYP_SHIFT == ACPI_PM_S5_SLP_TYP;
	if (poweroff)
		vm_ctl__stop(&pm->ctl, VM_STOP_POWEROFF, 0);
}

static void acpi_pm_reset_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	(void)dev;
	acpi_pm_get(0, off, data, len);
}

static void acpi_pm_reset_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct acpi_pm *pm = dev;

	(void)off;
	(void)len;
	if (*(const uint8_t *)data == ACPI_RESET_VALUE)
		vm_ctl__stop(&pm->ctl, VM_STOP_REBOOT, 0);
}

static const struct io_ops acpi_pm_evt_ops = {
	.read = acpi_pm_evt_read,
	.write = acpi_pm_evt_write,
};

static const struct io_ops acpi_pm_cnt_ops = {
	.read = acpi_pm_cnt_read,
	.write = acpi_pm_cnt_write,
};

static const struct io_ops acpi_pm_reset_ops = {
	.read = acpi_pm_reset_read,
	.write = acpi_pm_reset_write,
};

static bool acpi_pm_range_taken(const struct bus *pio, uint64_t base, uint64_t len)
{
	uint64_t a;

	for (a = base; a < base + len; a++)
		if (bus__find(pio, a))
			return true;
	return false;
}

int acpi_pm__add(struct bus *pio, const struct vm_ctl *ctl, const struct irq_sink *sci,
		 struct acpi_pm **out)
{
	struct acpi_pm *pm;
	int err;

	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	err = -pthread_mutex_init(&pm->lock, NULL);
	if (err)
		goto err_free;
	pm->ctl = *ctl;
	pm->sci = *sci;

	/*
	 * The bus has no unregister: check every block before claiming any. Should
	 * a later claim still fail (-ENOMEM), the device stays allocated for the
	 * earlier ones rather than leave them dangling.
	 */
	if (acpi_pm_range_taken(pio, PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_LEN) ||
	    acpi_pm_range_taken(pio, PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_LEN) ||
	    acpi_pm_range_taken(pio, PORT_ACPI_RESET, ACPI_RESET_LEN)) {
		err = -EEXIST;
		goto err_destroy_lock;
	}
	err = bus__register(pio, PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_LEN, &acpi_pm_evt_ops, pm,
			    "acpi-pm1a-evt");
	if (err)
		goto err_destroy_lock;
	err = bus__register(pio, PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_LEN, &acpi_pm_cnt_ops, pm,
			    "acpi-pm1a-cnt");
	if (err)
		return err;
	err = bus__register(pio, PORT_ACPI_RESET, ACPI_RESET_LEN, &acpi_pm_reset_ops, pm,
			    "acpi-reset");
	if (err)
		return err;
	*out = pm;
	return 0;

err_destroy_lock:
	pthread_mutex_destroy(&pm->lock);
err_free:
	free(pm);
	return err;
}

void acpi_pm__press_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts |= ACPI_PM1_PWRBTN;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	__atomic_fetch_add(&pm->presses, 1, __ATOMIC_RELAXED);
}

void acpi_pm__destroy(struct acpi_pm *pm)
{
	if (!pm)
		return;
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

/* As at power-on: no event, none enabled, the SCI low. */
static void acpi_pm_device_reset(void *dev)
{
	struct acpi_pm *pm = dev;

	pthread_mutex_lock(&pm->lock);
	pm->sts = 0;
	pm->en = 0;
	pm->cnt = 0;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static void acpi_pm_device_destroy(void *dev)
{
	acpi_pm__destroy(dev);
}

static void acpi_pm_counters(void *dev, const struct counter_sink *sink)
{
	struct acpi_pm *pm = dev;

	sink->num(sink->opaque, "power_button_presses", __atomic_load_n(&pm->presses, __ATOMIC_RELAXED));
}

#define ACPI_PM_STATE_VERSION 1

/*
 * Version 1: PM1_STS, PM1_EN and PM1_CNT (u16 each; CNT without SCI_EN and
 * SLP_EN, which read fixed). The SCI level follows from STS & EN; there are
 * no GPE blocks; the reset register holds nothing.
 */
static int acpi_pm_device_save(void *dev, struct state_out *out)
{
	struct acpi_pm *pm = dev;

	pthread_mutex_lock(&pm->lock);
	state_out__u32(out, ACPI_PM_STATE_VERSION);
	state_out__u16(out, pm->sts);
	state_out__u16(out, pm->en);
	state_out__u16(out, pm->cnt);
	pthread_mutex_unlock(&pm->lock);
	return out->err;
}

/* Takes a version 1 state (see acpi_pm_device_save) and drives the SCI to match it. */
static int acpi_pm_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct acpi_pm *pm = dev;
	uint16_t sts, en, cnt;
	uint32_t version;

	version = state_in__u32(in);
	if (in->err) {
		snprintf(why, why_len, "state truncated: %zu bytes", in->len);
		return -EINVAL;
	}
	if (version != ACPI_PM_STATE_VERSION) {
		snprintf(why, why_len, "state version %u, expected %u", version, ACPI_PM_STATE_VERSION);
		return -EINVAL;
	}
	sts = state_in__u16(in);
	en = state_in__u16(in);
	cnt = state_in__u16(in);
	if (state_in__end(in)) {
		snprintf(why, why_len, "state %s: %zu bytes", in->err ? "truncated" : "too long", in->len);
		return -EINVAL;
	}
	if (sts & ~PM1_SCI_EVENTS) {
		snprintf(why, why_len, "PM1_STS 0x%04x: events this machine does not have", sts);
		return -EINVAL;
	}
	if (en & ~PM1_EN_MASK) {
		snprintf(why, why_len, "PM1_EN 0x%04x: reserved bits set", en);
		return -EINVAL;
	}
	if (cnt & ~PM1_CNT_KEEP) {
		snprintf(why, why_len, "PM1_CNT 0x%04x: bits the register does not keep", cnt);
		return -EINVAL;
	}

	pthread_mutex_lock(&pm->lock);
	pm->sts = sts;
	pm->en = en;
	pm->cnt = cnt;
	pm->sci_level = acpi_pm_sci_wanted(pm);
	irq_sink__set(&pm->sci, pm->sci_level); /* whatever the line was at */
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

const struct device_ops acpi_pm__device_ops = {
	.reset = acpi_pm_device_reset,
	.destroy = acpi_pm_device_destroy,
	.counters = acpi_pm_counters,
	.save = acpi_pm_device_save,
	.load = acpi_pm_device_load,
};
