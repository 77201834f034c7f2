"""bench/phone.py times each frame at an advisor by the kernel's stamp on its datagram (SO_TIMESTAMPNS),
not by when the load generator's event loop read it: the generator shares the server's cores, and its
own waiting must not count as the server's gap. Here on a plain datagram endpoint: the stamp reaches
the protocol's handler, on the monotonic clock, and a datagram read late keeps its arrival time. (On
the advisors' peer connections the benchmark's report counts the frames that carried a stamp and
warns when any did not.)"""

from __future__ import annotations

import asyncio
import socket
import time

from bench.phone import KernelArrivals


class Heard(asyncio.DatagramProtocol):
    def __init__(self, arrivals: KernelArrivals) -> None:
        self.arrivals = arrivals
        self.got: list[tuple[bytes, float | None, float]] = []

    def datagram_received(self, data: bytes, addr) -> None:
        self.got.append((data, self.arrivals.now, time.monotonic()))


async def test_a_datagram_read_late_keeps_the_kernels_arrival_time():
    loop = asyncio.get_running_loop()
    arrivals = KernelArrivals()
    transport, heard = await loop.create_datagram_endpoint(
        lambda: Heard(arrivals), local_addr=("127.0.0.1", 0)
    )
    try:
        arrivals.watch(transport, heard)
        # the kernel turns its arrival stamping on a moment after the first socket asks for it (a
        # deferred switch); a datagram before that is stamped when read. The benchmark's windows start
        # seconds after the advisors' sockets asked.
        await asyncio.sleep(0.1)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = time.monotonic()
        sender.sendto(b"first", transport.get_extra_info("sockname"))
        time.sleep(0.2)  # this loop busy: the datagram waits in the socket
        sender.sendto(b"second", transport.get_extra_info("sockname"))
        sender.close()
        for _ in range(100):
            if len(heard.got) == 2:
                break
            await asyncio.sleep(0.01)
        (first, stamped, read), (second, stamped_2, _) = heard.got
        assert (first, second) == (b"first", b"second")
        assert stamped is not None and stamped_2 is not None
        assert sent - 0.005 <= stamped <= sent + 0.05  # when it arrived, on the monotonic clock
        assert read - stamped >= 0.19  # read 0.2 s later, still counted at its arrival
        assert stamped_2 - stamped >= 0.19
        assert arrivals.now is None and arrivals.stamped == 2  # no stamp outside a handler
    finally:
        transport.close()
