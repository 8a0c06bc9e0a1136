"""
A client that talks to an exporter the way upstream's Python client does
(jumpstarter.client.client / client.core / streams.router), over Debian's
grpcio: TCP (insecure, or TLS with a CA bundle) with the passphrase
interceptors, or a Unix socket with local channel credentials. It runs one scenario and prints what it
observed as one JSON line, for test/interop.test.ts to check.

usage: client.py ADDRESS SCENARIO [--passphrase P] [--ca CA_PEM]
ADDRESS `env` means $JUMPSTARTER_HOST, as upstream's client finds the session
of the `jmp shell` it runs in.
"""

import argparse
import asyncio
import collections
import json
import os
import sys
import uuid
from collections import defaultdict
from graphlib import TopologicalSorter

import grpc
from google.protobuf import empty_pb2

sys.dont_write_bytecode = True  # keeps test/interop free of __pycache__

from protos import EXPORTER_SERVICE, ROUTER_STREAM, common_pb2, decode_value, encode_value, jumpstarter_pb2, router_pb2  # noqa: E402

PASSPHRASE_METADATA_KEY = "x-jumpstarter-passphrase"

# upstream's channel defaults (jumpstarter.common.grpc._override_default_grpc_options)
CHANNEL_OPTIONS = (
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 180000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
)

_CallDetails = collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready"))


def _with_metadata(details, extra):
    metadata = list(details.metadata or [])
    metadata.extend(extra)
    return _CallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class _Unary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, extra):
        self.extra = extra

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(_with_metadata(details, self.extra), request)


class _ServerStreaming(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, extra):
        self.extra = extra

    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(_with_metadata(details, self.extra), request)


class _Bidi(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, extra):
        self.extra = extra

    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(_with_metadata(details, self.extra), request_iterator)


def is_tcp_address(path):
    host, sep, port = path.rpartition(":")
    return bool(sep) and port.isdigit() and 1 <= int(port) <= 65535


def open_channel(address, passphrase, ca=None):
    if is_tcp_address(address):
        extra = [(PASSPHRASE_METADATA_KEY, passphrase)] if passphrase else []
        interceptors = [_Unary(extra), _ServerStreaming(extra), _Bidi(extra)] if extra else None
        if ca:
            with open(ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(f.read())
            return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS, interceptors=interceptors)
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors)
    return grpc.aio.secure_channel(f"unix://{address}", grpc.local_channel_credentials(grpc.LocalConnectionType.UDS))


class Stub:
    """The generic-API equivalent of upstream's ExporterServiceStub + RouterServiceStub."""

    def __init__(self, channel):
        def unary(name, req, resp):
            return channel.unary_unary(
                EXPORTER_SERVICE + name, request_serializer=req.SerializeToString, response_deserializer=resp.FromString
            )

        self.GetReport = unary("GetReport", empty_pb2.Empty, jumpstarter_pb2.GetReportResponse)
        self.DriverCall = unary("DriverCall", jumpstarter_pb2.DriverCallRequest, jumpstarter_pb2.DriverCallResponse)
        self.GetStatus = unary("GetStatus", jumpstarter_pb2.GetStatusRequest, jumpstarter_pb2.GetStatusResponse)
        self.LogStream = channel.unary_stream(
            EXPORTER_SERVICE + "LogStream",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=jumpstarter_pb2.LogStreamResponse.FromString,
        )
        self.StreamingDriverCall = channel.unary_stream(
            EXPORTER_SERVICE + "StreamingDriverCall",
            request_serializer=jumpstarter_pb2.StreamingDriverCallRequest.SerializeToString,
            response_deserializer=jumpstarter_pb2.StreamingDriverCallResponse.FromString,
        )
        self.Stream = channel.stream_stream(
            ROUTER_STREAM,
            request_serializer=router_pb2.StreamRequest.SerializeToString,
            response_deserializer=router_pb2.StreamResponse.FromString,
        )


def report_dict(r):
    return {
        "uuid": r.uuid,
        "parent_uuid": r.parent_uuid if r.HasField("parent_uuid") else None,
        "labels": dict(r.labels),
        "description": r.description if r.HasField("description") else None,
        "methods_description": dict(r.methods_description),
    }


def client_tree(reports):
    """Upstream's client_from_channel: parents resolved by the last report seen, children built first."""
    topo, last_seen, by_index, built = defaultdict(list), {}, {}, collections.OrderedDict()
    for index, report in enumerate(reports):
        topo[index] = []
        last_seen[report.uuid] = index
        if report.parent_uuid != "":
            topo[last_seen[report.parent_uuid]].append(index)
        by_index[index] = report
    for index in TopologicalSorter(topo).static_order():
        report = by_index[index]
        built[index] = {
            "uuid": report.uuid,
            "client": report.labels["jumpstarter.dev/client"],
            "children": {by_index[k].labels["jumpstarter.dev/name"]: built[k] for k in topo[index]},
        }
    return built.popitem(last=True)[1]


def rpc_error(e):
    return {"code": e.code().name, "details": e.details()}


async def call(stub, driver, method, *args):
    request = jumpstarter_pb2.DriverCallRequest(uuid=driver, method=method, args=[encode_value(a) for a in args])
    return decode_value((await stub.DriverCall(request)).result)


async def streaming_call(stub, driver, method, *args):
    request = jumpstarter_pb2.StreamingDriverCallRequest(uuid=driver, method=method, args=[encode_value(a) for a in args])
    return [decode_value(r.result) async for r in stub.StreamingDriverCall(request)]


async def open_stream(stub, request):
    """upstream's stream_async/resource_async: `request` metadata, then wait for the initial metadata."""
    context = stub.Stream(metadata=[("request", json.dumps(request, separators=(",", ":")))])
    metadata = dict(list(await context.initial_metadata()))
    return context, metadata


async def receive(context):
    """upstream's RouterStream.receive, skipping the empty result of PING frames; None at end of stream."""
    while True:
        frame = await context.read()
        if frame == grpc.aio.EOF or frame.frame_type == router_pb2.FRAME_TYPE_GOAWAY:
            return None
        if frame.frame_type == router_pb2.FRAME_TYPE_DATA:
            return frame.payload


async def open_and_receive(stub, request):
    context, _ = await open_stream(stub, request)
    return await receive(context)


async def outcomes(attempts):
    """The status each attempt ends with: OK, or its gRPC code and details."""
    out = {}
    for rpc, attempt in attempts.items():
        try:
            await attempt()
            out[rpc] = {"code": "OK"}
        except grpc.aio.AioRpcError as e:
            out[rpc] = rpc_error(e)
    return out


async def driver_uuid(stub, name):
    tree = client_tree((await stub.GetReport(empty_pb2.Empty())).reports)
    return tree["children"][name]["uuid"]


async def scenario(name, stub):
    match name:
        case "report":
            response = await stub.GetReport(empty_pb2.Empty())
            return {
                "uuid": response.uuid,
                "labels": dict(response.labels),
                "reports": [report_dict(r) for r in response.reports],
                "tree": client_tree(response.reports),
            }
        case "power":
            power = await driver_uuid(stub, "power")
            return {"on": await call(stub, power, "on"), "off": await call(stub, power, "off")}
        case "read":
            return {"readings": await streaming_call(stub, await driver_uuid(stub, "power"), "read")}
        case "status":
            response = await stub.GetStatus(jumpstarter_pb2.GetStatusRequest())
            return {"status": response.status, "status_version": response.status_version}
        case "logs":
            # what upstream's log_stream_async reads of a driver's log line
            logs = stub.LogStream(empty_pb2.Empty())
            await call(stub, await driver_uuid(stub, "power"), "on")
            async for entry in logs:
                if entry.message == "power on":
                    logs.cancel()
                    return {
                        "severity": entry.severity,
                        "source": common_pb2.LogSource.Name(entry.source) if entry.HasField("source") else None,
                        "driver_type": entry.driver_type,
                    }
            return {"error": "the log stream ended before 'power on'"}
        case "rejected":
            # every kind of call is refused before any driver is looked up
            some_uuid = str(uuid.uuid4())
            attempts = {
                "GetReport": lambda: stub.GetReport(empty_pb2.Empty()),
                "DriverCall": lambda: call(stub, some_uuid, "on"),
                "StreamingDriverCall": lambda: streaming_call(stub, some_uuid, "read"),
                "Stream": lambda: open_and_receive(stub, {"kind": "driver", "uuid": some_uuid, "method": "connect"}),
            }
            return await outcomes(attempts)
        case "unknown-method":
            power = await driver_uuid(stub, "power")
            attempts = {
                "DriverCall": lambda: call(stub, power, "explode"),
                "Stream": lambda: open_and_receive(stub, {"kind": "driver", "uuid": power, "method": "explode"}),
            }
            return await outcomes(attempts)
        case "echo":
            context, metadata = await open_stream(
                stub, {"kind": "driver", "uuid": await driver_uuid(stub, "echo"), "method": "connect"}
            )
            await context.write(router_pb2.StreamRequest(payload=b"hello from python"))
            echoed = await receive(context)
            # upstream's RouterStream.send_eof
            await context.write(router_pb2.StreamRequest(frame_type=router_pb2.FRAME_TYPE_GOAWAY))
            await context.done_writing()
            frame = await context.read()
            end = "eof" if frame == grpc.aio.EOF else router_pb2.FrameType.Name(frame.frame_type)
            # Beyond upstream's client, which just drops the call: our exporter ends the RPC itself.
            code = await context.code()
            return {"metadata": metadata, "echoed": echoed.decode(), "end": end, "code": code.name}
        case "gpio-power":
            # upstream's PowerClient on a gpiod PowerSwitch: on, off, cycle (off, a pause, on), read; then read_pin
            tree = client_tree((await stub.GetReport(empty_pb2.Empty())).reports)
            power = tree["children"]["power"]["uuid"]
            out = {"client": tree["children"]["power"]["client"]}
            out["on"] = await call(stub, power, "on")
            out["off"] = await call(stub, power, "off")
            await call(stub, power, "off")
            await asyncio.sleep(0.1)
            await call(stub, power, "on")
            try:
                out["read"] = {"code": "OK", "readings": await streaming_call(stub, power, "read")}
            except grpc.aio.AioRpcError as e:
                out["read"] = rpc_error(e)
            out["read_pin"] = await call(stub, power, "read_pin")
            return out
        case "http-power":
            # upstream's PowerClient on an HttpPower: on, read (each reading checked as its PowerReading
            # model does: voltage and current, numbers), off, read, cycle (off, a pause, on)
            tree = client_tree((await stub.GetReport(empty_pb2.Empty())).reports)
            power = tree["children"]["power"]["uuid"]

            async def read():
                readings = await streaming_call(stub, power, "read")
                for r in readings:
                    assert isinstance(r["voltage"], float) and isinstance(r["current"], float), r
                return readings

            out = {"client": tree["children"]["power"]["client"]}
            out["on"] = await call(stub, power, "on")
            out["read_on"] = await read()
            out["off"] = await call(stub, power, "off")
            out["read_off"] = await read()
            await call(stub, power, "off")
            await asyncio.sleep(0.1)
            await call(stub, power, "on")
            return out
        case "resource":
            power = await driver_uuid(stub, "power")
            context, metadata = await open_stream(stub, {"kind": "resource", "uuid": power, "x_jmp_content_encoding": None})
            context.cancel()
            return {"metadata": metadata}
    raise SystemExit(f"unknown scenario {name}")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("scenario")
    parser.add_argument("--passphrase")
    parser.add_argument("--ca", help="TLS: verify the exporter with this CA bundle (PEM)")
    args = parser.parse_args()
    address = os.environ["JUMPSTARTER_HOST"] if args.address == "env" else args.address
    async with open_channel(address, args.passphrase, args.ca) as channel:
        stub = Stub(channel)
        try:
            result = await asyncio.wait_for(scenario(args.scenario, stub), timeout=15)
        except grpc.aio.AioRpcError as e:
            result = {"error": rpc_error(e)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
