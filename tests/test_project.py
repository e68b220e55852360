"""Project settings that a user relies on without reading them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_slow_tests_are_deselected_by_default_and_run_with_m_slow(tmp_path):
    """pyproject's ``slow`` marker says "deselected by default; run with -m slow": hold it to that."""
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n@pytest.mark.slow\ndef test_long():\n    pass\n\ndef test_quick():\n    pass\n"
    )

    def collected(*extra):
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
             "-n", "0", "--collect-only", *extra, str(tmp_path / "test_marked.py")],
            capture_output=True, text=True, cwd=tmp_path,
        )
        return sorted(line.split("::")[-1] for line in out.stdout.splitlines() if "::" in line)

    assert collected() == ["test_quick"]
    assert collected("-m", "slow") == ["test_long"]
