#!/usr/bin/env python3
"""One entry point for people and CI: `python3 run.py serve ...` and `python3 run.py test ...`.

It needs nothing but Python 3.11+: on first use (and whenever pyproject.toml
changes) it creates `.venv/` beside this file and installs ticker with its
test extras there, then runs the command inside that environment.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-from"

USAGE = """usage: python3 run.py serve [ticker serve options]   run the service (see README)
       python3 run.py test [pytest options]           run the whole test suite
       python3 run.py ticker ARGS...                  any ticker command (check-config, fetch, resolve)"""


def _requirements_fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    """Create or refresh .venv so that it matches pyproject.toml."""
    if sys.version_info < (3, 11):  # noqa: UP036 -- run.py may be started by an older python3
        sys.exit(f"ticker needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = BIN / "python"
    if not python.exists():
        print("run.py: creating .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    fingerprint = _requirements_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print("run.py: installing ticker and its dependencies into .venv ...", file=sys.stderr)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    try:
        subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    except subprocess.CalledProcessError as err:
        sys.exit(f"run.py: installing into .venv failed ({err}); see the pip output above")
    STAMP.write_text(fingerprint)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "serve":
        args = [str(BIN / "ticker"), "serve", *rest]
    elif command == "ticker":
        args = [str(BIN / "ticker"), *rest]
    elif command == "test":
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    else:
        print(USAGE, file=sys.stderr)
        return 2
    ensure_venv()
    if command == "test":
        os.chdir(ROOT)
    os.execv(args[0], args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
