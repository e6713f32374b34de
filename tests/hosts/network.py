"""Hosts for tests: Linux network namespaces on one bridge, each with its own
address, so the parts of the system talk only over that network. A link is
cut by setting its bridge port down: the other hosts then meet silence, not a
reset, as with a pulled cable.

The bridge lives in a namespace of its own (the "switch"), so nothing of the
test network touches the machine's own. The test process itself reaches a
host by running a function on a thread that joined the host's namespace
(setns is per thread for network namespaces)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def netns_available() -> str | None:
    """None when this process can build namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"aiwprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Network:
    """Namespaces `<prefix>-<host>` with addresses 10.<subnet>.0.<n>/24 on one bridge."""

    subnet: int = 77
    prefix: str = field(default_factory=lambda: f"aiw{uuid.uuid4().hex[:5]}")
    hosts: dict[str, list[str]] = field(default_factory=dict)  # host → its addresses
    links: dict[str, str] = field(default_factory=dict)  # address → its bridge port
    _next: int = 1

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def create(self) -> Network:
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def add_host(self, host: str) -> str:
        ns = self.namespace(host)
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        self.hosts[host] = []
        return self.add_address(host)

    def add_address(self, host: str) -> str:
        """One more interface (and address) for a host: a service behind it can be cut alone."""
        ns, n = self.namespace(host), self._next
        self._next += 1
        inside, port = f"e{n}", f"p{n}"
        address = f"10.{self.subnet}.0.{n}"
        _ip("link", "add", f"{self.prefix}{inside}", "type", "veth", "peer", "name", f"{self.prefix}{port}")
        _ip("link", "set", f"{self.prefix}{inside}", "netns", ns)
        _ip("link", "set", f"{self.prefix}{port}", "netns", self.switch)
        _ip("-n", self.switch, "link", "set", f"{self.prefix}{port}", "master", "br0")
        _ip("-n", self.switch, "link", "set", f"{self.prefix}{port}", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", f"{self.prefix}{inside}")
        _ip("-n", ns, "link", "set", f"{self.prefix}{inside}", "up")
        self.hosts[host].append(address)
        self.links[address] = f"{self.prefix}{port}"
        return address

    def address(self, host: str) -> str:
        return self.hosts[host][0]

    # -- faults -----------------------------------------------------------------------
    def cut(self, address: str) -> None:
        """The link of `address` goes silent (its bridge port down): nothing in, nothing out."""
        _ip("-n", self.switch, "link", "set", self.links[address], "down")

    def restore(self, address: str) -> None:
        _ip("-n", self.switch, "link", "set", self.links[address], "up")

    # -- running things on a host --------------------------------------------------------
    def argv(self, host: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(host), *command]

    def call(self, host: str, fn: Callable[[], T], timeout: float = 120) -> T:
        """fn() on a thread inside the host's namespace (its sockets are the host's)."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{self.namespace(host)}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            try:
                outcome["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"in-{host}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"call on {host} still running after {timeout}s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def delete(self) -> None:
        for host in list(self.hosts):
            subprocess.run(["ip", "netns", "del", self.namespace(host)], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)
        self.hosts.clear()
