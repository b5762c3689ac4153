"""Who is at the keyboard: the OS account and, over SSH, the client address.

``--user`` (or ``$AGENTDECK_USER``) is a name the operator chose; the OS
account is the one the process runs as, looked up by uid (``pwd``), not
from ``$USER`` or ``$LOGNAME``, which anyone can set. Over SSH, sshd sets
``SSH_CONNECTION`` to ``client-ip client-port server-ip server-port``; the
first field is kept when it is an IP address (``SSH_CLIENT`` is the older
spelling of the same). Both are recorded with every decision and
acknowledgement, in the row and in the audit record.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    os_user: str | None = None
    ssh_client: str | None = None  # the SSH client's IP address; None when not over SSH

    @classmethod
    def current(cls, env: Mapping[str, str] | None = None) -> Origin:
        """This process's OS account and SSH client (from ``env``, default the environment)."""
        env = os.environ if env is None else env
        return cls(os_user=os_user(), ssh_client=ssh_client(env))

    def detail(self) -> dict[str, str | None]:
        """For an audit record's detail."""
        return {"os_user": self.os_user, "ssh_client": self.ssh_client}


def os_user() -> str | None:
    """The account this process runs as (by uid), or None when it cannot be named."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):  # no pwd (Windows) or a uid without an entry (containers)
        try:
            import getpass

            return getpass.getuser()
        except Exception:
            return None


def ssh_client(env: Mapping[str, str]) -> str | None:
    """The SSH client's address from ``SSH_CONNECTION`` (else ``SSH_CLIENT``); None if absent or malformed."""
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        first = (env.get(name) or "").split(" ", 1)[0].strip()
        if not first:
            continue
        try:
            return ipaddress.ip_address(first.split("%", 1)[0]).compressed
        except ValueError:
            return None  # set but not an address: record nothing rather than whatever it holds
    return None
