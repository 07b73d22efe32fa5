"""A short run of the binding fuzz harness (scripts/fuzz_bindings.py) in CI.

The harness runs its cases in a child process and reports crashes (the child killed by a signal),
hangs, unexpected exception types and mismatches with the reference kernels. Here it runs for
FASTCNN_FUZZ_SECONDS (default 20) and must run cases and find no defect; developers run it for
longer with ``python scripts/fuzz_bindings.py --minutes N``.
"""

import json
import os
import pathlib
import subprocess
import sys

HARNESS = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "fuzz_bindings.py"


def test_short_fuzz_run_finds_no_defect(tmp_path):
    seconds = float(os.environ.get("FASTCNN_FUZZ_SECONDS", "20"))
    # Run from an empty folder so the child imports the installed package, never the source tree.
    completed = subprocess.run([sys.executable, str(HARNESS), "--seconds", str(seconds), "--json"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 120)
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no summary; stderr:\n{completed.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    assert summary["cases"] > 0, summary
    # Both kinds of cases ran: single ops and Network sequences (a train_step among them).
    assert any(not name.startswith("Network.") for name in summary["outcomes"]), summary["outcomes"]
    assert "Network.train_step" in summary["outcomes"], summary["outcomes"]
    # The graph methods and the merge ops among them.
    assert "Network.connect" in summary["outcomes"] and "merge_forward" in summary["outcomes"], summary["outcomes"]
    assert summary["defects"] == [], json.dumps(summary["defects"], indent=1)[:5000]
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_harness_reports_a_crash_with_its_input_and_goes_on(tmp_path):
    """Self-test: the first child segfaults at its 10th case; the parent reports that case and restarts.

    The budget leaves room for two child start-ups (each imports numpy and fastcnn) on a loaded
    2-core machine: CI once saw 6 s end with the first child's crash, before a second could start.
    """
    completed = subprocess.run([sys.executable, str(HARNESS), "--seconds", "15", "--json", "--inject-crash-after", "10"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 1
    crashes = [defect for defect in summary["defects"] if defect["kind"].startswith("crash")]
    assert len(crashes) == 1 and "SIGSEGV" in crashes[0]["kind"], summary["defects"]
    assert crashes[0]["case"], "the crashing input was not recorded"
    assert summary["children"] >= 2 and summary["cases"] > 10, summary
