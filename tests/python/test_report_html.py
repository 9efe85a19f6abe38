"""The HTML report in a real headless browser (Debian's Chromium): after a small grid, `orchestrator report`
writes report.html; Chromium loads it from disk and the page's own script records whether every table is there
and every embedded figure decoded. A screenshot must not be blank."""
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile

from common import orch, run, scratch

EXP = {
    "name": "html",
    "datasets": {"a": {"kind": "lh", "size": 64, "synthetic": {"count": 12, "seed": 3, "size": 64}},
                 "b": {"kind": "l", "size": 64, "synthetic": {"count": 12, "seed": 4, "size": 64}}},
    "networks": ["hybridgnet", "unet"],
    "seeds": [1],
    "training": {"epochs": 2, "threads": 1, "loader_threads": 1, "device": "cpu"},
    "report": {"formats": ["md", "html"]},
}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no Chromium (scripts/setup installs Debian's chromium)")


def test_the_html_report_renders_its_tables_and_figures():
    browser = chromium()
    with scratch() as tmp:
        exp = os.path.join(tmp, "exp.json")
        ws = os.path.join(tmp, "ws")
        with open(exp, "w") as f:
            json.dump(dict(EXP, workspace=ws), f)
        orch("submit", exp, "--workers", "2")
        r = orch("report", exp)
        page = os.path.join(ws, "report", "report.html")
        assert page in r.stdout and os.path.exists(page), r.stdout
        assert not os.path.exists(os.path.join(ws, "report", "tables.csv")), "formats come from the report block"
        html = open(page).read()
        assert "src=\"http" not in html and "<link" not in html, "the page must be self-contained"
        with tempfile.TemporaryDirectory(prefix="orch-chromium-") as profile:
            p = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
                                "file://" + page], capture_output=True, text=True, timeout=120)
            dom = p.stdout
            assert "<body" in dom, (p.returncode, p.stderr[-2000:])
            body = re.search(r"<body([^>]*)>", dom).group(1)
            assert 'data-tables="2"' in body, body
            assert 'data-images="4"' in body and 'data-images-ok="yes"' in body, body
            assert "Table 1. a (lungs and heart)" in dom and "Table 2. b (lungs)" in dom
            assert "HybridGNet" in dom and "Cost per network" in dom
            shot = os.path.join(tmp, "page.png")
            p = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                                "--window-size=1400,1800", f"--screenshot={shot}", "file://" + page],
                               capture_output=True, text=True, timeout=120)
            assert os.path.exists(shot), p.stderr[-2000:]
            with open(shot, "rb") as f:
                head = f.read(24)
            assert head[:8] == b"\x89PNG\r\n\x1a\n"
            assert struct.unpack(">II", head[16:24]) == (1400, 1800)
            assert os.path.getsize(shot) > 30000, "a blank page"


if __name__ == "__main__":
    run([test_the_html_report_renders_its_tables_and_figures])
