"""Run judge/annotation calls concurrently, and stop cleanly on the first Ctrl-C.

At most ``concurrency`` calls are in flight; the next is submitted only when one finishes, so a Ctrl-C
leaves nothing queued: the calls already sent finish (their replies are cached and kept), nothing new
is sent, and the caller saves what was done before exiting with code 130.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable, Iterable


def run_jobs(fn: Callable, items: Iterable, *, concurrency: int, on_result: Callable[[int, object], None]) -> bool:
    """Call ``fn(item)`` for each item on ``concurrency`` threads; ``on_result(index, result)`` runs in the
    calling thread as each finishes. Returns True if a Ctrl-C stopped it (items never started get no
    ``on_result``); a second Ctrl-C while the in-flight calls finish aborts at once."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be 1 or more, got {concurrency}")
    pending = iter(enumerate(items))
    running: dict = {}
    interrupted = False
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        try:
            while True:
                while not interrupted and len(running) < concurrency:
                    nxt = next(pending, None)
                    if nxt is None:
                        break
                    running[pool.submit(fn, nxt[1])] = nxt[0]
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    on_result(running.pop(fut), fut.result())
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: sending nothing more; waiting for the calls in flight "
                  f"({len(running)}) ... (Ctrl-C again to abort at once)", flush=True)
            for fut in list(running):
                try:
                    on_result(running.pop(fut), fut.result())
                except Exception:  # noqa: BLE001 - a failed in-flight call is simply not kept
                    pass
    return interrupted
