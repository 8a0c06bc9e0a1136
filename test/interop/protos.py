"""
Message classes for the Jumpstarter protocol, generated from proto/ at run time
with Debian's protoc (generated Python is never committed), plus value encoding
the way upstream's jumpstarter.common.serde does it (JSON through
google.protobuf.Value).
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import json_format, struct_pb2

PROTO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")


def _generate():
    out = tempfile.mkdtemp(prefix="jmp-interop-pb-")
    atexit.register(shutil.rmtree, out, True)
    sources = []
    for package in (("jumpstarter", "v1"), ("jumpstarter", "client", "v1")):
        folder = os.path.join(PROTO_ROOT, *package)
        sources += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".proto"))
    subprocess.run(["protoc", f"--python_out={out}", "-I", PROTO_ROOT, *sources], check=True)
    sys.path.insert(0, out)


_generate()

from jumpstarter.v1 import common_pb2, jumpstarter_pb2, router_pb2  # noqa: E402
from jumpstarter.client.v1 import client_pb2  # noqa: E402

EXPORTER_SERVICE = "/jumpstarter.v1.ExporterService/"
ROUTER_STREAM = "/jumpstarter.v1.RouterService/Stream"


def encode_value(v):
    return json_format.ParseDict(v, struct_pb2.Value())


def decode_value(v):
    return json_format.MessageToDict(v)


__all__ = [
    "common_pb2", "jumpstarter_pb2", "router_pb2", "client_pb2", "EXPORTER_SERVICE", "ROUTER_STREAM", "encode_value", "decode_value",
]
