#!/usr/bin/env python3
"""Every path and verb docs/api/openapi.yaml lists, against a running rtvmm (bare-metal guest).

Usage: api_openapi.py RTVMM GUEST OPENAPI.yaml

Each documented call answers one of its documented statuses, its JSON body valid against the
documented schema (jsonschema); every verb a path does not document answers 405 with the Allow
header naming the documented ones; an undocumented path answers 404. The calls that stop the
VM (vm.shutdown, vmm.shutdown) each get a VM of their own, answer 204, and rtvmm then exits 0;
so does vm.reboot on a VM run with --on-reboot exit, while on one with the default (restart) it
answers 204 and the same process serves a VM that is Running again with one reboot in vm.info. (tests/unit/test_api_openapi.c checks the other way: no route the server has is
missing from the document.) Exit 77 only when /dev/kvm is absent.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import jsonschema
import yaml

from api_client import call

STOPPING = {"/api/v1/vm.shutdown", "/api/v1/vm.reboot", "/api/v1/vmm.shutdown"}
VERBS = ["get", "put", "post", "delete", "patch"]


def fail(msg, log=None):
    print("FAIL: " + msg)
    if log and os.path.exists(log):
        print("---- " + log)
        print(open(log).read()[-4000:])
    sys.exit(1)


def start(rtvmm, guest, tmp, name, extra=(), cmdline="test=none chatter=100000000 fault=hang",
          out=None):
    sock = os.path.join(tmp, name + ".sock")
    log = os.path.join(tmp, name + ".log")
    pin = ["taskset", "-c", "1"] if os.environ.get("RTVMM_KVMBOX") == "1" else []
    p = subprocess.Popen(pin + [rtvmm, "run", "--kernel", guest, "--test-device", "--memory", "64M",
                                "--cmdline", cmdline, "--api-socket", sock] + list(extra),
                         stdout=open(out, "w") if out else subprocess.DEVNULL,
                         stderr=open(log, "w"), stdin=subprocess.DEVNULL)
    for _ in range(600):
        if p.poll() is not None:
            fail("rtvmm exited with %d before serving %s" % (p.returncode, sock), log)
        if os.path.exists(sock) and "VM built in" in open(log).read():
            try:
                if call(sock, "GET", "/api/v1/vmm.ping")[0] == 200:
                    return p, sock, log
            except OSError:
                pass
        time.sleep(0.1)
    p.kill()
    fail("rtvmm did not serve %s within 60 s" % sock, log)


def check_answer(doc, path, verb, status, body, log):
    op = doc["paths"][path][verb]
    resp = op["responses"].get(str(status))
    if resp is None:
        fail("%s %s answered %d, documented: %s (%s)" % (verb.upper(), path, status,
                                                         sorted(op["responses"]), body[:300]), log)
    schema = resp.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        if body:
            fail("%s %s %d: a body where the document has none: %s" % (verb.upper(), path, status,
                                                                      body[:300]), log)
        return "%d" % status
    try:
        value = json.loads(body)
    except ValueError:
        fail("%s %s %d: the body is not JSON: %s" % (verb.upper(), path, status, body[:300]), log)
    root = dict(schema)
    root["components"] = doc["components"]
    try:
        jsonschema.Draft202012Validator(root).validate(value)
    except jsonschema.ValidationError as e:
        fail("%s %s %d: the answer does not match %s: %s at %s" % (
            verb.upper(), path, status, schema.get("$ref", "its schema"), e.message,
            list(e.absolute_path)), log)
    return "%d, matches %s" % (status, schema.get("$ref", "the schema").rsplit("/", 1)[-1])


def check_reboot_in_place(rtvmm, guest, tmp, doc, procs):
    """vm.reboot with the default --on-reboot restart: 204, then Running again, reboots 1, and
    the guest boots a second time (its "fault: hang" line on the console twice)."""
    out = os.path.join(tmp, "reboot-in-place.out")
    banner = "fault: hang"
    p, sock, log = start(rtvmm, guest, tmp, "reboot-in-place", cmdline="test=none fault=hang", out=out)
    procs.append(p)
    # The first boot's line first: a reset while the guest still boots (zeroing its bss takes
    # a while in the box) would leave one line for two boots.
    for _ in range(300):
        if banner in open(out).read():
            break
        time.sleep(0.1)
    else:
        fail("the guest did not boot the first time within 30 s", log)
    status, _, body = call(sock, "PUT", "/api/v1/vm.reboot")
    result = check_answer(doc, "/api/v1/vm.reboot", "put", status, body, log)
    info = {}
    for _ in range(300):
        if p.poll() is not None:
            fail("PUT vm.reboot (restart): rtvmm exited %d" % p.returncode, log)
        status, _, body = call(sock, "GET", "/api/v1/vm.info")
        info = json.loads(body)
        if info.get("reboots") == 1 and info.get("state") == "Running":
            break
        time.sleep(0.1)
    else:
        fail("PUT vm.reboot (restart): vm.info never showed Running with 1 reboot: %s" %
             {k: info.get(k) for k in ("state", "reboots")}, log)
    check_answer(doc, "/api/v1/vm.info", "get", status, body, log)
    for _ in range(300):
        if open(out).read().count(banner) >= 2:
            break
        time.sleep(0.1)
    else:
        fail("PUT vm.reboot (restart): the guest did not boot again (%d boot lines)" %
             open(out).read().count(banner), log)
    call(sock, "PUT", "/api/v1/vmm.shutdown")
    rc = p.wait(timeout=30)
    if rc != 0:
        fail("the VM rebooted in place exited %d after vmm.shutdown" % rc, log)
    print("ok: PUT /api/v1/vm.reboot -> %s; the same rtvmm boots the guest again (reboots 1), "
          "then exits 0 at vmm.shutdown" % result)
    return 1


def main():
    rtvmm, guest, spec = sys.argv[1:4]
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm does not exist: no KVM here")
        return 77
    doc = yaml.safe_load(open(spec))
    jsonschema.Draft202012Validator.check_schema({"components": doc["components"]})
    tmp = tempfile.mkdtemp(prefix="rtvmm-openapi.")
    procs = []
    try:
        p, sock, log = start(rtvmm, guest, tmp, "main")
        procs.append(p)
        checked = 0
        for path, ops in doc["paths"].items():
            documented = [v for v in VERBS if v in ops]
            for verb in VERBS:
                if verb in documented:
                    continue
                status, headers, body = call(sock, verb.upper(), path)
                allow = headers.get("Allow", "")
                if status != 405 or sorted(a.strip().lower() for a in allow.split(",")) != documented:
                    fail("%s %s: %d, Allow '%s'; expected 405 allowing %s" % (
                        verb.upper(), path, status, allow, documented), log)
            if path in STOPPING:
                continue
            for verb in documented:
                status, _, body = call(sock, verb.upper(), path)
                print("ok: %s %s -> %s" % (verb.upper(), path, check_answer(doc, path, verb, status,
                                                                           body, log)))
                checked += 1
        status, _, body = call(sock, "GET", "/api/v1/undocumented")
        if status != 404:
            fail("an undocumented path answered %d: %s" % (status, body[:200]), log)
        print("ok: every other verb of each path -> 405 with Allow; an undocumented path -> 404")
        if "/api/v1/vm.snapshot" in doc["paths"]:
            snap = os.path.join(tmp, "snap")
            status, _, body = call(sock, "PUT", "/api/v1/vm.snapshot",
                                   {"destination_url": "file://" + snap})
            result = check_answer(doc, "/api/v1/vm.snapshot", "put", status, body, log)
            if status != 200 or not os.path.exists(os.path.join(snap, "manifest.json")):
                fail("PUT /api/v1/vm.snapshot with a new directory: %d %s" % (status, body[:300]),
                     log)
            status, _, body = call(sock, "PUT", "/api/v1/vm.snapshot",
                                   {"destination_url": "file://" + snap})
            check_answer(doc, "/api/v1/vm.snapshot", "put", status, body, log)
            if status != 400:
                fail("PUT /api/v1/vm.snapshot into an existing directory: %d" % status, log)
            print("ok: PUT /api/v1/vm.snapshot {destination_url} -> %s; again -> 400" % result)
            checked += 2
        if "/api/v1/vm.send-migration" in doc["paths"]:
            for body, want in (({"destination_url": "tcp:localhost:1"}, 400),
                               ({"destination_url": "tcp:127.0.0.1:1", "downtime_ms": 0}, 400),
                               ({"destination_url": "tcp:127.0.0.1:1"}, 500)):
                status, _, answer = call(sock, "PUT", "/api/v1/vm.send-migration", body)
                result = check_answer(doc, "/api/v1/vm.send-migration", "put", status, answer, log)
                if status != want:
                    fail("PUT /api/v1/vm.send-migration %s: %d, expected %d" % (body, status, want),
                         log)
                print("ok: PUT /api/v1/vm.send-migration %s -> %s" % (body, result))
                checked += 1
        if "/api/v1/vm.reboot" in doc["paths"]:
            checked += check_reboot_in_place(rtvmm, guest, tmp, doc, procs)
        for path in sorted(STOPPING & set(doc["paths"])):
            extra = ["--on-reboot", "exit"] if path == "/api/v1/vm.reboot" else []
            p2, sock2, log2 = start(rtvmm, guest, tmp, path.rsplit("/", 1)[-1], extra)
            procs.append(p2)
            status, _, body = call(sock2, "PUT", path)
            result = check_answer(doc, path, "put", status, body, log2)
            try:
                rc = p2.wait(timeout=30)
            except subprocess.TimeoutExpired:
                fail("PUT %s: rtvmm still runs 30 s after the answer" % path, log2)
            if rc != 0 or os.path.exists(sock2):
                fail("PUT %s: rtvmm exited %d, socket left: %s" % (path, rc, os.path.exists(sock2)),
                     log2)
            print("ok: PUT %s -> %s; rtvmm exited 0 and removed its socket" % (path, result))
            checked += 1
        call(sock, "PUT", "/api/v1/vmm.shutdown")
        rc = p.wait(timeout=30)
        if rc != 0:
            fail("the VM that took every call exited %d after vmm.shutdown" % rc, log)
        print("ok: %d documented calls checked against the server" % checked)
        return 0
    finally:
        for q in procs:
            if q.poll() is None:
                q.kill()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
