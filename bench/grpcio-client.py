"""
The client of the exporter call benchmark (bench/exporter-call.ts): grpcio's
C-core sync client, the lightest gRPC client at hand, so the figures are the
servers' and not a JavaScript client's garbage collector. It sends the same
pre-encoded DriverCall to each target in turn, in alternating rounds, and
prints one JSON object: per target, the latencies in µs of the sequential calls,
sequential calls/s, and calls/s with 16 calls in flight on the one channel.

usage: grpcio-client.py REQUEST_HEX CALLS ROUNDS HOST:PORT...
"""

import json
import sys
import threading
import time

import grpc

METHOD = "/jumpstarter.v1.ExporterService/DriverCall"


def concurrent(call, n, in_flight=16):
    """Calls/s with `in_flight` calls always outstanding, n in all."""
    done = threading.Event()
    lock = threading.RLock()  # a future already done runs its callback at once, in this thread
    state = {"started": 0, "finished": 0}

    def launch():
        state["started"] += 1
        call.future(REQUEST).add_done_callback(finished)

    def finished(fut):
        fut.result()
        with lock:
            state["finished"] += 1
            if state["finished"] == n:
                done.set()
            elif state["started"] < n:
                launch()

    start = time.perf_counter()
    with lock:
        for _ in range(min(in_flight, n)):
            launch()
    done.wait()
    return n / (time.perf_counter() - start)


def main():
    global REQUEST
    REQUEST = bytes.fromhex(sys.argv[1])
    calls, rounds, targets = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    stubs = []
    for t in targets:
        channel = grpc.insecure_channel(t)
        stubs.append(channel.unary_unary(METHOD))  # bytes in, bytes out
    out = [{"lat": [], "perSecond": 0.0, "concurrent": 0.0} for _ in targets]
    for _ in range(200):
        for s in stubs:
            s(REQUEST)
    per = -(-calls // rounds)
    for _ in range(rounds):
        # Each target in turn within a round, so a burst of load hits them all.
        for s, o in zip(stubs, out):
            start = time.perf_counter()
            for _ in range(per):
                t = time.perf_counter_ns()
                s(REQUEST)
                o["lat"].append((time.perf_counter_ns() - t) / 1000)
            o["perSecond"] += per / (time.perf_counter() - start) / rounds
            o["concurrent"] += concurrent(s, per) / rounds
    print(json.dumps(out))


if __name__ == "__main__":
    main()
