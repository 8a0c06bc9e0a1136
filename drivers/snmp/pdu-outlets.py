#!/usr/bin/env python3
"""
The outlets of a Raritan PX2-style PDU, for snmpd's pass_persist (tests only).

snmpd hands us every request under .1.3.6.1.4.1.13742.6 (Raritan's PDU2-MIB) and we
answer as the PDU does for pdu 1:
  .4.1.2.1.2.1.N  switchingOperation  INTEGER rw: off(0), on(1), cycle(2)
  .4.1.2.1.3.1.N  outletSwitchingState INTEGER ro: on(7), off(8)
  .5.4.3.1.4.1.N.S measurementsOutletSensorValue Gauge32 ro: S=1 current in mA,
                  S=4 voltage in V, S=5 active power in W (what the outlet draws while on)
The outlets' states live in a JSON file, {"outlets": {"1": "off", ...}, "sets": [...]},
rewritten after each change, so a test sees what the agent was told.

usage: pdu-outlets.py STATE_FILE OUTLETS
"""

import json
import os
import sys

BASE = (1, 3, 6, 1, 4, 1, 13742, 6)
OPERATION = BASE + (4, 1, 2, 1, 2, 1)
STATE = BASE + (4, 1, 2, 1, 3, 1)
SENSOR = BASE + (5, 4, 3, 1, 4, 1)
DRAW = {1: 1250, 4: 230, 5: 287}  # mA, V, W of an outlet that is on

state_file, count = sys.argv[1], int(sys.argv[2])
if os.path.exists(state_file):
    with open(state_file) as f:
        data = json.load(f)
else:
    data = {"outlets": {str(n): "off" for n in range(1, count + 1)}, "sets": []}


def save():
    tmp = state_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, state_file)


def is_on(n):
    return data["outlets"][str(n)] == "on"


def values():
    """Every OID we serve, with its type and value, in OID order."""
    out = {}
    for n in range(1, count + 1):
        out[OPERATION + (n,)] = ("integer", 1 if is_on(n) else 0)
        out[STATE + (n,)] = ("integer", 7 if is_on(n) else 8)
        for sensor, draw in DRAW.items():
            out[SENSOR + (n, sensor)] = ("gauge", draw if is_on(n) or sensor == 4 else 0)
    return dict(sorted(out.items()))


def parse(oid):
    return tuple(int(x) for x in oid.strip().strip(".").split("."))


def show(oid):
    return "." + ".".join(str(x) for x in oid)


def answer(*lines):
    sys.stdout.write("\n".join(str(x) for x in lines) + "\n")
    sys.stdout.flush()


save()
# readline, not iteration: iterating sys.stdin reads ahead and would wait for requests that never come.
while True:
    command = sys.stdin.readline()
    if not command:
        break
    command = command.strip()
    if command == "PING":
        answer("PONG")
    elif command in ("get", "getnext"):
        oid = parse(sys.stdin.readline())
        table = values()
        if command == "get":
            found = (oid, table[oid]) if oid in table else None
        else:
            found = next(((k, v) for k, v in table.items() if k > oid), None)
        if found:
            (key, (kind, value)) = found
            answer(show(key), kind, value)
        else:
            answer("NONE")
    elif command == "set":
        oid = parse(sys.stdin.readline())
        kind, _, value = sys.stdin.readline().strip().partition(" ")
        outlet = oid[-1] if oid[:-1] == OPERATION else None
        if outlet is None or not 1 <= outlet <= count:
            answer("not-writable")
        elif kind != "integer":
            answer("wrong-type")
        elif value not in ("0", "1", "2"):
            answer("wrong-value")
        else:
            # cycle (2) ends with the outlet on, as on the PDU.
            data["outlets"][str(outlet)] = "off" if value == "0" else "on"
            data["sets"].append([outlet, int(value)])
            save()
            answer("DONE")
