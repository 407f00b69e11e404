"""paths.write_file: atomic replacement and owner-only modes for private files."""

from __future__ import annotations

import stat

from eks_hub_runbook.paths import write_file


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_are_0600_and_others_0644(tmp_path):
    key = write_file(tmp_path / "deep" / "key.pem", b"-----BEGIN PRIVATE KEY-----", private=True)
    ca = write_file(tmp_path / "ca.pem", "-----BEGIN CERTIFICATE-----")
    assert (_mode(key), _mode(ca)) == (0o600, 0o644)
    assert ca.read_text() == "-----BEGIN CERTIFICATE-----"


def test_replacing_keeps_no_temporary_files_and_a_reader_never_sees_a_partial_file(tmp_path):
    target = tmp_path / "kubeconfig"
    write_file(target, "old", private=True)
    with target.open() as reader:  # an open reader keeps the old content: the file was replaced, not truncated
        write_file(target, "new", private=True)
        assert reader.read() == "old"
    assert target.read_text() == "new" and _mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]
