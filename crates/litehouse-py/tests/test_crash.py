"""A Python process writing with the Durable profile is killed with SIGKILL: every write it had
reported as acknowledged is in the database, and the file is sound."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import litehouse

CHILD = textwrap.dedent(
    """
    import sys, threading
    import litehouse
    db = litehouse.Database(sys.argv[1], profile="durable")
    db.execute("CREATE TABLE IF NOT EXISTS acked(id INTEGER PRIMARY KEY, payload TEXT)")
    lock = threading.Lock()
    print("READY", flush=True)
    def writer(thread):
        i = 0
        while True:
            key = thread * 10_000_000 + i
            db.execute("INSERT INTO acked(id, payload) VALUES (?, ?)", (key, "x" * 64))
            with lock:
                print(f"ACK {key}", flush=True)
            i += 1
    for thread in range(4):
        threading.Thread(target=writer, args=(thread,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_sigkill_loses_no_acknowledged_write(tmp_path):
    path = str(tmp_path / "crash.db")
    acknowledged = set()
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, path],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "READY"
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        reader.start()
        time.sleep(0.7)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        reader.join(10)
        child.stdout.close()
        acknowledged.update(int(line.split()[1]) for line in lines if line.startswith("ACK "))
    assert len(acknowledged) > 100, "the child acknowledged writes before it was killed"
    db = litehouse.Database(path)
    stored = {row[0] for row in db.query("SELECT id FROM acked", tuples=True)}
    missing = acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged writes lost"
    assert db.integrity_check() == []
    db.close()
