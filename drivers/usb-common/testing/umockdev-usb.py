#!/usr/bin/python3
"""
Simulated USB devices for tests: runs a command under umockdev with the devices'
sysfs entries (/sys/bus/usb/devices/..., their interfaces, HID and block devices)
and device nodes, answering what each device answers on the wire:

  hub         a USB 2.0 (or 3.x) hub: hub descriptor, GET_STATUS of a port and
              SET/CLEAR_FEATURE PORT_POWER, per-port, ganged or without power
              switching, as uhubctl drives one
  ykush       a Yepkit YKUSH (04d8:f2f7): 64-byte HID reports on /dev/hidrawN
  sdwire      an SDWire: its internal hub (0424:2640), the SD card reader behind
              port 1 (0424:4050) with its disk /dev/sdX, and the FT200X (04e8:6001,
              "sd-wire") whose CBUS0 pin, driven by FTDI bitbang control requests,
              switches the card between the host and the DUT; the disk has no
              medium (size 0) while the DUT has the card
  noyito-hid  a NOYITO 4/8-channel HID relay (140b:07d7 = 5131/2007): 4-byte
              commands A0 ch state sum in HID reports on /dev/hidrawN
  noyito-serial  a NOYITO 1/2-channel relay: a CH340 (1a86:7523) with /dev/ttyUSBn,
              the same commands as bytes, and 0xFF answered with `CH1:ON \r\nCH2:OFF \r\n`
  device      any other device (ids and strings only), e.g. a serial adapter

usage: umockdev-usb.py SPEC.json LOG.jsonl CONTROL.sock -- COMMAND [ARGS...]
(run as every simulation is: drivers/testing/umockdev_testbed.py)

SPEC.json: {"devices": [{"location": "1-1", "kind": "hub", "ports": 4, ...}, ...],
            "run_as": "65534:65534"}  (optional: run COMMAND as this uid:gid)
  every device: location ("1" is the root hub of bus 1), kind, vendor, product (numbers),
    manufacturer, product_name, serial, mode (of its device node, e.g. "0600")
  hub: ports, power_switching ("per-port", "ganged", "none"), usb3 (bool),
    overcurrent ([ports]); a device whose location is below the hub is connected there
  sdwire: disk_size (bytes), mux ("host" or "dut" at start), reader_port (default 1)
  noyito-hid: channels (4 or 8)
  noyito-serial, device: tty (its tty's name, e.g. "ttyUSB0"; a device without one has none)
LOG.jsonl: one JSON object per control transfer (decoded, with what the device did),
  per HID report written or sent, per usbdevfs ioctl that is not a transfer, per open.
CONTROL.sock: one command a line, one JSON answer a line:
  state                   every device's state (port power, mux, relays, disk file)
When COMMAND has ended, the state goes to the file SPEC.json's "final_state" names (each
disk copied beside it, as the host saw it last: the testbed goes with this process).

How it is done, and its limits. umockdev (Debian's `umockdev`, through its Python
bindings) builds the sysfs tree and /dev nodes and, through its LD_PRELOAD library,
redirects what the command does through libc: libusb's enumeration (libudev and
sysfs), its open of /dev/bus/usb/BBB/DDD, and every usbdevfs ioctl on that fd, which
comes here (SUBMITURB, REAPURB[NDELAY], DISCARDURB and the rest, as the kernel's
usbfs would answer them). A program making raw system calls instead (Bun's own fs,
the `usb` npm package's nusb) is not redirected. hidraw nodes are ptys umockdev owns:
what the command writes is read here report by report (a pty keeps no report
boundaries, so writes are split by the device's report size: 65 bytes for the YKUSH,
report ID and 64, and 5 for the NOYITO, report ID and 4), and input reports are
written back. ttys are ptys too, read as the byte stream they are. Block devices are plain files that look like block devices.
Not simulated: hotplug (devices stay in sysfs when a port is switched off; the port's
status says what a real hub would), isochronous and bulk transfers.
"""

import json
import os
import shutil
import struct
import sys
import threading
import time

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

sys.dont_write_bytecode = True  # keeps drivers/testing free of __pycache__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testing"))
from umockdev_testbed import Simulation, lock, log, pass_through, pty_reads, run  # noqa: E402

# <linux/usbdevice_fs.h>, x86-64 and arm64 (checked by drivers/usb-common/usb-common.test.ts)
USBDEVFS = {
    0xC0185500: "USBDEVFS_CONTROL",
    0x80085504: "USBDEVFS_SETINTERFACE",
    0x80045505: "USBDEVFS_SETCONFIGURATION",
    0x41045508: "USBDEVFS_GETDRIVER",
    0x8038550A: "USBDEVFS_SUBMITURB",
    0x0000550B: "USBDEVFS_DISCARDURB",
    0x4008550C: "USBDEVFS_REAPURB",
    0x4008550D: "USBDEVFS_REAPURBNDELAY",
    0x8004550F: "USBDEVFS_CLAIMINTERFACE",
    0x80045510: "USBDEVFS_RELEASEINTERFACE",
    0x40085511: "USBDEVFS_CONNECTINFO",
    0xC0105512: "USBDEVFS_IOCTL",
    0x00005514: "USBDEVFS_RESET",
    0x8004551A: "USBDEVFS_GET_CAPABILITIES",
    0x8108551B: "USBDEVFS_DISCONNECT_CLAIM",
    0x0000551F: "USBDEVFS_GET_SPEED",
}
BY_NAME = {v: k for k, v in USBDEVFS.items()}
URB = struct.Struct("<BBxxiIxxxxQiiiiiIQ")  # 56 bytes: type, endpoint, status, flags, buffer, lengths, ...
URB_TYPE_CONTROL = 2
SETUP = struct.Struct("<BBHHH")
CAP_ZERO_PACKET, CAP_BULK_CONTINUATION, CAP_NO_PACKET_SIZE_LIM = 0x01, 0x02, 0x04
EPIPE, EINVAL, EAGAIN, ENOTTY, ENODATA = 32, 22, 11, 25, 61

# USB 2.0 ch. 11 (hubs)
GET_STATUS, CLEAR_FEATURE, SET_FEATURE, GET_DESCRIPTOR = 0, 1, 3, 6
PORT_FEATURES = {0: "PORT_CONNECTION", 1: "PORT_ENABLE", 2: "PORT_SUSPEND", 3: "PORT_OVER_CURRENT", 4: "PORT_RESET",
                 8: "PORT_POWER", 9: "PORT_LOW_SPEED", 16: "C_PORT_CONNECTION", 17: "C_PORT_ENABLE",
                 18: "C_PORT_SUSPEND", 19: "C_PORT_OVER_CURRENT", 20: "C_PORT_RESET", 22: "PORT_INDICATOR"}
PORT_POWER = 8

def h4(n):
    return f"{n:04x}"


# --- descriptors -------------------------------------------------------------------

def device_descriptor(dev):
    bcd_usb = 0x0300 if dev.get("usb3") else 0x0200
    cls = dev.get("class", 9 if dev["kind"] == "hub" else 0)
    proto = 3 if dev.get("usb3") and cls == 9 else (2 if cls == 9 else 0)
    return struct.pack("<BBHBBBBHHHBBBB", 18, 1, bcd_usb, cls, 0, proto, 9 if dev.get("usb3") else 64,
                       dev["vendor"], dev["product"], 0x0100, 1, 2, 3 if dev.get("serial") else 0, 1)


def config_descriptor(dev):
    iface_class, endpoints = {
        "hub": (9, [(0x81, 3, 1 if dev.get("ports", 4) < 8 else 2, 12)]),
        "ykush": (3, [(0x81, 3, 64, 1), (0x01, 3, 64, 1)]),
        "noyito-hid": (3, [(0x81, 3, 64, 1), (0x01, 3, 64, 1)]),
        "ftdi": (0xFF, [(0x81, 2, 64, 0), (0x02, 2, 64, 0)]),
        "noyito-serial": (0xFF, [(0x82, 2, 32, 0), (0x02, 2, 32, 0), (0x81, 3, 8, 1)]),
        "reader": (8, [(0x81, 2, 512, 0), (0x02, 2, 512, 0)]),
    }.get(dev["kind"], (0xFF, []))
    body = struct.pack("<BBBBBBBBB", 9, 4, 0, 0, len(endpoints), iface_class, 0xFF if iface_class == 0xFF else 0,
                       0xFF if iface_class == 0xFF else 0, 0)
    if iface_class == 3:
        body += struct.pack("<BBHBBBH", 9, 0x21, 0x0111, 0, 1, 0x22, 34)
    for address, attributes, size, interval in endpoints:
        body += struct.pack("<BBBBHB", 7, 5, address, attributes, size, interval)
    total = 9 + len(body)
    return struct.pack("<BBHBBBBB", 9, 2, total, 1, 1, 0, 0xE0, 50) + body, iface_class


# --- devices -----------------------------------------------------------------------

class Device:
    def __init__(self, spec, sim):
        self.spec = spec
        self.sim = sim
        self.location = spec["location"]
        self.kind = spec["kind"]
        self.bus = int(self.location.split("-")[0])
        self.devnum = spec["devnum"]
        self.node = f"/dev/bus/usb/{self.bus:03d}/{self.devnum:03d}"
        self.urbs = {}  # IoctlClient -> [completed urb IoctlData]

    # sysfs
    def sys_name(self):
        return f"usb{self.bus}" if "-" not in self.location else self.location

    def sys_path(self):
        if "-" not in self.location:
            return f"/devices/pci0000:00/0000:00:14.0/usb{self.bus}"
        parent = self.sim.parent_location(self.location)
        return f"{self.sim.devices[parent].sys_path()}/{self.location}"

    def devpath(self):
        return self.location.split("-", 1)[1] if "-" in self.location else "0"

    def record(self):
        s = self.spec
        desc = device_descriptor(s)
        config, iface_class = config_descriptor(s)
        lines = [
            f"P: {self.sys_path()}", f"N: bus/usb/{self.bus:03d}/{self.devnum:03d}",
            f"E: DEVNAME={self.node}", "E: DEVTYPE=usb_device", "E: DRIVER=usb", "E: SUBSYSTEM=usb",
            f"E: BUSNUM={self.bus:03d}", f"E: DEVNUM={self.devnum:03d}",
            f"E: PRODUCT={s['vendor']:x}/{s['product']:x}/100",
            f"A: busnum={self.bus}", f"A: devnum={self.devnum}", f"A: devpath={self.devpath()}",
            f"A: idVendor={h4(s['vendor'])}", f"A: idProduct={h4(s['product'])}", "A: bcdDevice=0100",
            f"A: bDeviceClass={desc[4]:02x}", "A: bDeviceSubClass=00", f"A: bDeviceProtocol={desc[6]:02x}",
            f"A: version= {'3.00' if s.get('usb3') else '2.00'}", f"A: speed={5000 if s.get('usb3') else 480}",
            "A: bNumConfigurations=1", "A: bConfigurationValue=1", "A: bNumInterfaces= 1",
            f"H: descriptors={(desc + config).hex()}",
        ]
        if s["kind"] == "hub":
            lines.append(f"A: maxchild={s.get('ports', 4)}")
        for key, attr in (("manufacturer", "manufacturer"), ("product_name", "product"), ("serial", "serial")):
            if s.get(key):
                lines.append(f"A: {attr}={s[key]}")
        records = ["\n".join(lines)]
        iface = f"{self.sys_path()}/{self.sys_name() if '-' in self.location else f'{self.bus}-0'}:1.0"
        records.append("\n".join([
            f"P: {iface}", "E: DEVTYPE=usb_interface", "E: SUBSYSTEM=usb",
            f"A: bInterfaceClass={iface_class:02x}", "A: bInterfaceNumber=00", "A: bAlternateSetting= 0",
        ]))
        if iface_class == 3:
            hid = f"{iface}/0003:{h4(s['vendor']).upper()}:{h4(s['product']).upper()}.{self.devnum:04X}"
            records.append("\n".join([f"P: {hid}", "E: SUBSYSTEM=hid", "E: DRIVER=hid-generic"]))
            records.append("\n".join([
                f"P: {hid}/hidraw/{self.hidraw}", f"N: {self.hidraw}", "E: SUBSYSTEM=hidraw",
                f"E: DEVNAME=/dev/{self.hidraw}", f"A: dev=244:{self.devnum}",
            ]))
        if s.get("tty"):
            tty = s["tty"]
            records.append("\n".join([f"P: {iface}/{tty}", "E: SUBSYSTEM=usb-serial", "E: DRIVER=ch341-uart"]))
            records.append("\n".join([
                # Major 4 (a real ttyUSB is 188): umockdev's isatty() says "terminal" for major 4 only.
                f"P: {iface}/{tty}/tty/{tty}", f"N: {tty}", "E: SUBSYSTEM=tty", f"E: DEVNAME=/dev/{tty}", f"A: dev=4:{64 + self.devnum}",
            ]))
        if s["kind"] == "reader":
            disk = s["disk"]
            records.append("\n".join([
                f"P: {iface}/host0/target0:0:0/0:0:0:0/block/{disk}", f"N: {disk}", "E: SUBSYSTEM=block",
                "E: DEVTYPE=disk", f"E: DEVNAME=/dev/{disk}", "A: dev=8:0", "A: removable=1",
            ]))
        return "\n\n".join(records) + "\n"

    # usbfs
    def control(self, setup, data):
        """What the device answers: ('ok', bytes in) or ('stall', reason)."""
        request_type, request, value, index, length = setup
        if request_type == 0x80 and request == GET_DESCRIPTOR:
            kind, idx = value >> 8, value & 0xFF
            if kind == 1:
                return "ok", device_descriptor(self.spec)[:length], "GET_DESCRIPTOR(DEVICE)"
            if kind == 2:
                return "ok", config_descriptor(self.spec)[0][:length], "GET_DESCRIPTOR(CONFIGURATION)"
            if kind == 3:
                strings = {1: self.spec.get("manufacturer", ""), 2: self.spec.get("product_name", ""), 3: self.spec.get("serial", "")}
                if idx == 0:
                    return "ok", bytes([4, 3, 0x09, 0x04])[:length], "GET_DESCRIPTOR(STRING 0)"
                text = strings.get(idx, "").encode("utf-16-le")
                return "ok", (bytes([2 + len(text), 3]) + text)[:length], f"GET_DESCRIPTOR(STRING {idx})"
        return "stall", b"", f"unsupported request {request_type:#04x} {request}"

    def state(self):
        return {"kind": self.kind}


class Hub(Device):
    def __init__(self, spec, sim):
        super().__init__(spec, sim)
        self.ports = spec.get("ports", 4)
        self.switching = spec.get("power_switching", "per-port")
        self.usb3 = bool(spec.get("usb3"))
        self.powered = {p: True for p in range(1, self.ports + 1)}
        self.overcurrent = set(spec.get("overcurrent", []))

    def child_at(self, port):
        prefix = f"{self.location}." if "-" in self.location else f"{self.bus}-"
        return self.sim.devices.get(f"{prefix}{port}")

    def port_status(self, port):
        powered = self.powered[port]
        connected = powered and self.child_at(port) is not None
        status = 0
        if connected:
            status |= 0x0001 | 0x0002  # connection, enable
            if not self.usb3:
                status |= 0x0400  # high speed
        if port in self.overcurrent:
            status |= 0x0008
        if powered:
            status |= 0x0200 if self.usb3 else 0x0100
        return status

    def hub_descriptor(self):
        characteristics = {"ganged": 0x00, "per-port": 0x01, "none": 0x02}[self.switching]
        if self.usb3:
            return struct.pack("<BBBHBBBH", 12, 0x2A, self.ports, characteristics, 50, 0, 0, 0)
        return struct.pack("<BBBHBBBB", 9, 0x29, self.ports, characteristics, 50, 0, 0, 0xFF)

    def control(self, setup, data):
        request_type, request, value, index, length = setup
        if request_type == 0xA0 and request == GET_DESCRIPTOR and value >> 8 in (0x29, 0x2A):
            return "ok", self.hub_descriptor()[:length], "GET_DESCRIPTOR(HUB)"
        if request_type == 0xA0 and request == GET_STATUS:
            return "ok", struct.pack("<HH", 0, 0)[:length], "GET_STATUS(HUB)"
        if request_type in (0xA3, 0x23):
            port = index & 0xFF
            if port < 1 or port > self.ports:
                return "stall", b"", f"port {port} does not exist"
            if request_type == 0xA3 and request == GET_STATUS:
                return "ok", struct.pack("<HH", self.port_status(port), 0)[:length], f"GET_STATUS(port {port})"
            if request in (SET_FEATURE, CLEAR_FEATURE):
                name = PORT_FEATURES.get(value, str(value))
                what = f"{'SET' if request == SET_FEATURE else 'CLEAR'}_FEATURE({name}) port {port}"
                if value == PORT_POWER:
                    if self.switching != "none":
                        # A ganged hub switches every port together, whichever is named.
                        for p in (self.powered if self.switching == "ganged" else [port]):
                            self.powered[p] = request == SET_FEATURE
                    return "ok", b"", what
                return "ok", b"", what
        return super().control(setup, data)

    def state(self):
        return {"kind": "hub", "ports": {str(p): {"powered": self.powered[p], "status": hex(self.port_status(p))}
                                         for p in range(1, self.ports + 1)}}


class Ftdi(Device):
    """The SDWire's FT200X: CBUS bitbang through SET_BITMODE, pins through READ_PINS."""

    def __init__(self, spec, sim):
        super().__init__(spec, sim)
        self.pins = 0x01 if spec.get("mux", "host") == "host" else 0x00

    def mux(self):
        return "host" if self.pins & 0x01 else "dut"

    def control(self, setup, data):
        request_type, request, value, index, length = setup
        if request_type == 0x40 and request == 0x0B:
            mode, bits = value >> 8, value & 0xFF
            if mode == 0x20:
                before = self.mux()
                self.pins = bits & (bits >> 4) & 0x0F
                self.sim.move_card(self, before, self.mux())
                return "ok", b"", f"SET_BITMODE(CBUS, {bits:#04x}) -> {self.mux()}"
            return "ok", b"", f"SET_BITMODE({mode:#04x}, {bits:#04x})"
        if request_type == 0xC0 and request == 0x0C:
            return "ok", bytes([self.pins])[:length], f"READ_PINS -> {self.pins:#04x}"
        if request_type == 0x40:
            return "ok", b"", f"FTDI vendor request {request:#04x}"
        return super().control(setup, data)

    def state(self):
        return {"kind": "sdwire", "mux": self.mux(), "pins": self.pins, "disk": self.sim.root + f"/dev/{self.spec['disk']}"}


class HidDevice(Device):
    """A HID device answered through its hidraw node (a pty umockdev owns)."""

    def __init__(self, spec, sim):
        super().__init__(spec, sim)
        self.hidraw = f"hidraw{sim.next_hidraw()}"
        self.master = None

    def start(self):
        self.master = self.sim.testbed.get_dev_fd(f"/dev/{self.hidraw}")
        threading.Thread(target=self.serve, daemon=True).start()

    # The bytes of one write(): the report ID byte and the device's output report.
    report_size = 65

    def serve(self):
        pending = b""
        for data in pty_reads(self.master):
            pending += data
            # A pty joins writes made in quick succession; hidraw keeps them apart, so split by the report's size.
            while len(pending) >= self.report_size:
                report, pending = pending[:self.report_size], pending[self.report_size:]
                with lock:
                    reply, what = self.on_report(report)
                    log({"device": self.location, "hidraw": f"/dev/{self.hidraw}", "write": report.hex(), "decoded": what})
                    for r in reply:
                        os.write(self.master, r)
                        log({"device": self.location, "hidraw": f"/dev/{self.hidraw}", "sent": r.hex()})

    def on_report(self, report):
        return [], "ignored"


class Ykush(HidDevice):
    UP = {0x11: [1], 0x12: [2], 0x13: [3], 0x1A: [1, 2, 3]}
    DOWN = {0x01: [1], 0x02: [2], 0x03: [3], 0x0A: [1, 2, 3]}

    def __init__(self, spec, sim):
        super().__init__(spec, sim)
        self.ports = {1: True, 2: True, 3: True}

    def on_report(self, report):
        # hidraw: a report ID byte (0: the YKUSH numbers no reports) and the 64-byte report.
        if report[0] != 0:
            return [], f"malformed: {len(report)} bytes"
        cmd = report[1]
        if cmd in self.UP or cmd in self.DOWN:
            on = cmd in self.UP
            for p in (self.UP if on else self.DOWN)[cmd]:
                self.ports[p] = on
            ports = (self.UP if on else self.DOWN)[cmd]
            what = f"port {'all' if len(ports) == 3 else ports[0]} {'up' if on else 'down'}"
            return [bytes([0x01, cmd]) + bytes(62)], what
        if cmd in (0x21, 0x22, 0x23):
            port = cmd - 0x20
            return [bytes([0x01, (0x10 if self.ports[port] else 0x00) | port]) + bytes(62)], f"status of port {port}"
        return [bytes([0x00, cmd]) + bytes(62)], f"unknown command {cmd:#04x}"

    def state(self):
        return {"kind": "ykush", "ports": {str(p): on for p, on in self.ports.items()}}


class NoyitoHid(HidDevice):
    # Upstream writes 5 bytes: report ID 0 and the 4-byte command.
    report_size = 5

    def __init__(self, spec, sim):
        super().__init__(spec, sim)
        self.channels = {c: False for c in range(1, spec.get("channels", 4) + 1)}

    def on_report(self, report):
        if len(report) < 5 or report[0] != 0 or report[1] != 0xA0:
            return [], f"malformed: {report.hex()}"
        ch, st, checksum = report[2], report[3], report[4]
        if (0xA0 + ch + st) & 0xFF != checksum:
            return [], f"bad checksum {checksum:#04x}"
        if ch == 0x0F and st == 0x02:
            text = "".join(f"CH{c}:{'ON' if on else 'OFF'}\r\n" for c, on in self.channels.items()).encode()
            # The board sends its answer as 8-byte input reports.
            return [text[i:i + 8].ljust(8, b"\0") for i in range(0, len(text), 8)], "status of all channels"
        if ch in self.channels and st in (0, 1):
            self.channels[ch] = st == 1
            return [], f"channel {ch} {'on' if st else 'off'}"
        return [], f"unknown command {ch:#04x} {st:#04x}"

    def state(self):
        return {"kind": "noyito-hid", "channels": {str(c): on for c, on in self.channels.items()}}


class SerialDevice(Device):
    """A USB serial adapter whose tty is a pty umockdev owns; what the command writes is logged."""

    def __init__(self, spec, sim):
        super().__init__(spec, sim)
        self.tty = spec["tty"]
        self.master = None
        self.pending = b""

    def start(self):
        self.master = self.sim.testbed.get_dev_fd(f"/dev/{self.tty}")
        # Terminal ioctls (tcgetattr, tcsetattr, ...) go to the pty itself: umockdev's preload
        # answers none on an emulated node without a handler.
        handler = UMockdev.IoctlBase()
        handler.connect("handle-ioctl", lambda _h, client: tty_ioctl(client, self.location, f"/dev/{self.tty}"))
        self.sim.testbed.attach_ioctl(f"/dev/{self.tty}", handler)
        self.tty_handler = handler
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        for data in pty_reads(self.master):
            with lock:
                log({"device": self.location, "tty": f"/dev/{self.tty}", "received": data.hex()})
                self.pending += data
                for reply, what in self.on_bytes():
                    log({"device": self.location, "tty": f"/dev/{self.tty}", "decoded": what})
                    if reply:
                        os.write(self.master, reply)
                        log({"device": self.location, "tty": f"/dev/{self.tty}", "sent": reply.hex()})

    def on_bytes(self):
        self.pending = b""
        return []


class NoyitoSerial(SerialDevice):
    def __init__(self, spec, sim):
        super().__init__(spec, sim)
        self.channels = {1: False, 2: False}

    def on_bytes(self):
        out = []
        while self.pending:
            if self.pending[0] == 0xFF:
                self.pending = self.pending[1:]
                text = "".join(f"CH{c}:{'ON' if on else 'OFF'} \r\n" for c, on in self.channels.items())
                out.append((text.encode(), "status query"))
            elif self.pending[0] == 0xA0:
                if len(self.pending) < 4:
                    break
                _, ch, st, checksum = self.pending[:4]
                self.pending = self.pending[4:]
                if (0xA0 + ch + st) & 0xFF != checksum:
                    out.append((b"", f"bad checksum {checksum:#04x}"))
                elif ch in self.channels and st in (0, 1):
                    self.channels[ch] = st == 1
                    out.append((b"", f"channel {ch} {'on' if st else 'off'}"))
                else:
                    out.append((b"", f"unknown command {ch:#04x} {st:#04x}"))
            else:
                out.append((b"", f"stray byte {self.pending[0]:#04x}"))
                self.pending = self.pending[1:]
        return out

    def state(self):
        return {"kind": "noyito-serial", "channels": {str(c): on for c, on in self.channels.items()}}


KINDS = {"hub": Hub, "ftdi": Ftdi, "ykush": Ykush, "noyito-hid": NoyitoHid, "noyito-serial": NoyitoSerial}


class UsbDevices(Simulation):
    def __init__(self, testbed, spec):
        super().__init__(testbed, spec)
        self.devices = {}
        self.hidraws = 0
        self.stash = {}
        specs = []
        for d in spec["devices"]:
            specs.extend(expand(d))
        # Root hubs for every bus used, unless given.
        for bus in sorted({int(d["location"].split("-")[0]) for d in specs}):
            if not any(d["location"] == str(bus) for d in specs):
                specs.append({"location": str(bus), "kind": "hub", "vendor": 0x1D6B, "product": 0x0002, "ports": 8,
                              "manufacturer": "Linux 6.1.0 xhci-hcd", "product_name": "xHCI Host Controller"})
        specs.sort(key=lambda d: (d["location"].count("-") + d["location"].count("."), d["location"]))
        devnums = {}
        for d in specs:
            bus = int(d["location"].split("-")[0])
            devnums[bus] = devnums.get(bus, 0) + 1
            d.setdefault("devnum", devnums[bus])
            kind = KINDS.get(d["kind"], SerialDevice if d.get("tty") else Device)
            self.devices[d["location"]] = kind(d, self)
        for dev in self.devices.values():
            self.testbed.add_from_string(dev.record())
            if dev.spec.get("mode"):
                os.chmod(self.root + dev.node, int(dev.spec["mode"], 8))
            handler = UMockdev.IoctlBase()
            handler.connect("handle-ioctl", lambda _h, client, dev=dev: handle_ioctl(dev, client))
            handler.connect("client-connected", lambda _h, client, dev=dev: log({"device": dev.location, "open": dev.node}))
            self.testbed.attach_ioctl(dev.node, handler)
            if isinstance(dev, (HidDevice, SerialDevice)):
                dev.start()
                if dev.spec.get("mode"):
                    node = dev.hidraw if isinstance(dev, HidDevice) else dev.tty
                    os.chmod(f"{self.root}/dev/{node}", int(dev.spec["mode"], 8))
            if dev.kind == "reader":
                path = f"{self.root}/dev/{dev.spec['disk']}"
                with open(path, "wb") as f:
                    f.truncate(dev.spec["disk_size"])
        for dev in self.devices.values():
            if isinstance(dev, Ftdi) and dev.mux() == "dut":
                self.move_card(dev, "host", "dut")

    def next_hidraw(self):
        self.hidraws += 1
        return self.hidraws - 1

    def parent_location(self, location):
        if "." in location:
            return location.rsplit(".", 1)[0]
        return location.split("-")[0]

    def move_card(self, ftdi, before, after):
        """The reader shows the card only while the host has it: the disk is empty (no medium) otherwise."""
        if before == after:
            return
        path = f"{self.root}/dev/{ftdi.spec['disk']}"
        if after == "dut":
            with open(path, "rb") as f:
                self.stash[path] = f.read()
            with open(path, "wb"):
                pass
        else:
            with open(path, "wb") as f:
                f.write(self.stash.pop(path, b""))

    def state(self):
        return {loc: dev.state() for loc, dev in self.devices.items()}

    def answer(self, words):
        if words and words[0] == "state":
            return self.state()
        return super().answer(words)

    def command_ended(self):
        time.sleep(0.05)
        final = self.spec.get("final_state")
        if not final:
            return
        # The testbed goes with this process: keep each card reader's disk as the host saw it last, and the state.
        with lock:
            state = self.state()
            for loc, dev in state.items():
                if dev.get("disk"):
                    kept = f"{final}.{loc}.disk"
                    shutil.copyfile(dev["disk"], kept)
                    dev["disk"] = kept
            with open(final, "w") as f:
                json.dump(state, f)


DEFAULT_IDS = {
    "ykush": (0x04D8, 0xF2F7, "YKUSH"),
    "noyito-hid": (0x140B, 0x07D7, "HID Relay"),
    "noyito-serial": (0x1A86, 0x7523, "USB Serial"),
}


def expand(d):
    """Default ids by kind; an sdwire is three devices: its hub, the card reader on port 1 and the FT200X on port 2."""
    if d["kind"] != "sdwire":
        d = dict(d)
        vendor, product, name = DEFAULT_IDS.get(d["kind"], (None, None, None))
        d.setdefault("vendor", vendor)
        d.setdefault("product", product)
        if name:
            d.setdefault("product_name", name)
        if d["kind"] == "noyito-serial":
            d.setdefault("tty", "ttyUSB0")
        return [d]
    loc, disk = d["location"], d.get("disk", "sda")
    reader_port = d.get("reader_port", 1)
    return [
        {"location": loc, "kind": "hub", "vendor": 0x0424, "product": 0x2640, "ports": 3, "product_name": "USB2640 Hub"},
        {"location": f"{loc}.{reader_port}", "kind": "reader", "vendor": 0x0424, "product": 0x4050,
         "product_name": "Ultra Fast Media Reader", "serial": "000000264001", "disk": disk,
         "disk_size": d.get("disk_size", 1 << 20)},
        {"location": f"{loc}.2", "kind": "ftdi", "vendor": d.get("vendor", 0x04E8), "product": d.get("product", 0x6001),
         "manufacturer": "SRPOL", "product_name": d.get("product_name", "sd-wire"), "serial": d.get("serial", "sdwire-1"),
         "mux": d.get("mux", "host"), "disk": disk, "mode": d.get("mode")},
    ]


TTY_IOCTLS = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF", 0x802C542A: "TCGETS2",
              0x402C542B: "TCSETS2", 0x5415: "TIOCMGET", 0x5416: "TIOCMBIS", 0x5417: "TIOCMBIC", 0x540B: "TCFLSH"}


def tty_ioctl(client, location, node):
    request = client.get_request()
    pass_through(client)
    log({"device": location, "tty": node, "ioctl": TTY_IOCTLS.get(request, hex(request))})
    return True


def handle_ioctl(dev, client):
    request = client.get_request()
    name = USBDEVFS.get(request)
    if name is None:
        return pass_through(client)
    with lock:
        arg = client.get_arg()
        if name == "USBDEVFS_SUBMITURB":
            return submit(dev, client, arg)
        if name in ("USBDEVFS_REAPURB", "USBDEVFS_REAPURBNDELAY"):
            done = dev.urbs.get(client, [])
            if not done:
                client.complete(-1, EAGAIN)
                return True
            target = arg.resolve(0, 8)
            target.set_ptr(0, done.pop(0))
            client.complete(0, 0)
            return True
        if name == "USBDEVFS_DISCARDURB":
            # Every URB completes when it is submitted: nothing is ever left to discard.
            client.complete(-1, EINVAL)
            return True
        log({"device": dev.location, "ioctl": name})
        if name == "USBDEVFS_GET_CAPABILITIES":
            data = arg.resolve(0, 4)
            data.update(0, struct.pack("<I", CAP_ZERO_PACKET | CAP_BULK_CONTINUATION | CAP_NO_PACKET_SIZE_LIM))
        elif name == "USBDEVFS_GETDRIVER":
            client.complete(-1, ENODATA)  # no kernel driver bound to the interface
            return True
        elif name == "USBDEVFS_CONTROL":
            data = arg.resolve(0, 24)
            raw = bytes(data.retrieve())
            setup = SETUP.unpack_from(raw, 0)
            buf = data.resolve(16, setup[4]) if setup[4] else None
            outcome, answer = transfer(dev, setup, bytes(buf.retrieve()) if buf else b"")
            if outcome != "ok":
                client.complete(-1, EPIPE)
                return True
            if setup[0] & 0x80 and answer:
                buf.update(0, answer)
            client.complete(len(answer) if setup[0] & 0x80 else setup[4], 0)
            return True
        client.complete(0, 0)
        return True


def transfer(dev, setup, out):
    """One control transfer, answered by the device and logged."""
    request_type, request, value, index, length = setup
    data = out[:length] if not request_type & 0x80 else b""
    outcome, answer, what = dev.control(setup, data)
    record = {"device": dev.location, "transfer": "control", "bmRequestType": f"{request_type:#04x}", "bRequest": request,
              "wValue": f"{value:#06x}", "wIndex": index, "wLength": length, "decoded": what, "result": outcome}
    if data:
        record["data"] = data.hex()
    if outcome == "ok" and request_type & 0x80:
        record["answer"] = answer.hex()
    log(record)
    return outcome, answer


def submit(dev, client, arg):
    data = arg.resolve(0, URB.size)
    fields = URB.unpack(bytes(data.retrieve()))
    urb_type, endpoint, _status, _flags, _buffer, length = fields[:6]
    if urb_type != URB_TYPE_CONTROL or endpoint & 0x7F != 0:
        log({"device": dev.location, "ioctl": "USBDEVFS_SUBMITURB", "type": urb_type, "endpoint": endpoint, "result": "EINVAL"})
        client.complete(-1, EINVAL)
        return True
    buf = data.resolve(16, length)
    raw = bytes(buf.retrieve())
    setup = SETUP.unpack_from(raw, 0)
    outcome, answer = transfer(dev, setup, raw[8:])
    if outcome == "ok":
        if setup[0] & 0x80 and answer:
            buf.update(8, answer)
        actual = len(answer) if setup[0] & 0x80 else setup[4]
        data.update(4, struct.pack("<i", 0))
    else:
        actual = 0
        data.update(4, struct.pack("<i", -EPIPE))
    data.update(28, struct.pack("<i", actual))
    dev.urbs.setdefault(client, []).append(data)
    client.complete(0, 0)
    return True


if __name__ == "__main__":
    run(__doc__, UsbDevices)
