"""
What the device simulations for tests share (drivers/gpiod/testing/umockdev-gpiochip.py,
drivers/usb-common/testing/umockdev-usb.py): each is a program

  SCRIPT SPEC.json LOG.jsonl CONTROL.sock -- COMMAND [ARGS...]

that builds its devices in a umockdev testbed (Debian's `umockdev`, through its Python
bindings: `gir1.2-umockdev-1.0`, `python3-gi`) from SPEC.json, runs COMMAND under
umockdev's LD_PRELOAD library, logs what reaches the devices to LOG.jsonl (one JSON
object a line) and answers one command a line on CONTROL.sock (one JSON answer a line).
It ends when COMMAND does, with its exit code (128 + N for a signal N). SIGTERM, SIGINT
and SIGHUP are passed on to COMMAND. SPEC.json's "run_as" ("uid:gid", optional) runs
COMMAND as that user, as an exporter's user meets permissions.

A script defines a Simulation and calls run(__doc__, ItsSimulation); drivers/testing/
umockdev-sim.ts starts one from a test.
"""

import errno
import json
import os
import select
import signal
import socketserver
import stat
import subprocess
import sys
import threading
import time

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

# Held while the devices' state changes or is read: umockdev's handlers, the pty readers
# and CONTROL.sock run on threads of their own.
lock = threading.RLock()
_log_file = None


def log(record):
    """One line of LOG.jsonl."""
    with lock:
        _log_file.write(json.dumps(record) + "\n")
        _log_file.flush()


def pass_through(client):
    """Lets an emulated node's pty answer an ioctl that is not the device's (a runtime asking whether the fd is a terminal, say)."""
    result, errno_ = client.execute()
    client.complete(result, errno_)
    return True


def pty_reads(master):
    """What the command writes to an emulated node (a pty umockdev owns), chunk by chunk, forever."""
    while True:
        select.select([master], [], [])
        try:
            yield os.read(master, 4096)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            # A pty master reads EIO while no one has the node open: poll until someone does.
            time.sleep(0.01)


class Simulation:
    """The devices of one run, built in `testbed` from SPEC.json before the command starts."""

    def __init__(self, testbed, spec):
        self.testbed = testbed
        self.root = testbed.get_root_dir()
        self.spec = spec

    def answer(self, words):
        """The JSON answer to one line of CONTROL.sock, split in words (called holding `lock`)."""
        return {"error": f"unknown command {' '.join(words)!r}"}

    def command_ended(self):
        """After the command has exited, before this program does."""


def _serve_control(path, sim):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for raw in self.rfile:
                try:
                    with lock:
                        answer = sim.answer(raw.decode().split())
                except (IndexError, KeyError, ValueError) as e:
                    answer = {"error": f"bad command {raw!r}: {e}"}
                self.wfile.write((json.dumps(answer) + "\n").encode())
                self.wfile.flush()

    server = socketserver.ThreadingUnixStreamServer(path, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def _as_user(root, run_as, command):
    # The testbed is theirs to read, and to make sockets in (umockdev's stand-in for the
    # udev netlink monitor libusb opens).
    uid, gid = (int(x) for x in run_as.split(":"))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o777)
        for name in filenames:
            if stat.S_ISSOCK(os.lstat(os.path.join(dirpath, name)).st_mode):
                os.chmod(os.path.join(dirpath, name), 0o777)
    os.chmod(root, 0o777)
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]


def run(usage, simulation):
    """The whole program: `simulation(testbed, spec)` builds the devices; then COMMAND runs under them."""
    global _log_file
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        sys.exit(usage)
    spec_path, log_path, control_path, command = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
    with open(spec_path) as f:
        spec = json.load(f)
    _log_file = open(log_path, "a")
    sim = simulation(UMockdev.Testbed.new(), spec)
    _serve_control(control_path, sim)
    preload = os.environ.get("LD_PRELOAD")
    env = dict(os.environ, UMOCKDEV_DIR=sim.root,
               LD_PRELOAD="libumockdev-preload.so.0" + (f":{preload}" if preload else ""))
    if spec.get("run_as"):
        command = _as_user(sim.root, spec["run_as"], command)
    child = subprocess.Popen(command, env=env)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    code = child.wait()
    sim.command_ended()
    sys.exit(128 - code if code < 0 else code)
