"""Build a google-cloud-tasks async client that talks to a local server."""

from __future__ import annotations

import grpc
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import (
    CloudTasksGrpcAsyncIOTransport,
)


def local_tasks_client(grpc_address: str) -> tasks_v2.CloudTasksAsyncClient:
    """Return a client on an insecure channel to `grpc_address` ("host:port").

    Call it inside the running event loop that will use the client, because
    the gRPC channel binds to the loop that creates it. Close it with
    `await client.transport.close()`.
    """
    channel = grpc.aio.insecure_channel(grpc_address)
    transport = CloudTasksGrpcAsyncIOTransport(channel=channel, credentials=AnonymousCredentials())
    return tasks_v2.CloudTasksAsyncClient(transport=transport)
