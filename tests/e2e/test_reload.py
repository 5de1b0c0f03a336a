"""SIGHUP reloads the ACL file (acl_file): a grant appears, a grant the file no
longer names disappears, a file that does not parse or check keeps the ACL as it was and the log
says why; grants made elsewhere (the configuration, HTTP) are untouched. The reload is durable: a
restart on the same data directory starts with what the last load applied."""
import os
import re
import signal
import threading
import time

import pytest

from conftest import Server


class LoggedServer(Server):
    """A server whose stderr is read all along (the reload's lines come after start-up)."""

    def start(self):
        super().start()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for line in self.proc.stderr:
            with self.lock:
                self.stderr_lines.append(line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.reader.join(timeout=30)
        if self.data_dir:
            import shutil
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.proc.returncode

    def hangup_and_wait(self, pattern):
        """SIGHUP, then the first new log line matching pattern."""
        with self.lock:
            seen = len(self.stderr_lines)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while time.time() < deadline:
            with self.lock:
                for line in self.stderr_lines[seen:]:
                    if re.search(pattern, line):
                        return line
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} after SIGHUP:\n{self.stderr()}")


def acl_names(s, admin):
    with s.client(admin) as c:
        r = c.get("/acl")
        assert r.status_code == 200, r.text
        return {e["principal"]: e for e in r.json()["entries"]}


def can_write(s, who, channel="jobs"):
    with s.client(s.token(who)) as c:
        return c.put(f"/channels/{channel}", content=b'{"n":1}').status_code


def can_read(s, who, channel="jobs"):
    with s.client(s.token(who)) as c:
        return c.get(f"/channels/{channel}", params={"exclusive": "true"}).status_code


@pytest.fixture
def acl_server(tmp_path, make_server):
    acl = tmp_path / "acl.conf"
    acl.write_text("[acl worker-1]\nrole = write\nchannels = jobs\n")

    def make(*extra):
        s = make_server("--authz", "acl", "--admin", "ops", "--acl-file", str(acl), *extra,
                        cls=LoggedServer)
        admin = s.token("ops")
        with s.client(admin) as c:
            r = c.post("/channels", json={"id": "jobs", "kind": "queue"})
            assert r.status_code in (200, 201, 409), r.text
        return s, admin

    return acl, make


def test_grant_appears_and_disappears(acl_server):
    acl, make = acl_server
    s, admin = make()
    assert "acl_file" in s.stderr() and "1 grants" in s.stderr()
    assert can_write(s, "worker-1") in (200, 201, 202)
    assert can_read(s, "reader-2") == 403
    # worker-1 leaves the file, reader-2 comes in
    acl.write_text("# reloaded\n[acl reader-2]\nrole = read\nchannels = jobs\n")
    line = s.hangup_and_wait(r"acl_file .*grants")
    assert "1 grants, 1 changed, 1 revoked" in line, line
    assert can_write(s, "worker-1") == 403
    assert can_read(s, "reader-2") == 200
    names = acl_names(s, admin)
    assert "reader-2" in names and "worker-1" not in names and "ops" in names
    # The same file again changes nothing (no grant re-made, nothing revoked).
    line = s.hangup_and_wait(r"acl_file .*grants")
    assert "1 grants, 0 changed, 0 revoked" in line, line
    # A changed grant: reader-2 gets write.
    acl.write_text("[acl reader-2]\nrole = write\nchannels = jobs\n")
    line = s.hangup_and_wait(r"acl_file .*grants")
    assert "1 grants, 1 changed, 0 revoked" in line, line
    assert can_write(s, "reader-2") in (200, 201, 202)


def test_broken_file_keeps_the_acl(acl_server):
    acl, make = acl_server
    s, admin = make()
    before = acl_names(s, admin)
    for text, why in (("[acl worker-1]\nrole = boss\n", r"acl\.conf:2: role must be"),
                      ("[acl worker-1]\nchannels = jobs\n", r"has no role"),
                      ("listen = 0.0.0.0:1\n[acl x]\nrole = read\n", r"sections only"),
                      ("[acl ops]\nrole = read\n", r"also an admin"),
                      ("[acl a]\nrole = read\n[acl a]\nrole = write\n", r"appears twice")):
        acl.write_text(text)
        line = s.hangup_and_wait(r"acl_file")
        assert "not reloaded, the ACL is unchanged" in line, line
        assert re.search(why, line), line
        assert acl_names(s, admin) == before
        assert can_write(s, "worker-1") in (200, 201, 202)
    acl.unlink()
    line = s.hangup_and_wait(r"acl_file")
    assert "not reloaded" in line and "cannot open" in line, line
    assert can_write(s, "worker-1") in (200, 201, 202)


def test_other_grants_are_untouched(acl_server):
    acl, make = acl_server
    s, admin = make()
    with s.client(admin) as c:  # a runtime grant over HTTP
        assert c.put("/acl/runtime-1", json={"role": "read"}).status_code == 200
    acl.write_text("[acl other]\nrole = read\n")
    s.hangup_and_wait(r"acl_file .*grants")
    names = acl_names(s, admin)
    assert set(names) == {"ops", "runtime-1", "other"}, names


def test_reload_survives_a_restart(tmp_path, acl_server):
    acl, make = acl_server
    data = str(tmp_path / "data")
    s, admin = make("--data-dir", data)
    acl.write_text("[acl reader-2]\nrole = read\n")
    s.hangup_and_wait(r"acl_file .*grants")
    assert s.stop() == 0
    s2, admin2 = make("--data-dir", data)
    names = acl_names(s2, admin2)
    assert "reader-2" in names and "worker-1" not in names
    assert s2.stop() == 0
    # The file changes while sluiced is stopped: the next start revokes what it no longer names.
    acl.write_text("[acl third]\nrole = read\n")
    s3, admin3 = make("--data-dir", data)
    assert "1 grants, 1 changed, 1 revoked" in s3.stderr()
    names = acl_names(s3, admin3)
    assert "third" in names and "reader-2" not in names


def test_principal_moved_into_the_config_is_not_revoked(tmp_path, acl_server):
    acl, make = acl_server
    data = str(tmp_path / "data")
    acl.write_text("[acl mover]\nrole = read\n")
    s, admin = make("--data-dir", data)
    assert acl_names(s, admin)["mover"]["role"] == "read"
    assert s.stop() == 0
    acl.write_text("# mover is the configuration's now\n")
    s2, admin2 = make("--data-dir", data, "--admin", "mover")
    assert "0 grants, 0 changed, 0 revoked" in s2.stderr()
    assert acl_names(s2, admin2)["mover"]["role"] == "admin"


def test_broken_file_at_start_is_refused(tmp_path):
    acl = tmp_path / "acl.conf"
    acl.write_text("[acl worker-1]\nrole = write\nchannels = bad..pattern\n")
    s = Server(("--authz", "acl", "--acl-file", str(acl)))
    with pytest.raises(RuntimeError) as e:
        s.start()
    assert "invalid channel pattern" in str(e.value)
    s.proc.wait(timeout=30)
    assert s.proc.returncode == 1
    if s.data_dir:
        import shutil
        shutil.rmtree(s.data_dir, ignore_errors=True)
