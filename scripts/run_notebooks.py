#!/usr/bin/env python3
"""Execute every notebook in notebooks/ top to bottom with nbclient, each within a time limit.

Usage: scripts/run_notebooks.py [--timeout SECONDS] [--save-executed DIR] [--strip] [NOTEBOOK ...]

Each notebook runs in its own kernel, in a fresh temporary working directory (so what it writes lands
nowhere in the repository), with a deadline for the whole notebook: every cell gets the time that is
left. The executed copies are not written back: the notebooks stay stored with their outputs stripped,
and this script fails when a stored notebook has outputs (--strip removes them in place).
Exit status 0 when every notebook ran without an error within its limit, 1 otherwise.
"""

import argparse
import pathlib
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def stored_outputs(notebook) -> list[int]:
    """Indices of code cells stored with outputs or an execution count."""
    return [i for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]


def strip(path: pathlib.Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(notebook, path)


def execute(path: pathlib.Path, limit: float, save_to: pathlib.Path | None) -> tuple[bool, float, str]:
    notebook = nbformat.read(path, as_version=4)
    dirty = stored_outputs(notebook)
    if dirty:
        return False, 0.0, f"stored with outputs in code cells {dirty}; strip them (scripts/run_notebooks.py --strip)"
    deadline = time.monotonic() + limit
    with tempfile.TemporaryDirectory(prefix=f"ringlab-{path.stem}-") as workdir:
        client = NotebookClient(notebook, kernel_name="python3", resources={"metadata": {"path": workdir}},
                                timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        started = time.monotonic()
        try:
            client.execute()
        except CellTimeoutError:
            return False, time.monotonic() - started, f"exceeded the {limit:.0f} s limit"
        except CellExecutionError as error:
            return False, time.monotonic() - started, str(error)
        finally:
            if save_to is not None:
                save_to.mkdir(parents=True, exist_ok=True)
                nbformat.write(notebook, save_to / path.name)
        return True, time.monotonic() - started, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per notebook (default 120)")
    parser.add_argument("--save-executed", type=pathlib.Path, metavar="DIR",
                        help="also write the executed notebooks (with outputs) into DIR, to read them")
    parser.add_argument("--strip", action="store_true", help="strip outputs in place and exit")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        print("run_notebooks: no notebooks found", file=sys.stderr)
        return 1
    if args.strip:
        for path in paths:
            strip(path)
            print(f"stripped {path}")
        return 0
    failures = 0
    for path in paths:
        ok, seconds, message = execute(path, args.timeout, args.save_executed)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path.name:<40} {seconds:6.1f} s", flush=True)
        if message:
            print(message, file=sys.stderr, flush=True)
    print(f"{len(paths) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
