"""Issue 17's guarantees for run folders: one writer per folder, symlinks refused, full disks and
read-only folders handled with one clear line and nothing lost (README "Guarantees")."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spuriverse.locking import LOCK_NAME, FolderBusy, folder_lock

VOLATILE = {"timestamp", "latency_s"}


def _eval(dataset: Path, out: Path, *extra: str, fsize: int | None = None, timeout: float = 240,
          wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [sys.executable, "-m", "spuriverse", "eval", "--model", "random", "--dataset", str(dataset),
           "--output-dir", str(out), "--no-progress", "--bootstrap", "50", *extra]

    def limit() -> None:  # a real OS write failure (EFBIG) past `fsize` bytes: a full disk, portably
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    kw = {"preexec_fn": limit} if fsize is not None else {}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _samples(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in (run / "samples.jsonl").read_text().splitlines()]


def _metrics(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def clean_run(small_benchmark, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "run"
    p = _eval(small_benchmark, out)
    assert p.returncode == 0, p.stderr
    return out


def test_a_second_eval_on_a_busy_folder_fails_at_once_naming_the_holder(small_benchmark, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with folder_lock(out, stage="eval"):
        t0 = time.monotonic()
        p = _eval(small_benchmark, out)
        took = time.monotonic() - t0
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "is in use by" in line and f"pid {os.getpid()}" in line and "--wait" in line, line
    assert not (out / "samples.jsonl").exists()  # nothing written by the refused run
    assert took < 60


@pytest.mark.parametrize("n", [2, 3])
def test_concurrent_evals_with_wait_end_like_one_clean_run(small_benchmark, clean_run, tmp_path, n):
    out = tmp_path / "run"
    out.mkdir()
    with folder_lock(out, stage="eval"):  # hold the folder so all n really start together
        procs = [_eval(small_benchmark, out, "--wait", wait=False) for _ in range(n)]
        time.sleep(1.0)
        assert all(p.poll() is None for p in procs)  # all waiting, none writing
    codes = [p.wait(timeout=240) for p in procs]
    assert codes == [0] * n, [p.stderr.read() for p in procs]
    assert _samples(out) == _samples(clean_run)
    assert _metrics(out) == _metrics(clean_run)


def test_concurrent_evals_without_wait_never_corrupt_the_folder(small_benchmark, clean_run, tmp_path):
    out = tmp_path / "run"
    procs = [_eval(small_benchmark, out, wait=False) for _ in range(3)]
    errs = [p.communicate(timeout=240)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and set(codes) <= {0, 2}, (codes, errs)  # the losers fail fast, clearly
    for p, err in zip(procs, errs):
        assert "Traceback" not in err and ("is in use by" in err or p.returncode == 0), err
    p = _eval(small_benchmark, out)  # whatever the interleaving, the folder resumes and is whole
    assert p.returncode == 0, p.stderr
    assert _samples(out) == _samples(clean_run)


def test_a_lock_left_by_a_killed_process_is_taken_over(small_benchmark, clean_run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from spuriverse.locking import folder_lock\n"
         f"with folder_lock({str(out)!r}, stage='eval'):\n    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusy, match=f"pid {holder.pid}"):
        with folder_lock(out, stage="eval"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    p = _eval(small_benchmark, out)
    assert p.returncode == 0, p.stderr
    assert "taking over the lock of" in p.stderr and f"pid {holder.pid}" in p.stderr
    assert _samples(out) == _samples(clean_run)
    assert not (out / f"{LOCK_NAME}.json").exists()  # the holder record goes with the holder


def test_a_symlinked_samples_file_is_refused_before_anything_is_touched(small_benchmark, tmp_path):
    victim = tmp_path / "unrelated.txt"
    victim.write_bytes(b"precious data\nwith an unterminated last line")
    before = victim.read_bytes()
    out = tmp_path / "run"
    out.mkdir()
    (out / "samples.jsonl").symlink_to(victim)
    p = _eval(small_benchmark, out)
    assert p.returncode == 2 and "symbolic link" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert victim.read_bytes() == before


def test_an_output_path_that_is_a_file_is_one_clear_line(small_benchmark, tmp_path):
    out = tmp_path / "a-file"
    out.write_text("x")
    p = _eval(small_benchmark, out)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert str(out) in p.stderr.strip().splitlines()[-1]
    assert out.read_text() == "x"


def test_a_full_disk_is_one_clear_line_and_a_rerun_completes_identically(small_benchmark, clean_run, tmp_path):
    out = tmp_path / "run"
    p = _eval(small_benchmark, out, fsize=6000)  # samples.jsonl cannot grow past ~6 KB
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert "Traceback" not in p.stderr and "samples.jsonl" in last and "EFBIG" in last, p.stderr
    data = (out / "samples.jsonl").read_bytes()
    assert data and data.endswith(b"\n")  # cut back to the last whole line
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    p = _eval(small_benchmark, out)  # space freed: the same command resumes
    assert p.returncode == 0, p.stderr
    assert _samples(out) == _samples(clean_run) and _metrics(out) == _metrics(clean_run)


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_a_full_tmpfs_is_one_clear_line(small_benchmark, clean_run, tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)):
        pytest.skip("cannot mount a small tmpfs here (needs root in a container that allows mounts); "
                    "the RLIMIT_FSIZE test covers the same code path")
    try:
        out = mnt / "run"
        p = _eval(small_benchmark, out)
        assert p.returncode == 2 and "ENOSPC" in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert not list(out.glob(".*.tmp"))
        if (out / "samples.jsonl").exists():
            assert (out / "samples.jsonl").read_bytes().endswith(b"\n") or not (out / "samples.jsonl").read_bytes()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_finished_run_on_a_read_only_folder_is_still_reported(small_benchmark, clean_run, tmp_path):
    import shutil

    ro = tmp_path / "ro"
    shutil.copytree(clean_run, tmp_path / "src")
    ro.mkdir()
    if os.geteuid() == 0:
        if not (_mount("--bind", str(tmp_path / "src"), str(ro)) and _mount("-o", "remount,ro,bind", str(ro))):
            subprocess.run(["umount", str(ro)], check=False)
            pytest.skip("cannot make a read-only bind mount here, and root ignores file modes")
    else:
        ro.rmdir()
        shutil.copytree(tmp_path / "src", ro)
        for p in [ro, *ro.iterdir()]:
            p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        before = {p.name: p.read_bytes() for p in ro.iterdir() if p.is_file()}
        p = _eval(small_benchmark, ro)
        assert p.returncode == 0, p.stderr
        assert "overall_acc" in p.stdout
        assert {p.name: p.read_bytes() for p in ro.iterdir() if p.is_file()} == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], check=False)
        else:
            for p in [ro, *ro.iterdir()]:
                p.chmod(0o755 if p.is_dir() else 0o644)


def test_run_files_get_the_permissions_a_normal_write_gives(small_benchmark, tmp_path):
    old = os.umask(0o022)
    try:
        p = _eval(small_benchmark, tmp_path / "run")
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    for name in ("results.json", "run.json", "samples.jsonl", "report.md"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))
