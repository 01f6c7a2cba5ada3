/* i8042 PS/2 controller without devices: reset line, command byte, self-tests, loopback. */
#include "vmm/hw/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/x86/layout.h"

/* Status register (read 0x64). */
#define STR_OBF      0x01 /* output buffer full */
#define STR_SYS      0x04 /* system flag, from the command byte */
#define STR_CMD      0x08 /* last write was to the command port */
#define STR_UNLOCKED 0x10 /* keyboard not inhibited */
#define STR_AUXDATA  0x20 /* output byte comes from the aux port */
#define STR_TIMEOUT  0x40 /* the device did not answer */

/* Command byte (controller RAM byte 0). */
#define CTR_KBDINT   0x01
#define CTR_AUXINT   0x02
#define CTR_SYS      0x04
#define CTR_KBDDIS   0x10
#define CTR_AUXDIS   0x20
#define CTR_XLATE    0x40
#define CTR_DEFAULT  (CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE) /* as firmware leaves it */

/* Output port (0xD0/0xD1). */
#define OUTP_RESET   0x01 /* CPU reset line, active low */
#define OUTP_A20     0x02
#define OUTP_KBD_OBF 0x10
#define OUTP_AUX_OBF 0x20

/* Controller commands (write 0x64). */
#define CMD_READ_RAM    0x20 /* 0x20-0x3f: read RAM byte n (0: command byte) */
#define CMD_WRITE_RAM   0x60 /* 0x60-0x7f: write RAM byte n */
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE  0xa8
#define CMD_AUX_TEST    0xa9
#define CMD_SELF_TEST   0xaa
#define CMD_KBD_TEST    0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE  0xae
#define CMD_READ_OUTP   0xd0
#define CMD_WRITE_OUTP  0xd1
#define CMD_WRITE_KBD_OBUF 0xd2
#define CMD_WRITE_AUX_OBUF 0xd3
#define CMD_WRITE_AUX   0xd4
#define CMD_PULSE       0xf0 /* 0xf0-0xff: pulse output port bits 3:0 that are 0 */

#define RET_SELF_TEST_OK 0x55
#define RET_IF_TEST_OK   0x00
#define RET_NO_DEVICE    0xfe

#define I8042_RAM_SIZE 32

struct i8042 {
	pthread_mutex_t lock;
	struct vm_ctl ctl;
	struct irq_sink kbd_irq, aux_irq;
	bool has_kbd_irq, has_aux_irq;
	int kbd_level, aux_level;

	uint8_t ram[I8042_RAM_SIZE]; /* ram[0] is the command byte */
	uint8_t status;              /* STR_CMD, STR_AUXDATA, STR_TIMEOUT; OBF below */
	bool obf;
	uint8_t obuf;
	uint8_t pending;             /* command waiting for its data byte, 0 if none */
	bool reset_requested;        /* acted on after the lock is dropped */
};

static void i8042_output(struct i8042 *k, uint8_t v, bool aux, bool timeout)
{
	k->obuf = v;
	k->obf = true;
	k->status &= ~(STR_AUXDATA | STR_TIMEOUT);
	if (aux)
		k->status |= STR_AUXDATA;
	if (timeout)
		k->status |= STR_TIMEOUT;
}

/* Drives each line to match the state; calls a sink only on a change (a level of -1: always). */
static void i8042_update_irq(struct i8042 *k)
{
	bool aux = k->status & STR_AUXDATA;
	int kbd_level = k->obf && !aux && (k->ram[0] & CTR_KBDINT);
	int aux_level = k->obf && aux && (k->ram[0] & CTR_AUXINT);

	if (kbd_level != k->kbd_level) {
		k->kbd_level = kbd_level;
		if (k->has_kbd_irq)
			irq_sink__set(&k->kbd_irq, kbd_level);
	}
	if (aux_level != k->aux_level) {
		k->aux_level = aux_level;
		if (k->has_aux_irq)
			irq_sink__set(&k->aux_irq, aux_level);
	}
}

static uint8_t i8042_outport(const struct i8042 *k)
{
	uint8_t v = OUTP_RESET | OUTP_A20;

	if (k->obf)
		v |= k->status & STR_AUXDATA ? OUTP_AUX_OBF : OUTP_KBD_OBF;
	return v;
}

static void i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + I8042_RAM_SIZE) {
		i8042_output(k, k->ram[cmd - CMD_READ_RAM], false, false);
		return;
	}
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + I8042_RAM_SIZE) {
		k->pending = cmd;
		return;
	}
	if (cmd >= CMD_PULSE) {
		if (!(cmd & OUTP_RESET))
			k->reset_requested = true;
		return;
	}
	switch (cmd) {
	case CMD_AUX_DISABLE:
		k->ram[0] |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ram[0] &= ~CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
	case CMD_KBD_TEST:
		i8042_output(k, RET_IF_TEST_OK, false, false);
		break;
	case CMD_SELF_TEST:
		k->ram[0] |= CTR_SYS;
		i8042_output(k, RET_SELF_TEST_OK, false, false);
		break;
	case CMD_KBD_DISABLE:
		k->ram[0] |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ram[0] &= ~CTR_KBDDIS;
		break;
	case CMD_READ_OUTP:
		i8042_output(k, i8042_outport(k), false, false);
		break;
	case CMD_WRITE_OUTP:
	case CMD_WRITE_KBD_OBUF:
	case CMD_WRITE_AUX_OBUF:
	case CMD_WRITE_AUX:
		k->pending = cmd;
		break;
	}
	/* Other commands: ignored, no answer. */
}

static void i8042_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->pending = 0;
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + I8042_RAM_SIZE) {
		k->ram[cmd - CMD_WRITE_RAM] = v;
		return;
	}
	switch (cmd) {
	case CMD_WRITE_OUTP:
		if (!(v & OUTP_RESET))
			k->reset_requested = true;
		return; /* A20 is always on */
	case CMD_WRITE_KBD_OBUF:
		i8042_output(k, v, false, false);
		return;
	case CMD_WRITE_AUX_OBUF:
		i8042_output(k, v, true, false);
		return;
	case CMD_WRITE_AUX:
		i8042_output(k, RET_NO_DEVICE, true, true);
		return;
	}
	/* A byte for the keyboard: nobody is there. */
	i8042_output(k, RET_NO_DEVICE, false, true);
}

/* Decides under the lock, acts after it: the VM's stop path may wait for vCPUs. */
static void i8042_unlock(struct i8042 *k)
{
	bool reset = k->reset_requested;

	k->reset_requested = false;
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		vm_ctl__stop(&k->ctl, VM_STOP_REBOOT, 0);
}

static void i8042_data_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct i8042 *k = dev;

	(void)off;
	memset(data, 0xff, len);
	pthread_mutex_lock(&k->lock);
	*(uint8_t *)data = k->obuf; /* an empty buffer rereads the last byte */
	k->obf = false;
	k->status &= ~(STR_AUXDATA | STR_TIMEOUT);
	i8042_unlock(k);
}

static void i8042_data_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct i8042 *k = dev;

	(void)off;
	(void)len;
	pthread_mutex_lock(&k->lock);
	k->status &= ~STR_CMD;
	i8042_data(k, *(const uint8_t *)data);
	i8042_unlock(k);
}

static void i8042_status_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct i8042 *k = dev;
	uint8_t v;

	(void)off;
	memset(data, 0xff, len);
	pthread_mutex_lock(&k->lock);
	v = k->status | STR_UNLOCKED | (k->ram[0] & CTR_SYS ? STR_SYS : 0);
	if (k->obf)
		v |= STR_OBF;
	pthread_mutex_unlock(&k->lock);
	*(uint8_t *)data = v;
}

static void i8042_command_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct i8042 *k = dev;

	(void)off;
	(void)len;
	pthread_mutex_lock(&k->lock);
	k->status |= STR_CMD;
	i8042_command(k, *(const uint8_t *)data);
	i8042_unlock(k);
}

static const struct io_ops i8042_data_ops = {
	.read = i8042_data_read,
	.write = i8042_data_write,
};

static const struct io_ops i8042_cmd_ops = {
	.read = i8042_status_read,
	.write = i8042_command_write,
};

int i8042__add(struct bus *pio, const struct vm_ctl *ctl, struct i8042 **out)
{
	struct i8042 *k;
	int err;

	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	err = -pthread_mutex_init(&k->lock, NULL);
	if (err)
		goto err_free;
	k->ctl = *ctl;
	k->ram[0] = CTR_DEFAULT;

	/*
	 * Two single ports: 0x61-0x63 (port B, PIT/speaker) belong to others.
	 * The bus has no unregister, so check both before claiming either; should
	 * the second claim still fail (-ENOMEM), the device stays allocated for
	 * the first one rather than leave it dangling.
	 */
	if (bus__find(pio, PORT_I8042_DATA) || bus__find(pio, PORT_I8042_CMD)) {
		err = -EEXIST;
		goto err_destroy_lock;
	}
	err = bus__register(pio, PORT_I8042_DATA, 1, &i8042_data_ops, k, "i8042-data");
	if (err)
		goto err_destroy_lock;
	err = bus__register(pio, PORT_I8042_CMD, 1, &i8042_cmd_ops, k, "i8042-cmd");
	if (err)
		return err;
	*out = k;
	return 0;

err_destroy_lock:
	pthread_mutex_destroy(&k->lock);
err_free:
	free(k);
	return err;
}

void i8042__set_irqs(struct i8042 *k, const struct irq_sink *kbd_irq, const struct irq_sink *aux_irq)
{
	pthread_mutex_lock(&k->lock);
	k->has_kbd_irq = kbd_irq;
	if (kbd_irq)
		k->kbd_irq = *kbd_irq;
	k->has_aux_irq = aux_irq;
	if (aux_irq)
		k->aux_irq = *aux_irq;
	k->kbd_level = k->aux_level = 0;
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

void i8042__destroy(struct i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* As at power-on: the firmware's command byte, empty buffers, lines low. */
static void i8042_device_reset(void *dev)
{
	struct i8042 *k = dev;

	pthread_mutex_lock(&k->lock);
	memset(k->ram, 0, sizeof(k->ram));
	k->ram[0] = CTR_DEFAULT;
	k->status = 0;
	k->obf = false;
	k->obuf = 0;
	k->pending = 0;
	k->reset_requested = false;
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_device_destroy(void *dev)
{
	i8042__destroy(dev);
}

/*
 * A keyboard controller only (PNP0303, no PNP0F13 mouse): Linux's i8042
 * driver then finds it through PNP instead of probing the ports blind, and
 * skips the aux port and its IRQ test, which times out without an aux line.
 */
static bool i8042_device_acpi(void *dev, struct device_acpi *out)
{
	const struct i8042 *k = dev;

	if (!k->has_kbd_irq)
		return false;
	*out = (struct device_acpi){ .name = "PS2K", .hid = "PNP0303", .nr_io = 2,
				     .io = { { PORT_I8042_DATA, 1 }, { PORT_I8042_CMD, 1 } },
				     .irq = (uint8_t)k->kbd_irq.gsi };
	return true;
}

#define I8042_STATE_VERSION 1
#define I8042_STATUS_KEPT   (STR_CMD | STR_AUXDATA | STR_TIMEOUT)

/*
 * Version 1: the controller RAM (I8042_RAM_SIZE bytes, the command byte
 * first), the status bits it keeps (STR_CMD, STR_AUXDATA, STR_TIMEOUT), the
 * output buffer full flag (0/1) and byte, and the command waiting for its
 * data byte (0: none). The IRQ lines follow from these.
 */
static int i8042_device_save(void *dev, struct state_out *out)
{
	struct i8042 *k = dev;

	pthread_mutex_lock(&k->lock);
	state_out__u32(out, I8042_STATE_VERSION);
	state_out__bytes(out, k->ram, sizeof(k->ram));
	state_out__u8(out, k->status);
	state_out__u8(out, k->obf);
	state_out__u8(out, k->obuf);
	state_out__u8(out, k->pending);
	pthread_mutex_unlock(&k->lock);
	return out->err;
}

/* A command i8042_command leaves waiting for a data byte. */
static bool i8042_takes_data(uint8_t cmd)
{
	return (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + I8042_RAM_SIZE) ||
	       cmd == CMD_WRITE_OUTP || cmd == CMD_WRITE_KBD_OBUF || cmd == CMD_WRITE_AUX_OBUF ||
	       cmd == CMD_WRITE_AUX;
}

/* Takes a version 1 state (see i8042_device_save) and drives both lines to match it. */
static int i8042_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct i8042 *k = dev;
	uint8_t ram[I8042_RAM_SIZE], status, obf, obuf, pending;
	uint32_t version;

	version = state_in__u32(in);
	if (in->err) {
		snprintf(why, why_len, "state truncated: %zu bytes", in->len);
		return -EINVAL;
	}
	if (version != I8042_STATE_VERSION) {
		snprintf(why, why_len, "state version %u, expected %u", version, I8042_STATE_VERSION);
		return -EINVAL;
	}
	state_in__bytes(in, ram, sizeof(ram));
	status = state_in__u8(in);
	obf = state_in__u8(in);
	obuf = state_in__u8(in);
	pending = state_in__u8(in);
	if (state_in__end(in)) {
		snprintf(why, why_len, "state %s: %zu bytes", in->err ? "truncated" : "too long", in->len);
		return -EINVAL;
	}
	if (status & ~I8042_STATUS_KEPT) {
		snprintf(why, why_len, "status 0x%02x: bits the controller does not keep", status);
		return -EINVAL;
	}
	if (obf > 1) {
		snprintf(why, why_len, "output buffer full %u: not 0 or 1", obf);
		return -EINVAL;
	}
	if (!obf && (status & (STR_AUXDATA | STR_TIMEOUT))) {
		snprintf(why, why_len, "status 0x%02x: aux data or timeout with an empty output buffer",
			 status);
		return -EINVAL;
	}
	if (pending && !i8042_takes_data(pending)) {
		snprintf(why, why_len, "pending command 0x%02x: takes no data byte", pending);
		return -EINVAL;
	}

	pthread_mutex_lock(&k->lock);
	memcpy(k->ram, ram, sizeof(ram));
	k->status = status;
	k->obf = obf;
	k->obuf = obuf;
	k->pending = pending;
	k->kbd_level = k->aux_level = -1; /* whatever the lines were at, drive them */
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

const struct device_ops i8042__device_ops = {
	.reset = i8042_device_reset,
	.destroy = i8042_device_destroy,
	.acpi = i8042_device_acpi,
	.save = i8042_device_save,
	.load = i8042_device_load,
};
