"""StepLog (serving/step_log.py): the statistics the event loop keeps of the steps it ran, against
sums worked by hand from the steps given."""

from __future__ import annotations

import numpy as np
import pytest

from tensor_cast.serving.sim_result import StepRecord
from tensor_cast.serving.step_log import StepLog


def test_steps_runs_and_batches_add_up_to_the_hand_sums():
    log = StepLog({"decode": 2}, record_steps=True)
    log.step("decode", ("d0", 0.0, 0.004, 1, 512, 3, 4), 0.25)  # a prefill step: 4 ms at 25 % KV
    log.run("decode", ("d0", 0.004, 0.006, 3, 0, 4, 4), np.array([0.001, 0.002, 0.003]), np.array([0.3, 0.4, 0.5]))
    stages = [StepRecord("d0.stage0", 0.010, 0.002, 1, 0, 2, 2), StepRecord("d0.stage1", 0.012, 0.003, 1, 0, 2, 2)]
    log.batch("decode", 0.005, 0.003, 0, 2, 0.6, stages)
    log.step("decode", ("d0", 0.013, 0.001, 1, 0, 4, 4), 0.55)

    assert log.num_steps == 1 + 3 + 1 + 1
    phases = log.phases["decode"]
    assert (phases.ranks, phases.prompt_steps, phases.prompt_s) == (2, 1, pytest.approx(0.004))
    assert phases.decode_steps == 5
    assert phases.decode_s == pytest.approx(0.006 + 0.003 + 0.001)
    assert phases.decode_seq_steps == 4 * 3 + 2 + 4
    # ITL samples in the order the steps ran: the prefill step (its 3 decodes), the run's 3 steps,
    # the batch from its scheduling to its last stage's end, the last step
    durations, weights = log.itl()
    assert durations.tolist() == pytest.approx([0.004, 0.001, 0.002, 0.003, 0.005, 0.001])
    assert weights.tolist() == [3, 4, 4, 4, 2, 4]
    kv = 0.25 * 0.004 + 0.3 * 0.001 + 0.4 * 0.002 + 0.5 * 0.003 + 0.6 * 0.003 + 0.55 * 0.001
    assert log.kv_mean_use == pytest.approx(kv / (0.004 + 0.006 + 0.003 + 0.001))
    assert log.kv_peak == 0.6
    assert [s.worker for s in log.steps] == ["d0", "d0", "d0.stage0", "d0.stage1", "d0"]
    assert log.steps[1] == StepRecord("d0", 0.004, 0.006, 3, 0, 4, 4)


def test_nothing_run_gives_empty_samples_and_no_kv_use():
    log = StepLog({"agg": 1}, record_steps=False)
    log.step("agg", ("a0", 0.0, 0.002, 1, 0, 0, 0), 0.0)  # a step that decoded nothing: no ITL sample
    durations, weights = log.itl()
    assert (len(durations), len(weights), log.kv_mean_use, log.steps) == (0, 0, 0.0, [])
    assert StepLog({"agg": 1}, record_steps=False).kv_mean_use == 0.0
