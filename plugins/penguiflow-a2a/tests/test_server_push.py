"""Push-notification configs through the SDK client, delivered by A3's PushSender."""

from __future__ import annotations

from typing import Any

import httpx
from _push_receiver import push_receiver
from a2a.client import ClientConfig, create_client
from a2a.types import a2a_pb2 as pb
from penguiflow_a2a._push import PushSender
from penguiflow_a2a.server import create_a2a_app
from server_support import CARD, Blocker, serve


async def test_push_config_crud_and_delivery() -> None:
    blocker = Blocker()
    sender = PushSender(allow_private=True)  # the receiver is on 127.0.0.1

    def build(url: str) -> Any:
        return create_a2a_app(blocker.flow(), agent_card=CARD, base_url=url, push_sender=sender)

    async with push_receiver() as receiver, serve(build) as url, httpx.AsyncClient() as http:
        config = ClientConfig(streaming=False, httpx_client=http)
        client = await create_client(url, client_config=config)
        request = pb.SendMessageRequest(
            message=pb.Message(message_id="m", role=pb.ROLE_USER, parts=[pb.Part(text="x")]),
            configuration=pb.SendMessageConfiguration(return_immediately=True),
        )
        events = [e async for e in client.send_message(request)]
        task_id = events[0].task.id
        await blocker.started.wait()
        created = await client.create_task_push_notification_config(
            pb.TaskPushNotificationConfig(task_id=task_id, url=receiver.url, token="tok")
        )
        assert created.id and created.url == receiver.url
        listed = await client.list_task_push_notification_configs(
            pb.ListTaskPushNotificationConfigsRequest(task_id=task_id)
        )
        assert [c.id for c in listed.configs] == [created.id]
        got = await client.get_task_push_notification_config(
            pb.GetTaskPushNotificationConfigRequest(task_id=task_id, id=created.id)
        )
        assert got.token == "tok"
        blocker.release.set()
        received = await receiver.wait_for(2)
        states = [r.body.get("statusUpdate", {}).get("status", {}).get("state") for r in received]
        assert "TASK_STATE_COMPLETED" in states
        await client.delete_task_push_notification_config(
            pb.DeleteTaskPushNotificationConfigRequest(task_id=task_id, id=created.id)
        )
        listed = await client.list_task_push_notification_configs(
            pb.ListTaskPushNotificationConfigsRequest(task_id=task_id)
        )
        assert list(listed.configs) == []
        await client.close()
    await sender.aclose()
