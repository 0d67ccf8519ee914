"""What waking a waiting task costs in trio, next to what a message costs at one channel.

With K channels each read by its own task and messages spread round-robin over them
(``scale.py --workload channels``), a channel's task is woken once for what its stream
holds: at K=1 a whole read's worth of messages, at K=10,000 the few messages of one DATA
frame (8-16 between processes, measured on rev f8e7d14; one when both ends share a process,
``oneway_cpu.py --channels K``). This prints the cost of a wake-up (a task woken from a wait,
run to its next wait, in batches of ``--tasks``), through trio's own
``wait_task_rescheduled``/``reschedule`` and through libchan's ``engine/waiters.Lot``, in one
run, with the ratio of the two.

    .venv/bin/python bench/wakeups.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio
import trio.testing

from libchan.engine.waiters import Lot


async def _trio_wakeups(tasks: int, rounds: int) -> float:
    waiting: list[trio.lowlevel.Task] = []
    state = {"left": 0}
    me = trio.lowlevel.current_task()

    def abort(_: object) -> trio.lowlevel.Abort:
        return trio.lowlevel.Abort.SUCCEEDED

    async def worker() -> None:
        task = trio.lowlevel.current_task()
        while True:
            waiting.append(task)
            await trio.lowlevel.wait_task_rescheduled(abort)
            state["left"] -= 1
            if state["left"] == 0:
                trio.lowlevel.reschedule(me)

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for _ in range(rounds):
            state["left"] = tasks
            batch = waiting[:]
            waiting.clear()
            for task in batch:
                trio.lowlevel.reschedule(task)
            await trio.lowlevel.wait_task_rescheduled(abort)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed / (tasks * rounds)


async def _lot_wakeups(tasks: int, rounds: int) -> float:
    lots = [Lot() for _ in range(tasks)]
    done = Lot()
    state = {"left": 0}

    async def worker(lot: Lot) -> None:
        while True:
            await lot.park()
            state["left"] -= 1
            if state["left"] == 0:
                done.unpark_all()

    async with trio.open_nursery() as nursery:
        for lot in lots:
            nursery.start_soon(worker, lot)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for _ in range(rounds):
            state["left"] = tasks
            for lot in lots:
                lot.unpark_all()
            await done.park()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed / (tasks * rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks woken together (default 1000)")
    parser.add_argument("--rounds", type=int, default=200, help="batches per figure (default 200)")
    parser.add_argument("--reps", type=int, default=3, help="runs per figure, median reported (default 3)")
    opts = parser.parse_args()
    trio_us = statistics.median(trio.run(_trio_wakeups, opts.tasks, opts.rounds) for _ in range(opts.reps)) * 1e6
    lot_us = statistics.median(trio.run(_lot_wakeups, opts.tasks, opts.rounds) for _ in range(opts.reps)) * 1e6
    print(f"wake-ups in batches of {opts.tasks}, median of {opts.reps} runs of {opts.rounds} batches:")
    print(f"  trio wait_task_rescheduled / reschedule: {trio_us:.2f} µs per task woken and run to its next wait")
    print(f"  libchan engine/waiters.Lot park / unpark_all: {lot_us:.2f} µs ({lot_us / trio_us:.2f}x of trio's)")


if __name__ == "__main__":
    main()
