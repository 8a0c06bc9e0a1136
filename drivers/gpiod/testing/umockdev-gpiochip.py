#!/usr/bin/python3
"""
Simulated GPIO chips for tests: runs a command under umockdev with device nodes
/dev/gpiochipN that answer the Linux GPIO character device's v2 uAPI the way
the kernel's gpiolib-cdev does (chip info, line info, line requests with the
kernel's flag checks, get/set values, edge events), for machines where the
kernel's gpio-sim cannot be loaded (no CONFIG_GPIOLIB, no modules, no configfs:
containers and most CI VMs).

usage: umockdev-gpiochip.py SPEC.json LOG.jsonl CONTROL.sock -- COMMAND [ARGS...]
(run as every simulation is: drivers/testing/umockdev_testbed.py)

SPEC.json: {"chips": [{"name": "gpiochip0", "label": "gpio-sim.0-node0", "lines": 8,
            "names": {"3": "RELAY1"}, "used": {"5": "fan-control"}, "pulls": {"2": 1}}]}
  names: line names; used: lines already taken by another consumer (as a kernel
  driver or another program would hold them); pulls: the level something outside
  drives on a line (0 or 1), as gpio-sim's `pull` attribute.
LOG.jsonl: one JSON object per ioctl (decoded), per release and per edge event sent.
CONTROL.sock: one command a line, one JSON answer a line:
  pull CHIP OFFSET 0|1|none   drive a line from outside (events follow, as on a pin)
  line CHIP OFFSET            the line's state: requested, consumer, flags, levels

How it is done, and its limits. umockdev (Debian's `umockdev`, through its
Python bindings) redirects the opening of /dev/gpiochipN to a pty it owns and
sends every ioctl on that fd to the handler here, which reads and writes the
caller's memory. It cannot create a new fd in the caller, so the line request's
fd that GPIO_V2_GET_LINE_IOCTL returns is the chip fd itself (found through
/proc); line ioctls on it come back here, told apart by their request number.
Edge events are written, as struct gpio_v2_line_event, into the pty, so the
caller reads and polls that fd as it would a line fd. Hence: one line request per
open chip fd, and one reader of events per chip. umockdev's `umockdev-run -i`
ioctl scripts cannot express this: its ioctl recorder knows usbdevfs, evdev,
hidraw and cros_ec requests, not GPIO.
"""

import os
import struct
import sys
import threading
import time

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev  # noqa: E402

sys.dont_write_bytecode = True  # keeps drivers/testing free of __pycache__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testing"))
from umockdev_testbed import Simulation, lock, log, pass_through, run  # noqa: E402

# <linux/gpio.h>, checked against the header by drivers/gpiod/uapi.test.ts
GPIO_GET_CHIPINFO_IOCTL = 0x8044B401
GPIO_V2_GET_LINEINFO_IOCTL = 0xC100B405
GPIO_V2_GET_LINE_IOCTL = 0xC250B407
GPIO_V2_LINE_SET_CONFIG_IOCTL = 0xC110B40D
GPIO_V2_LINE_GET_VALUES_IOCTL = 0xC010B40E
GPIO_V2_LINE_SET_VALUES_IOCTL = 0xC010B40F
NAMES = {
    GPIO_GET_CHIPINFO_IOCTL: "GPIO_GET_CHIPINFO_IOCTL",
    GPIO_V2_GET_LINEINFO_IOCTL: "GPIO_V2_GET_LINEINFO_IOCTL",
    GPIO_V2_GET_LINE_IOCTL: "GPIO_V2_GET_LINE_IOCTL",
    GPIO_V2_LINE_SET_CONFIG_IOCTL: "GPIO_V2_LINE_SET_CONFIG_IOCTL",
    GPIO_V2_LINE_GET_VALUES_IOCTL: "GPIO_V2_LINE_GET_VALUES_IOCTL",
    GPIO_V2_LINE_SET_VALUES_IOCTL: "GPIO_V2_LINE_SET_VALUES_IOCTL",
}
LINE_IOCTLS = {GPIO_V2_LINE_SET_CONFIG_IOCTL, GPIO_V2_LINE_GET_VALUES_IOCTL, GPIO_V2_LINE_SET_VALUES_IOCTL}

FLAG_NAMES = [
    "USED", "ACTIVE_LOW", "INPUT", "OUTPUT", "EDGE_RISING", "EDGE_FALLING", "OPEN_DRAIN", "OPEN_SOURCE",
    "BIAS_PULL_UP", "BIAS_PULL_DOWN", "BIAS_DISABLED", "EVENT_CLOCK_REALTIME", "EVENT_CLOCK_HTE",
]
F = {name: 1 << i for i, name in enumerate(FLAG_NAMES)}
VALID_REQUEST_FLAGS = sum(F[n] for n in FLAG_NAMES[1:])
EDGE_FLAGS = F["EDGE_RISING"] | F["EDGE_FALLING"]
DRIVE_FLAGS = F["OPEN_DRAIN"] | F["OPEN_SOURCE"]
BIAS_FLAGS = F["BIAS_PULL_UP"] | F["BIAS_PULL_DOWN"] | F["BIAS_DISABLED"]
DIRECTION_FLAGS = F["INPUT"] | F["OUTPUT"]
ATTR_FLAGS, ATTR_OUTPUT_VALUES, ATTR_DEBOUNCE = 1, 2, 3
ATTR_NAMES = {ATTR_FLAGS: "FLAGS", ATTR_OUTPUT_VALUES: "OUTPUT_VALUES", ATTR_DEBOUNCE: "DEBOUNCE"}
EVENT_RISING, EVENT_FALLING = 1, 2

EINVAL, EBUSY, EPERM, EIO = 22, 16, 1, 5
ERRNO_NAMES = {EINVAL: "EINVAL", EBUSY: "EBUSY", EPERM: "EPERM", EIO: "EIO"}

CHIPINFO = struct.Struct("<32s32sI")  # 68
LINEINFO_HEAD = struct.Struct("<32s32sIIQ")  # 80, then attrs[10] (160) and padding[4] (16)
LINEINFO_SIZE = 256
ATTR = struct.Struct("<IIQ")  # 16
CONFIG_ATTR = struct.Struct("<IIQQ")  # 24
CONFIG_HEAD = struct.Struct("<QI5I")  # 32, then attrs[10]
CONFIG_SIZE = 272
REQUEST_SIZE = 592
REQUEST_TAIL = struct.Struct("<II5Ii")  # num_lines, event_buffer_size, padding[5], fd at 560
VALUES = struct.Struct("<QQ")
EVENT = struct.Struct("<QIIII6I")  # 48

def flag_names(flags):
    return [n for n in FLAG_NAMES if flags & F[n]]


def cstr(raw):
    return raw.split(b"\0", 1)[0].decode(errors="replace")


class Line:
    def __init__(self, offset, name, used, pull):
        self.offset = offset
        self.name = name
        self.kernel_consumer = used  # held by someone else for the whole run
        self.pull = pull  # level driven from outside, or None
        self.owner = None  # the Connection holding a request, if any
        self.consumer = ""
        self.flags = 0
        self.driven = 0  # logical output value
        self.line_seqno = 0

    def bias_level(self):
        if self.pull is not None:
            return self.pull
        # pull-down and no bias read low, as gpio-sim's lines do
        return 1 if self.flags & F["BIAS_PULL_UP"] else 0

    def physical(self):
        if self.owner and self.flags & F["OUTPUT"]:
            level = self.driven ^ (1 if self.flags & F["ACTIVE_LOW"] else 0)
            # an open-drain output only pulls low; open-source only pulls high
            if (level == 1 and self.flags & F["OPEN_DRAIN"]) or (level == 0 and self.flags & F["OPEN_SOURCE"]):
                return self.bias_level()
            return level
        return self.bias_level()

    def logical(self):
        if self.owner and self.flags & F["OUTPUT"]:
            return self.driven
        return self.physical() ^ (1 if self.flags & F["ACTIVE_LOW"] else 0)

    def info_flags(self):
        if self.owner:
            return F["USED"] | self.flags
        if self.kernel_consumer is not None:
            return F["USED"] | F["INPUT"]
        return F["INPUT"]

    def state(self):
        return {
            "requested": self.owner is not None,
            "consumer": self.consumer if self.owner else (self.kernel_consumer or ""),
            "flags": flag_names(self.info_flags()),
            "physical": self.physical(),
            "logical": self.logical(),
        }


class Chip:
    def __init__(self, spec):
        self.name = spec["name"]
        self.label = spec.get("label", f"gpio-sim.{self.name}")
        names = spec.get("names", {})
        used = spec.get("used", {})
        pulls = spec.get("pulls", {})
        self.lines = [
            Line(i, names.get(str(i), ""), used.get(str(i)), pulls.get(str(i))) for i in range(spec["lines"])
        ]
        self.master = None  # pty master: what is written there, the chip fd reads
        self.pts = None  # the pty's path, to find callers' fds in /proc


class Connection:
    """One open of a chip: a client fd, and at most one line request made on it."""

    def __init__(self, chip, client):
        self.chip = chip
        self.client = client
        self.fd = None  # (pid, fd) in the caller, once it requests a line
        self.offsets = []
        self.seqno = 0


connections = {}  # IoctlClient -> Connection


def validate_flags(flags):
    """gpiolib-cdev's gpio_v2_line_flags_validate."""
    if flags & ~VALID_REQUEST_FLAGS:
        return False
    if flags & F["EVENT_CLOCK_HTE"]:
        return False  # CONFIG_HTE is off on the boards we target; the kernel says EOPNOTSUPP, close enough
    if flags & F["INPUT"] and flags & F["OUTPUT"]:
        return False
    if flags & EDGE_FLAGS and not flags & F["INPUT"]:
        return False
    if flags & F["OPEN_DRAIN"] and flags & F["OPEN_SOURCE"]:
        return False
    if flags & DRIVE_FLAGS and not flags & F["OUTPUT"]:
        return False
    if flags & BIAS_FLAGS and not flags & DIRECTION_FLAGS:
        return False
    if bin(flags & BIAS_FLAGS).count("1") > 1:
        return False
    return True


def parse_config(raw, num_lines):
    """gpio_v2_line_config_validate, then each line's flags and output value."""
    flags, num_attrs, *padding = CONFIG_HEAD.unpack_from(raw, 0)
    if any(padding) or num_attrs > 10:
        return None
    attrs = []
    for i in range(num_attrs):
        attr_id, attr_pad, value, mask = CONFIG_ATTR.unpack_from(raw, CONFIG_HEAD.size + i * CONFIG_ATTR.size)
        if attr_pad:
            return None
        attrs.append({"id": ATTR_NAMES.get(attr_id, attr_id), "value": value, "mask": mask, "raw_id": attr_id})
    lines = []
    for index in range(num_lines):
        line_flags = flags
        output = 0
        for a in attrs:
            if a["mask"] & (1 << index):
                if a["raw_id"] == ATTR_FLAGS:
                    line_flags = a["value"]
                elif a["raw_id"] == ATTR_OUTPUT_VALUES:
                    output = 1 if a["value"] & (1 << index) else 0
        if not validate_flags(line_flags):
            return None
        lines.append((line_flags, output))
    described = {
        "flags": flag_names(flags),
        "attrs": [{"id": a["id"], "value": hex(a["value"]), "mask": hex(a["mask"])} for a in attrs],
    }
    return lines, described


def find_caller_fds(chip):
    """Every (pid, fd) in the system open on this chip's pty."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == chip.pts:
                    found.append((int(pid), int(fd)))
            except OSError:
                pass
    return found


def claim_fd(conn):
    """The caller's fd of this connection: the one open on the chip that no live connection has claimed."""
    taken = {c.fd for c in connections.values() if c is not conn and c.client.get_connected() and c.fd}
    free = [f for f in find_caller_fds(conn.chip) if f not in taken]
    return free[0] if len(free) == 1 else None


def send_event(chip, conn, line, event_id):
    conn.seqno += 1
    line.line_seqno += 1
    os.write(chip.master, EVENT.pack(time.monotonic_ns(), event_id, line.offset, conn.seqno, line.line_seqno, 0, 0, 0, 0, 0, 0))
    log({"chip": chip.name, "event": "RISING_EDGE" if event_id == EVENT_RISING else "FALLING_EDGE", "offset": line.offset})


def finish(client, record, result, errno=0):
    record["result"] = 0 if result == 0 else ERRNO_NAMES.get(errno, errno)
    log(record)
    client.complete(result, errno)
    return True


def grant_request(conn, data, record, offsets, lines):
    """Hands the lines to the request; False while the caller's fd cannot be told apart."""
    conn.fd = claim_fd(conn)
    if conn.fd is None:
        return False
    for o, (flags, output) in zip(offsets, lines):
        line = conn.chip.lines[o]
        line.owner, line.consumer, line.flags, line.driven = conn, record["consumer"], flags, output
    conn.offsets = offsets
    data.update(588, struct.pack("<i", conn.fd[1]))
    finish(conn.client, record, 0)
    return True


def retry_later(client, grant, chip, tries=100):
    def again():
        with lock:
            if grant():
                return False
        if again.left <= 0:
            sys.stderr.write(f"umockdev-gpiochip: cannot tell which fd of the caller is this open of {chip.name}\n")
            client.abort()
            return False
        again.left -= 1
        return True

    again.left = tries
    source = GLib.timeout_source_new(10)
    source.set_callback(lambda *_: again())
    source.attach(GLib.MainContext.get_thread_default())


def handle_ioctl(chip, client):
    request = client.get_request()
    if (request >> 8) & 0xFF != 0xB4:
        return pass_through(client)
    with lock:
        conn = connections.get(client)
        record = {"chip": chip.name, "ioctl": NAMES.get(request, hex(request))}
        arg = client.get_arg()
        if request == GPIO_GET_CHIPINFO_IOCTL:
            data = arg.resolve(0, CHIPINFO.size)
            data.update(0, CHIPINFO.pack(chip.name.encode(), chip.label.encode(), len(chip.lines)))
            return finish(client, record, 0)
        if request == GPIO_V2_GET_LINEINFO_IOCTL:
            data = arg.resolve(0, LINEINFO_SIZE)
            raw = bytes(data.retrieve())
            offset = struct.unpack_from("<I", raw, 64)[0]
            record["offset"] = offset
            if offset >= len(chip.lines) or any(raw[240:256]):
                return finish(client, record, -1, EINVAL)
            line = chip.lines[offset]
            consumer = line.consumer if line.owner else (line.kernel_consumer or "")
            out = LINEINFO_HEAD.pack(line.name.encode(), consumer.encode(), offset, 0, line.info_flags())
            data.update(0, out + bytes(LINEINFO_SIZE - len(out)))
            return finish(client, record, 0)
        if request == GPIO_V2_GET_LINE_IOCTL:
            data = arg.resolve(0, REQUEST_SIZE)
            raw = bytes(data.retrieve())
            num_lines, event_buffer_size, *tail = REQUEST_TAIL.unpack_from(raw, 560)
            offsets = list(struct.unpack_from("<64I", raw, 0)[: min(num_lines, 64)])
            record.update({"offsets": offsets, "consumer": cstr(raw[256:288]), "num_lines": num_lines,
                           "event_buffer_size": event_buffer_size})
            if num_lines < 1 or num_lines > 64 or any(tail[:5]):
                return finish(client, record, -1, EINVAL)
            parsed = parse_config(raw[288:560], num_lines)
            if parsed is None:
                record["config"] = "invalid"
                return finish(client, record, -1, EINVAL)
            lines, record["config"] = parsed
            if any(o >= len(chip.lines) for o in offsets):
                return finish(client, record, -1, EINVAL)
            if any(chip.lines[o].owner or chip.lines[o].kernel_consumer is not None for o in offsets):
                return finish(client, record, -1, EBUSY)
            if conn.offsets:
                sys.stderr.write("umockdev-gpiochip: a second line request on one open chip fd is not simulated\n")
                client.abort()
                return True
            grant = lambda: grant_request(conn, data, record, offsets, lines)  # noqa: E731
            if not grant():
                # The fd may be a number another open had until just now; its close is yet
                # to be seen here (this thread sees it next), so ask again shortly.
                retry_later(client, grant, chip)
            return True
        if request in LINE_IOCTLS:
            if not conn.offsets:
                return finish(client, record, -1, EINVAL)  # a chip fd answers line ioctls with EINVAL
            lines = [chip.lines[o] for o in conn.offsets]
            if request == GPIO_V2_LINE_SET_CONFIG_IOCTL:
                data = arg.resolve(0, CONFIG_SIZE)
                parsed = parse_config(bytes(data.retrieve()), len(lines))
                if parsed is None:
                    record["config"] = "invalid"
                    return finish(client, record, -1, EINVAL)
                new, record["config"] = parsed
                for line, (flags, output) in zip(lines, new):
                    line.flags = flags
                    if flags & F["OUTPUT"]:
                        line.driven = output
                return finish(client, record, 0)
            data = arg.resolve(0, VALUES.size)
            bits, mask = VALUES.unpack(bytes(data.retrieve()))
            record["mask"] = hex(mask)
            if mask == 0:
                return finish(client, record, -1, EINVAL)
            selected = [(i, line) for i, line in enumerate(lines) if mask & (1 << i)]
            if request == GPIO_V2_LINE_GET_VALUES_IOCTL:
                out = sum(line.logical() << i for i, line in selected)
                data.update(0, VALUES.pack(out, mask))
                record["bits"] = hex(out)
                return finish(client, record, 0)
            record["bits"] = hex(bits)
            if any(not line.flags & F["OUTPUT"] for _, line in selected):
                return finish(client, record, -1, EPERM)
            for i, line in selected:
                line.driven = 1 if bits & (1 << i) else 0
            record["physical"] = {str(line.offset): line.physical() for _, line in selected}
            return finish(client, record, 0)
        return finish(client, record, -1, EINVAL)


def on_read(chip, client):
    # Reads of the line fd take the events from the pty, as they are; only noted here.
    log({"chip": chip.name, "read": len(client.get_arg().retrieve())})
    return False


def on_connected(chip, client):
    with lock:
        connections[client] = Connection(chip, client)


def sweep_closes():
    """Releases the lines of every connection whose fd the caller closed (or whose process ended)."""
    with lock:
        for client, conn in list(connections.items()):
            if client.get_connected():
                continue
            del connections[client]
            for o in conn.offsets:
                line = conn.chip.lines[o]
                line.owner, line.consumer, line.flags = None, "", 0
            log({"chip": conn.chip.name, "closed": True, "released": conn.offsets})


def watch_closes():
    # Polled: umockdev's IoctlClient:connected changes without a notify signal.
    while True:
        time.sleep(0.02)
        sweep_closes()


def pull(chip, offset, level):
    line = chip.lines[offset]
    before = line.logical()
    line.pull = level
    after = line.logical()
    sent = []
    conn = line.owner
    if conn and line.flags & F["INPUT"] and before != after:
        if after == 1 and line.flags & F["EDGE_RISING"]:
            send_event(chip, conn, line, EVENT_RISING)
            sent.append("RISING_EDGE")
        if after == 0 and line.flags & F["EDGE_FALLING"]:
            send_event(chip, conn, line, EVENT_FALLING)
            sent.append("FALLING_EDGE")
    return {"events": sent, **line.state()}


class GpioChips(Simulation):
    def __init__(self, testbed, spec):
        super().__init__(testbed, spec)
        self.chips = {}
        for chip_spec in spec["chips"]:
            chip = Chip(chip_spec)
            testbed.add_from_string(
                f"P: /devices/platform/gpio-sim.0/{chip.name}\nN: {chip.name}\n"
                f"E: SUBSYSTEM=gpio\nE: DEVNAME=/dev/{chip.name}\n"
            )
            chip.master = testbed.get_dev_fd(f"/dev/{chip.name}")
            chip.pts = os.readlink(os.path.join(self.root, "dev", chip.name))
            handler = UMockdev.IoctlBase()
            handler.connect("handle-ioctl", lambda _h, client, chip=chip: handle_ioctl(chip, client))
            handler.connect("handle-read", lambda _h, client, chip=chip: on_read(chip, client))
            handler.connect("client-connected", lambda _h, client, chip=chip: on_connected(chip, client))
            testbed.attach_ioctl(f"/dev/{chip.name}", handler)
            self.chips[chip.name] = chip
        threading.Thread(target=watch_closes, daemon=True).start()

    def answer(self, words):
        chip = self.chips[words[1]]
        offset = int(words[2])
        if words[0] == "pull":
            return pull(chip, offset, None if words[3] == "none" else int(words[3]))
        if words[0] == "line":
            return chip.lines[offset].state()
        return super().answer(words)

    def command_ended(self):
        # The command's fds are closed now; let umockdev see the ends, so the log says what was released.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with lock:
                if not any(c.get_connected() for c in connections):
                    break
            time.sleep(0.02)
        sweep_closes()


if __name__ == "__main__":
    run(__doc__, GpioChips)
