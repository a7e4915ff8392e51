"""adamae_hf.training helpers that only show their worth with several processes."""

import subprocess
import textwrap
from pathlib import Path

from two_processes import two_process_command

from adamae_hf.errors import UserError
from adamae_hf.training import on_every_process


REPO_ROOT = Path(__file__).resolve().parents[1]


class OneProcess:
    num_processes = 1


def test_on_every_process_returns_the_checks_result_or_raises_its_user_error():
    assert on_every_process(OneProcess(), lambda: "user/name") == "user/name"

    def failing():
        raise UserError("no token")

    try:
        on_every_process(OneProcess(), failing)
    except UserError as error:
        assert str(error) == "no token"
    else:
        raise AssertionError("the UserError did not come through")


def test_a_check_that_fails_on_one_process_stops_every_process(tmp_path):
    # Rank 1 alone fails (as one process's broken random-state file would): both must raise its message, rather than
    # rank 0 going on to wait for rank 1 in the next collective.
    script = tmp_path / "check.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from accelerate import Accelerator
        from adamae_hf.errors import UserError
        from adamae_hf.training import on_every_process

        accelerator = Accelerator(cpu=True)

        def check():
            if accelerator.process_index == 1:
                raise UserError("random_states_1.pkl is broken")
            return "fine"

        try:
            outcome = on_every_process(accelerator, check)
        except UserError as error:
            outcome = "raised: " + str(error)
        Path({str(tmp_path)!r}, f"rank{{accelerator.process_index}}.txt").write_text(outcome)
        # both leave the process group together: a rank exiting while gloo still talks to it can abort the other
        accelerator.wait_for_everyone()
        accelerator.end_training()
    """)
    )
    command = two_process_command(
        str(script),
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == "raised: random_states_1.pkl is broken"
