"""Thread choice at start (audit_cli/cli/threads.py): torch's defaults alone, fewer threads that
sleep instead of spinning when other work runs, and the user's own settings untouched."""

from audit_cli.cli.threads import configure_threads, plan_threads


def test_alone_every_usable_cpu_and_torchs_spinning():
    plan = plan_threads({}, cpus=4, busy=0)
    assert plan.threads == 4 and not plan.passive


def test_beside_other_work_the_free_cpus_and_sleeping_threads():
    assert plan_threads({}, cpus=2, busy=1).threads == 1 and plan_threads({}, cpus=2, busy=1).passive
    assert plan_threads({}, cpus=8, busy=3).threads == 5
    assert plan_threads({}, cpus=2, busy=5).threads == 1  # never fewer than one


def test_audit_threads_overrides_the_choice():
    assert plan_threads({"AUDIT_THREADS": "off"}, cpus=2, busy=3).threads is None
    assert plan_threads({"AUDIT_THREADS": "3"}, cpus=2, busy=3).threads == 3
    ignored = plan_threads({"AUDIT_THREADS": "many"}, cpus=2, busy=0)
    assert ignored.threads is None and "ignored" in ignored.reason


def test_configure_keeps_what_the_user_set_and_is_a_no_op_once_torch_is_loaded(monkeypatch):
    import sys

    env = {"OMP_NUM_THREADS": "7", "AUDIT_THREADS": "2"}
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    plan = configure_threads(env)
    assert plan is not None and plan.threads == 2 and env["OMP_NUM_THREADS"] == "7"  # the user's value stays
    fresh = {"AUDIT_THREADS": "2"}
    configure_threads(fresh)
    assert fresh["OMP_NUM_THREADS"] == "2"
    monkeypatch.undo()
    import torch  # noqa: F401  (the test process has torch already)

    assert configure_threads({}) is None
