"""
The floor of the exporter call benchmark (bench/exporter-call.ts): a bare grpcio
(C-core) server, as upstream's Python exporter is built on, that answers
ExporterService.DriverCall with a canned reply and does nothing else. A generic
handler with identity (de)serializers: no protobuf decode or encode, no driver
lookup, just what C-core and its asyncio glue cost per call.

usage: grpcio-floor.py PORT REPLY_HEX   (prints `ready` once it listens)
"""

import asyncio
import sys

import grpc


async def main(port, reply):
    async def driver_call(request, context):
        return reply

    handler = grpc.method_handlers_generic_handler(
        "jumpstarter.v1.ExporterService",
        {"DriverCall": grpc.unary_unary_rpc_method_handler(driver_call)},  # bytes in, bytes out
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), bytes.fromhex(sys.argv[2])))
