"""The kernel manager headless runs use waits on the kernel, not on the clock: a ready client goes on with what IOPub
has already delivered, and a kernel that does not end after its shutdown reply is still ended."""

from __future__ import annotations

import asyncio

from jupyter_client.manager import _ShutdownStatus

from runbook_lib.runbook import kernels
from runbook_lib.runbook.kernel_manager import PromptKernelClient, PromptKernelManager


async def _started(manager_class=PromptKernelManager):
    manager = manager_class(kernel_name="python3")
    await manager.start_kernel()
    return manager


def test_a_ready_client_takes_what_iopub_has_delivered_without_waiting_for_silence():
    async def scenario():
        manager = await _started()
        client = manager.client()
        assert isinstance(client, PromptKernelClient)
        client.start_channels()
        calls = []  # (timeout asked for, a message came)
        channel = client.iopub_channel
        receive = channel.get_msg

        async def recording(timeout=None):
            try:
                message = await receive(timeout=timeout)
            except Exception:
                calls.append((timeout, False))
                raise
            calls.append((timeout, True))
            return message

        channel.get_msg = recording
        try:
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive("print(6 * 7)", timeout=60, output_hook=lambda m: None)
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)
        return calls, reply

    calls, reply = asyncio.run(scenario())
    first_message = next(i for i, (_, came) in enumerate(calls) if came)
    after = calls[first_message + 1:]
    assert after, "the queue is emptied once the subscription is known to work"
    assert all(timeout == 0 for timeout, _ in after), f"waited for IOPub to fall silent: {after}"
    assert reply["content"]["status"] == "ok", "the client works after its shortened start"


def test_a_kernel_that_does_not_end_after_its_shutdown_reply_is_terminated():
    async def scenario():
        manager = await _started()
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            await client.execute_interactive("import atexit, time\natexit.register(time.sleep, 120)", timeout=60)
        finally:
            client.stop_channels()
        await manager.shutdown_kernel()  # graceful: the request, the grace, then SIGTERM
        return manager, await manager.is_alive()

    manager, alive = asyncio.run(scenario())
    assert manager._shutdown_status == _ShutdownStatus.SigtermRequest, "ended by the escalation, not by itself"
    assert not alive


def test_papermill_gets_the_prompt_manager_with_or_without_forked_kernels(monkeypatch):
    monkeypatch.setattr(kernels, "fork_available", lambda: False)  # what Windows reports
    assert kernels.papermill_options() == {"kernel_manager_class": PromptKernelManager}
    assert issubclass(kernels.ForkingKernelManager, PromptKernelManager)
