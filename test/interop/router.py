"""
Two callers of a router's RouterService.Stream, shaped like upstream's client
and exporter (jumpstarter.streams.router / connect_router_stream): each on its
own TLS channel with the router token as access-token call credentials, so
grpc sends `authorization: Bearer <token>`. It runs one scenario and prints
what it observed as one JSON line, for test/interop-router.test.ts to check.

usage: router.py ADDRESS CA_PEM SCENARIO [TOKEN]

Scenarios:
  pair TOKEN    frames both ways (small ones, ~1 MiB, a PING), then the client
                sends GOAWAY and half-closes, the exporter answers late, then
                half-closes too; each side's frames and final status
  badtoken TOKEN  one call with a token the router refuses
  notoken       one call with no authorization at all
  vanish TOKEN  three pairs, in each of which the client goes: it cancels its
                call (TOKEN-cancel), it cancels after the exporter's GOAWAY and
                half-close (TOKEN-late), its process is killed (TOKEN-kill);
                the exporter's status in each
  third TOKEN   a pair, then a third call with the same token
  lonely TOKEN  one call whose peer never comes
"""

import asyncio
import hashlib
import json
import random
import sys

import grpc

sys.dont_write_bytecode = True  # keeps test/interop free of __pycache__

from client import CHANNEL_OPTIONS  # noqa: E402
from protos import ROUTER_STREAM, router_pb2  # noqa: E402

DATA = router_pb2.FRAME_TYPE_DATA
PING = router_pb2.FRAME_TYPE_PING
GOAWAY = router_pb2.FRAME_TYPE_GOAWAY
STEP = 10  # seconds any single step may take
CA_FILE = None


def open_channel(address, ca, token):
    """upstream's connect_router_stream: TLS with the CA, the token as call credentials."""
    credentials = grpc.ssl_channel_credentials(ca)
    if token is not None:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS)


def open_stream(channel):
    stream = channel.stream_stream(
        ROUTER_STREAM,
        request_serializer=router_pb2.StreamRequest.SerializeToString,
        response_deserializer=router_pb2.StreamResponse.FromString,
    )
    return stream(metadata=())


def describe(frame_type, payload=b""):
    return {
        "type": router_pb2.FrameType.Name(frame_type).removeprefix("FRAME_TYPE_"),
        "len": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }


class Side:
    """One call: what it sent, and a reader that keeps every frame until the end of the call."""

    def __init__(self, name, call):
        self.name = name
        self.call = call
        self.sent = []
        self.frames = []
        self.arrived = asyncio.Event()
        self.error = None
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            while True:
                frame = await self.call.read()
                if frame == grpc.aio.EOF:
                    self.frames.append({"type": "EOF"})
                    return
                self.frames.append(describe(frame.frame_type, frame.payload))
                self.arrived.set()
        except grpc.aio.AioRpcError as e:
            self.error = {"code": e.code().name, "details": e.details()}
        finally:
            self.arrived.set()

    async def send(self, frame_type, payload=b""):
        await asyncio.wait_for(self.call.write(router_pb2.StreamRequest(frame_type=frame_type, payload=payload)), STEP)
        self.sent.append(describe(frame_type, payload))

    async def send_eof(self):
        """upstream's RouterStream.send_eof: GOAWAY, then half-close."""
        await self.send(GOAWAY)
        await asyncio.wait_for(self.call.done_writing(), STEP)

    async def wait_for(self, predicate, what):
        """Waits until the frames so far satisfy `predicate`; fails with what was seen if the call ends first."""
        async def until():
            while not predicate(self.frames):
                if self.reader.done():
                    raise RuntimeError(f"{self.name} ended before {what}: {self.frames} {self.error}")
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(until(), STEP)

    async def outcome(self):
        """How the call ended; `ended: false` when it had not within STEP seconds."""
        try:
            await asyncio.wait_for(asyncio.shield(self.reader), STEP)
        except asyncio.TimeoutError:
            return {"ended": False, "frames": self.frames, "sent": self.sent}
        code = await asyncio.wait_for(self.call.code(), STEP)
        details = await self.call.details()
        trailers = await self.call.trailing_metadata()
        return {
            "ended": True,
            "frames": self.frames,
            "sent": self.sent,
            "read_error": self.error,
            "code": code.name,
            "status": code.value[0],
            "details": details,
            "trailing_metadata": {k: v for k, v in (trailers or ()) if not k.startswith("grpc-")},
        }


def has_type(frame_type):
    name = router_pb2.FrameType.Name(frame_type).removeprefix("FRAME_TYPE_")
    return lambda frames: any(f["type"] == name for f in frames)


def big_payload(seed):
    return random.Random(seed).randbytes(1024 * 1024 + 17)


async def exchange(client, exporter):
    """Both sides write concurrently (a MiB each way needs flow control on both legs at once)."""

    async def talk(side, seed):
        for i in range(3):
            await side.send(DATA, f"{side.name} small {i}".encode())
        await side.send(DATA, big_payload(seed))
        await side.send(PING)
        for i in range(3, 6):
            await side.send(DATA, f"{side.name} small {i}".encode())

    await asyncio.gather(talk(client, 1), talk(exporter, 2))
    for side, peer in ((client, exporter), (exporter, client)):
        count = len(peer.sent)
        await side.wait_for(lambda frames: len(frames) >= count, f"the {count} frames {peer.name} sent")


async def pair(address, ca, token):
    async with open_channel(address, ca, token) as cch, open_channel(address, ca, token) as ech:
        client = Side("client", open_stream(cch))
        exporter = Side("exporter", open_stream(ech))
        # The router answers with headers once both sides are there.
        metadata = await asyncio.wait_for(asyncio.gather(client.call.initial_metadata(), exporter.call.initial_metadata()), STEP)
        await exchange(client, exporter)

        await client.send_eof()
        await exporter.wait_for(has_type(GOAWAY), "the client's GOAWAY")
        # The client's half of the call is over, but its call must stay open for the answer.
        await asyncio.sleep(0.3)
        open_after_half_close = {"client": not client.call.done(), "exporter": not exporter.call.done()}
        exporter_frames_after_goaway = len(exporter.frames)

        late = b"late answer after the client's GOAWAY"
        await exporter.send(DATA, late)
        await client.wait_for(lambda frames: any(f["sha256"] == describe(DATA, late)["sha256"] for f in frames if "sha256" in f), "the late answer")
        await exporter.send_eof()

        return {
            "initial_metadata": [{k: v for k, v in (m or ())} for m in metadata],
            "open_after_half_close": open_after_half_close,
            "exporter_frames_after_goaway": exporter_frames_after_goaway,
            "client": await client.outcome(),
            "exporter": await exporter.outcome(),
        }


async def refused(address, ca, token):
    async with open_channel(address, ca, token) as channel:
        side = Side("caller", open_stream(channel))
        return await side.outcome()


async def vanish(address, ca, token):
    """The client's call goes: cancelled (RST_STREAM on a connection that stays up), or its process killed."""
    out = {}
    async with open_channel(address, ca, f"{token}-cancel") as cch, open_channel(address, ca, f"{token}-cancel") as ech:
        client = Side("client", open_stream(cch))
        exporter = Side("exporter", open_stream(ech))
        await client.send(DATA, b"hello")
        await exporter.wait_for(lambda frames: len(frames) >= 1, "the client's hello")
        client.call.cancel()
        out["cancel"] = await exporter.outcome()
        out["cancel"]["client_code"] = (await client.call.code()).name
    # The exporter has said all it had to say (GOAWAY, half-close) when the client goes:
    # its call still did not end cleanly, since the client never ended its direction.
    async with open_channel(address, ca, f"{token}-late") as cch, open_channel(address, ca, f"{token}-late") as ech:
        client = Side("client", open_stream(cch))
        exporter = Side("exporter", open_stream(ech))
        await client.send(DATA, b"hello")
        await exporter.wait_for(lambda frames: len(frames) >= 1, "the client's hello")
        await exporter.send_eof()
        await client.wait_for(has_type(GOAWAY), "the exporter's GOAWAY")
        client.call.cancel()
        out["cancel_after_half_close"] = await exporter.outcome()
    async with open_channel(address, ca, f"{token}-kill") as ech:
        exporter = Side("exporter", open_stream(ech))
        # The client is a process of its own that dies without a word: its TCP connection just closes.
        holder = await asyncio.create_subprocess_exec(
            sys.executable, __file__, address, CA_FILE, "hold", f"{token}-kill", stdout=asyncio.subprocess.PIPE
        )
        try:
            line = await asyncio.wait_for(holder.stdout.readline(), STEP)
            if line.strip() != b"sent":
                raise RuntimeError(f"the holding client said {line!r}")
            await exporter.wait_for(lambda frames: len(frames) >= 1, "the killed client's hello")
        finally:
            holder.kill()
            await holder.wait()
        out["kill"] = await exporter.outcome()
    return out


async def hold(address, ca, token):
    """For `vanish`: opens a stream, sends hello, says so, and waits to be killed."""
    async with open_channel(address, ca, token) as channel:
        side = Side("client", open_stream(channel))
        await asyncio.wait_for(side.call.initial_metadata(), STEP)
        await side.send(DATA, b"hello")
        print("sent", flush=True)
        await asyncio.sleep(3600)


async def third(address, ca, token):
    async with open_channel(address, ca, token) as cch, open_channel(address, ca, token) as ech, open_channel(address, ca, token) as tch:
        client = Side("client", open_stream(cch))
        exporter = Side("exporter", open_stream(ech))
        await asyncio.wait_for(asyncio.gather(client.call.initial_metadata(), exporter.call.initial_metadata()), STEP)
        intruder = await Side("intruder", open_stream(tch)).outcome()
        # the pair is untouched by the refusal
        await client.send(DATA, b"still here")
        await exporter.wait_for(lambda frames: len(frames) >= 1, "the client's frame")
        await client.send_eof()
        await exporter.send_eof()
        return {"third": intruder, "client": await client.outcome(), "exporter": await exporter.outcome()}


async def main():
    global CA_FILE
    address, CA_FILE, name, *rest = sys.argv[1:]
    with open(CA_FILE, "rb") as f:
        ca = f.read()
    token = rest[0] if rest else None
    scenarios = {
        "pair": lambda: pair(address, ca, token),
        "badtoken": lambda: refused(address, ca, token),
        "notoken": lambda: refused(address, ca, None),
        "vanish": lambda: vanish(address, ca, token),
        "hold": lambda: hold(address, ca, token),
        "third": lambda: third(address, ca, token),
        "lonely": lambda: refused(address, ca, token),
    }
    if name not in scenarios:
        raise SystemExit(f"unknown scenario {name}")
    result = await asyncio.wait_for(scenarios[name](), 18)  # within procs.ts's 20 s
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
