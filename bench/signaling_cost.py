"""What one chat message costs the server, in instructions: Sprechstunde against the bare relay, counted
by valgrind (callgrind) in the same run.

bench/signaling.py times a burst of 500 messages; on this kind of 2-core VM the same code gives a burst
p99 anywhere from 30 to 70 ms from one minute to the next, because the machine's speed varies. Instructions
do not: callgrind counts what the server process executes (its own threads included, the kernel's
work for its system calls not), the same for the same inputs whatever else the machine does. So this
benchmark answers "did a change make a chat message cheaper or dearer for the server, and by how much
against the least an aiohttp server must do" without the noise:

- both servers run under callgrind (some 50× slower: few clients, and no timing figure is read here);
- the clients of bench/signaling.py connect (rooms of 2) and send their rounds, 3 s apart; the counters
  are read after connecting, after an idle pause of that length, and at each round's first message, at
  its last arrival and at the end of the pause after it;
- printed, per chat message and as a ratio to the bare relay's (bench/bare_relay.py: receive, parse,
  re-encode, deliver): the instructions in the window before the other participant has the message,
  which is what a burst's latency is made of, and in all (receive, validate, deliver, keep in the
  history and the store, acknowledge: the rounds and the pauses after them, less what the server does
  in an idle pause of the same length, its timers).

    .venv/bin/python -m bench.signaling_cost [--clients 100] [--rounds 10] [--json out]

Needs valgrind (Debian's `valgrind`; the machines here have it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bare_relay import BareRelayProcess
from bench.server import PinnedProcess, ServerProcess
from bench.signaling import make_rooms, run_load

START_TIMEOUT = 300.0  # a server under callgrind takes a minute or so to import and start
AFTER_ROUNDS = 3.0  # seconds after a round: the store's writes and the acknowledgements behind it are done


def callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]


def dump(process: PinnedProcess) -> None:
    """`callgrind_control -d`: write the counters to the next `<out>.<n>` and start again from zero."""
    command = ["callgrind_control", "-d", str(process.pid)]
    subprocess.run(command, capture_output=True, check=True, timeout=60)


def instructions(dump_file: Path) -> int:
    """The total of a callgrind dump (its `summary:` line)."""
    for line in dump_file.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dump_file}")


def per_message(events: list[str], counts: list[int], messages: int, rounds: int) -> dict[str, int]:
    """The dumps taken at `events` (run_load's `on_round`; a dump holds what ran since the one before)
    as instructions per message: `in_window`, from a round's first message to its last arrival; `in_all`,
    the rounds with the pauses after them, less an idle pause measured before the first round (the
    timers a server runs whether anyone chats or not)."""
    if len(events) != len(counts):
        raise ValueError(f"{len(events)} events but {len(counts)} dumps")
    by_event: dict[str, int] = {}
    for event, count in zip(events, counts, strict=True):
        by_event[event] = by_event.get(event, 0) + count
    rounds_total = by_event["start"] + by_event["arrived"] + by_event["after"] - rounds * by_event["idle"]
    return {
        "in_window": round(by_event["arrived"] / messages),
        "in_all": round(rounds_total / messages),
        "idle_pause": by_event["idle"],
    }


def count(process: PinnedProcess, out: Path, rooms: list[dict], rounds: int) -> dict:
    """Instructions the process spends per chat message under the load of bench/signaling.py. The
    counters are dumped (and so set to zero) at each of run_load's `on_round` events; the pause after each
    round (AFTER_ROUNDS) is long enough for the store's writes and the acknowledgements behind a round
    to finish before the next one starts, even some 50× slower under callgrind (each dump is in the
    JSON: a round's work running late would show as uneven dumps)."""
    events: list[str] = []

    def on_round(event: str) -> None:
        events.append(event)
        dump(process)

    try:
        process.wait_healthy(timeout=START_TIMEOUT)
        result = asyncio.run(
            run_load(
                [process.url], rooms, rounds, parallel=20, settle=5.0, spread=0.0,
                on_round=on_round, pause=AFTER_ROUNDS,
            )
        )  # fmt: skip
        dumps = [Path(f"{out}.{n}") for n in range(1, len(events) + 1)]
        deadline = time.monotonic() + 30
        while not dumps[-1].exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        counts = [instructions(dump_file) for dump_file in dumps]
    finally:
        process.stop()
    if result["lost"]:
        raise RuntimeError(f"{result['lost']} messages lost")
    messages = result["chat_messages"]
    figures = per_message(events, counts, messages, rounds)
    return {"messages": messages, **figures, "dumps": [[e, c] for e, c in zip(events, counts, strict=True)]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100, help="even number of clients [100]")
    parser.add_argument("--rounds", type=int, default=10, help="chat rounds, one message per room each [10]")
    parser.add_argument("--json", type=Path, help="write the figures to this file too")
    args = parser.parse_args()
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="sprechstunde-cost-") as tmp:
        folder = Path(tmp)
        rooms = asyncio.run(make_rooms(folder / "data", args.clients // 2, None, None))
        out = folder / "bare.callgrind"
        bare = count(BareRelayProcess(folder / "bare.log", prefix=callgrind(out)), out, rooms, args.rounds)
        out = folder / "server.callgrind"
        server = ServerProcess(
            folder / "data", "--log-level", "warning", log_path=folder / "server.log", prefix=callgrind(out)
        )
        ours = count(server, out, rooms, args.rounds)
    ratio = ours["in_all"] / bare["in_all"]
    in_window = ours["in_window"] / bare["in_window"]
    figures = {"clients": args.clients, "rounds": args.rounds, "bare_relay": bare, "sprechstunde": ours}
    figures |= {"ratio": round(ratio, 2), "in_window_ratio": round(in_window, 2)}
    print(
        f"{args.clients} clients in rooms of 2, {ours['messages']} chat messages; instructions per message "
        f"(callgrind), Sprechstunde / bare aiohttp relay:\n"
        f"  until the other has it:  {ours['in_window']:>9,} / {bare['in_window']:>9,} = {in_window:.2f}\n"
        f"  in all:                  {ours['in_all']:>9,} / {bare['in_all']:>9,} = {ratio:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
