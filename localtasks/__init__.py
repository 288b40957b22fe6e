"""A local stand-in for Cloud Tasks HTTP push queues, for tests and development."""

from localtasks.client import local_tasks_client
from localtasks.models import Attempt, LocalTask, QueueSettings, TaskState
from localtasks.server import LocalCloudTasks
from localtasks.signing import TokenSigner

__all__ = [
    "Attempt",
    "LocalCloudTasks",
    "LocalTask",
    "QueueSettings",
    "TaskState",
    "TokenSigner",
    "local_tasks_client",
]
