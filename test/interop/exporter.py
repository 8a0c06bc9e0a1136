"""
An exporter session served the way upstream's Python exporter serves one
(jumpstarter.exporter.session.Session with jumpstarter.driver.base.Driver
children), over Debian's grpcio on a Unix socket: random uuids, reports root
first with parent links, DriverCall/StreamingDriverCall looked up by exported
method name, Python exceptions mapped to gRPC codes as upstream does, and
RouterService.Stream opened from the `request` metadata.

It prints `ready` once the socket is bound, then one JSON line per driver call
it runs, for test/interop.test.ts to check.

usage: exporter.py SOCKET_PATH
"""

import asyncio
import json
import signal
import sys
from uuid import UUID, uuid4

import grpc
from google.protobuf import empty_pb2

sys.dont_write_bytecode = True  # keeps test/interop free of __pycache__

from protos import common_pb2, decode_value, encode_value, jumpstarter_pb2, router_pb2  # noqa: E402

EXPORTED = "_interop_exported"
EXPORTED_STREAM = "_interop_exported_stream"


def export(fn):
    setattr(fn, EXPORTED, True)
    return fn


def exportstream(fn):
    setattr(fn, EXPORTED_STREAM, True)
    return fn


def record(driver, method, args):
    print(json.dumps({"driver": driver, "method": method, "args": list(args)}), flush=True)


class Driver:
    client_label = ""

    def __init__(self, children=None, description=None, methods_description=None):
        self.uuid = uuid4()
        self.children = children or {}
        self.description = description
        self.methods_description = methods_description or {}

    def report(self, parent=None, name=None):
        return jumpstarter_pb2.DriverInstanceReport(
            uuid=str(self.uuid),
            parent_uuid=str(parent.uuid) if parent else None,
            labels={"jumpstarter.dev/client": self.client_label} | ({"jumpstarter.dev/name": name} if name else {}),
            description=self.description or None,
            methods_description=self.methods_description,
        )

    def enumerate(self, parent=None, name=None):
        out = [(self.uuid, parent, name, self)]
        for child_name, child in self.children.items():
            out += child.enumerate(parent=self, name=child_name)
        return out

    async def lookup(self, name, context, marker=EXPORTED):
        method = getattr(self, name, None)
        if method is None or not getattr(method, marker, False):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"method {name} not found on driver")
        return method

    async def DriverCall(self, request, context):
        method = await self.lookup(request.method, context)
        args = [decode_value(a) for a in request.args]
        try:
            result = await method(*args)
        except NotImplementedError as e:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(e))
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except Exception as e:
            await context.abort(grpc.StatusCode.UNKNOWN, str(e))
        return jumpstarter_pb2.DriverCallResponse(uuid=str(uuid4()), result=encode_value(result))

    async def StreamingDriverCall(self, request, context):
        method = await self.lookup(request.method, context)
        args = [decode_value(a) for a in request.args]
        async for result in method(*args):
            yield jumpstarter_pb2.StreamingDriverCallResponse(uuid=str(uuid4()), result=encode_value(result))


class Composite(Driver):
    client_label = "jumpstarter_driver_composite.client.CompositeClient"


class MockPower(Driver):
    client_label = "jumpstarter_driver_power.client.PowerClient"

    @export
    async def on(self, *args):
        record("power", "on", args)

    @export
    async def off(self, *args):
        record("power", "off", args)

    @export
    async def read(self, *args):
        record("power", "read", args)
        # upstream's PowerReading, dumped by pydantic as floats
        yield {"voltage": 0.0, "current": 0.0}
        yield {"voltage": 5.0, "current": 2.0}


class Fancy(Driver):
    """A driver from a package our client knows nothing of."""

    client_label = "custom_pkg.client.FancyClient"

    @export
    async def blink(self, *args):
        record("fancy", "blink", args)

    @export
    async def brightness(self, level):
        record("fancy", "brightness", [level])
        if not 0 <= level <= 100:
            raise ValueError(f"brightness must be between 0 and 100, got {level}")


class EchoNetwork(Driver):
    client_label = "jumpstarter_driver_network.client.NetworkClient"

    @exportstream
    async def connect(self, context):
        """Upstream's Session.Stream with forward_stream over an echoing memory stream: DATA
        frames come back, the client's GOAWAY is answered with ours, and the RPC then stays
        open until the client ends it."""
        while True:
            frame = await context.read()
            if frame == grpc.aio.EOF or frame.frame_type == router_pb2.FRAME_TYPE_GOAWAY:
                break
            if frame.frame_type == router_pb2.FRAME_TYPE_DATA:
                await context.write(router_pb2.StreamResponse(payload=frame.payload))
        await context.write(router_pb2.StreamResponse(frame_type=router_pb2.FRAME_TYPE_GOAWAY))


class Session:
    def __init__(self, root):
        self.root = root
        self.uuid = uuid4()
        self.mapping = {u: d for (u, _, _, d) in root.enumerate()}
        self.names = {u: name for (u, _, name, _) in root.enumerate()}

    async def GetReport(self, request, context):
        return jumpstarter_pb2.GetReportResponse(
            uuid=str(self.uuid),
            labels={"jumpstarter.dev/name": "python-exporter"},
            reports=[d.report(parent=parent, name=name) for (_, parent, name, d) in self.root.enumerate()],
        )

    async def DriverCall(self, request, context):
        return await self.mapping[UUID(request.uuid)].DriverCall(request, context)

    async def StreamingDriverCall(self, request, context):
        async for response in self.mapping[UUID(request.uuid)].StreamingDriverCall(request, context):
            yield response

    async def Stream(self, request_iterator, context):
        request = json.loads(dict(context.invocation_metadata())["request"])
        uuid = UUID(request["uuid"])
        name = self.names[uuid]
        method = await self.mapping[uuid].lookup(request["method"], context, EXPORTED_STREAM)
        record(name, request["method"], [request])
        done = asyncio.Event()
        # grpc cancels this handler when the client ends the RPC, so report from the callback.
        context.add_done_callback(lambda _: (record(name, f"{request['method']}: rpc ended", []), done.set()))
        await context.send_initial_metadata(())
        await method(context)
        record(name, f"{request['method']}: end of stream", [])
        await done.wait()

    async def GetStatus(self, request, context):
        return jumpstarter_pb2.GetStatusResponse(status=common_pb2.EXPORTER_STATUS_LEASE_READY, status_version=1)

    def handlers(self):
        def unary(fn, req, resp):
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString
            )

        router = grpc.method_handlers_generic_handler(
            "jumpstarter.v1.RouterService",
            {
                "Stream": grpc.stream_stream_rpc_method_handler(
                    self.Stream,
                    request_deserializer=router_pb2.StreamRequest.FromString,
                    response_serializer=router_pb2.StreamResponse.SerializeToString,
                )
            },
        )
        exporter = grpc.method_handlers_generic_handler(
            "jumpstarter.v1.ExporterService",
            {
                "GetReport": unary(self.GetReport, empty_pb2.Empty, jumpstarter_pb2.GetReportResponse),
                "DriverCall": unary(self.DriverCall, jumpstarter_pb2.DriverCallRequest, jumpstarter_pb2.DriverCallResponse),
                "GetStatus": unary(self.GetStatus, jumpstarter_pb2.GetStatusRequest, jumpstarter_pb2.GetStatusResponse),
                "StreamingDriverCall": grpc.unary_stream_rpc_method_handler(
                    self.StreamingDriverCall,
                    request_deserializer=jumpstarter_pb2.StreamingDriverCallRequest.FromString,
                    response_serializer=jumpstarter_pb2.StreamingDriverCallResponse.SerializeToString,
                ),
            },
        )
        return (exporter, router)


async def main(path):
    session = Session(
        Composite(
            children={
                "power": MockPower(),
                "echo": EchoNetwork(),
                "fancy": Fancy(
                    methods_description={
                        "blink": "Blink the LED",
                        "brightness": "Set the LED brightness (0-100)",
                    }
                ),
            }
        )
    )
    server = grpc.aio.server()
    server.add_insecure_port(f"unix://{path}")
    server.add_generic_rpc_handlers(session.handlers())
    await server.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=None)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
