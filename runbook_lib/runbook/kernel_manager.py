"""The kernel manager and client headless runs use: jupyter_client's, without the fixed waits around each kernel.

A fleet run starts four kernels per host, and around each one jupyter_client waits on the clock rather than on the
kernel:

- when the kernel is ready it listens to IOPub for 0.2 s more, until nothing arrives, to drop the status messages
  of its ``kernel_info`` requests. nbclient ignores every message that answers no request of its own, so here the
  client takes what is already queued and goes on;
- after asking the kernel to shut down it looks every 0.1 s whether the process has ended, and ipykernel 7 often
  hangs on its way out (here about one kernel in four, forked or not): its control thread, done with the shutdown
  request, flushes stdout through the IOPub thread the main thread has just stopped and waits up to 10 s for it,
  while the main thread waits for the control thread. jupyter_client sends SIGTERM after half of
  ``shutdown_wait_time``, 2.5 s. A headless kernel is shut down only after its last cell, with every output
  already saved and every evidence file written by the cells themselves, so here it is looked at every 10 ms and
  given 0.3 s (a clean exit takes about 60 ms).

Everything else (ports, connection files, signals, the escalation to SIGTERM and SIGKILL) is jupyter_client's.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Float, Type

SHUTDOWN_GRACE_S = 0.3  # after the shutdown request, before SIGTERM (and as long again before SIGKILL)
SHUTDOWN_POLL_S = 0.01
KERNEL_INFO_WAIT_S = 1.0  # per kernel_info request, as jupyter_client waits
IOPUB_JOIN_WAIT_S = 0.2  # for the first IOPub message, which shows the subscription is connected


class PromptKernelClient(AsyncKernelClient):
    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        """Ready once the kernel has answered ``kernel_info`` on the shell channel and something has arrived on
        IOPub (so the subscription is connected and no output can be lost); the messages already queued on IOPub
        are dropped without waiting for more. The error texts are jupyter_client's, which callers match."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=KERNEL_INFO_WAIT_S)
                if reply["msg_type"] == "kernel_info_reply":
                    await self.iopub_channel.get_msg(timeout=IOPUB_JOIN_WAIT_S)
                    self._handle_kernel_info_reply(reply)
                    break
            except Empty:
                pass
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
        while True:
            try:
                await self.iopub_channel.get_msg(timeout=0)
            except Empty:
                return

    wait_for_ready = _async_wait_for_ready


class PromptKernelManager(AsyncKernelManager):
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient, config=True)
    # jupyter_client waits half of it before SIGTERM, the other half before SIGKILL
    shutdown_wait_time = Float(2 * SHUTDOWN_GRACE_S, config=True)

    async def _async_finish_shutdown(self, waittime: float | None = None, pollinterval: float = SHUTDOWN_POLL_S,
                                     restart: bool = False) -> Any:
        return await super()._async_finish_shutdown(waittime, min(pollinterval, SHUTDOWN_POLL_S), restart)
