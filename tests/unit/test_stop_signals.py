"""StopSignals: a stop signal ends a wait at once and is remembered; the old handlers return.

These tests send real signals to the test process itself; inside the ``with`` block they reach
StopSignals' handler, never pytest's. The timeout marker is a failure deadline for a wait the
signal failed to end, not a timing assertion.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import pytest

from discovery.stop_signals import StopSignals
from tests import polling


@pytest.mark.timeout(10)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_a_signal_that_came_before_the_wait_ends_it_at_once(sig: signal.Signals) -> None:
    with StopSignals() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), sig)
        assert stop.wait(None) is True
        assert stop.received is sig


def _sleeping(tid: int) -> bool:
    """Whether thread *tid* of this process is asleep (in a system call such as select)."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "S"


@pytest.mark.timeout(10)
def test_a_signal_taken_by_another_thread_wakes_an_endless_wait() -> None:
    # The main thread blocks SIGTERM, so the kernel hands it to the sender thread and the main
    # thread's select is never interrupted: only the wakeup fd can end the wait.
    main = threading.get_native_id()

    def send() -> None:
        polling.wait_for(lambda: _sleeping(main), 5, "the main thread to sleep in its wait")
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send)
    sender.start()  # before the mask changes: a new thread inherits its creator's mask
    with StopSignals() as stop:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            assert stop.wait(None) is True
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            sender.join()
    assert stop.received is signal.SIGTERM


@pytest.mark.timeout(10)
def test_the_first_of_several_signals_is_the_one_remembered() -> None:
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(0) is True
    assert stop.received is signal.SIGINT


def test_without_a_signal_a_wait_runs_out_and_reports_no_stop() -> None:
    with StopSignals() as stop:
        assert stop.wait(0) is False
        assert stop.wait(0.01) is False
    assert stop.received is None


def test_the_previous_handlers_come_back_after_the_block() -> None:
    seen: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    before = signal.signal(signal.SIGTERM, previous)
    try:
        with StopSignals((signal.SIGTERM,)) as stop:
            assert signal.getsignal(signal.SIGTERM) is not previous
        assert signal.getsignal(signal.SIGTERM) is previous
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]  # Python runs the handler before the next bytecode
        assert stop.received is None
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_wait_outside_the_block_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside its with block"):
        StopSignals().wait(0)
