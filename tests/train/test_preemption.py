"""SIGTERM / SIGUSR1: the current step finishes, a checkpoint is written, Preempted is raised,
and the same call resumes to the uninterrupted run's weights; a second signal exits at once."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from multivic.errors import Preempted
from tests.helpers.resume import assert_bitwise_equal, checkpoint_state
from tests.helpers.toy import PairsOfVectors, history, train, vicreg_model


class SignalOnce(PairsOfVectors):
    """Sends ``sig`` to this process while loading sample 0 for the ``at``-th time (as a
    scheduler would, at an arbitrary moment of a step)."""

    def __init__(self, n, sig, at):
        super().__init__(n)
        self.sig, self.at, self.loads = sig, at, 0

    def __getitem__(self, i):
        if i == 0:
            self.loads += 1
            if self.loads == self.at:
                os.kill(os.getpid(), self.sig)
        return super().__getitem__(i)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_checkpoints_after_the_step_and_the_run_resumes_exactly(tmp_path, sig):
    whole = train(vicreg_model(dropout=0.2), PairsOfVectors(64), tmp_path / "whole", epochs=3)
    run = tmp_path / "run"
    with pytest.raises(Preempted, match=r"stopped by a signal after step (\d+) \(epoch 1\)") as stopped:
        train(vicreg_model(dropout=0.2), SignalOnce(64, sig, at=2), run, epochs=3)  # sample 0's 2nd load: epoch 1
    latest = (run / "checkpoints" / "LATEST").read_text().strip()
    assert latest.startswith("step_") and int(latest[5:]) == int(history(run)[-1]["step"])
    assert Preempted.exit_code == 75 and "run the same command to resume" in str(stopped.value)

    resumed = train(vicreg_model(dropout=0.2), PairsOfVectors(64), run, epochs=3)
    assert resumed.resumed_from == latest and resumed.step == whole.step
    assert_bitwise_equal(resumed.model.state_dict(), whole.model.state_dict())
    assert_bitwise_equal(checkpoint_state(run), checkpoint_state(tmp_path / "whole"))


def test_the_signal_handlers_are_restored_after_fit(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    train(vicreg_model(), PairsOfVectors(64), tmp_path / "run", epochs=1)
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_second_signal_exits_at_once(tmp_path):
    script = textwrap.dedent("""
        import os, signal, time
        from multivic.train.preemption import StopRequests
        with StopRequests() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested
            print("first signal noted", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        print("not reached")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (
        proc.returncode == -signal.SIGTERM and "first signal noted" in proc.stdout and "not reached" not in proc.stdout
    )
