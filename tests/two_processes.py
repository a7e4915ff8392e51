"""Launching a script on two local CPU processes (gloo), as `torchrun --nproc_per_node 2` would."""

import socket
import sys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_process_command(script, *arguments) -> list[str]:
    """`python -m torch.distributed.run` starting `script` twice on this machine, with its arguments."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    return [*launcher, "--master_port", str(free_port()), str(script), *map(str, arguments)]
