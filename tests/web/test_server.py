"""`ticker serve` raises its open-file limit: every event-stream client holds a socket."""

from __future__ import annotations

import resource
import subprocess
import sys


def test_the_soft_open_file_limit_is_raised_towards_the_hard_one():
    """In a child process, so this test's own limits stay as they were."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = (
        "import resource\n"
        "from ticker.web.server import raise_open_file_limit\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, (256, {hard}))\n"
        "print(raise_open_file_limit(4096), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    expected = 4096 if hard == resource.RLIM_INFINITY or hard >= 4096 else hard
    assert out == [str(expected), str(expected)]
