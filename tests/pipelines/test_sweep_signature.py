"""Signed sweep state: the per-user key, and the signature over the Tune files a resume would unpickle."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pipelines.signing import SignatureError, check_signed, signed, signing_key
from pipelines.sweep.signature import SIGNATURE_FILE, sign_folder, verify_folder


def _tune_folder(root):
    root.mkdir()
    (root / "tuner.pkl").write_bytes(b"tuner")
    (root / "experiment_state-2026.json").write_text("{}")
    (root / ".validate_storage_marker").write_text("")
    trial = root / "sweep_trial_00000"
    (trial / "checkpoint_000000").mkdir(parents=True)
    (trial / "checkpoint_000000" / "trainer.pt").write_bytes(b"weights")
    (trial / "result.json").write_text("{}")
    return root


def test_the_key_is_private_and_made_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ADL_CONFIG_DIR", str(tmp_path / "cfg"))
    key = signing_key()
    assert signing_key() == key and len(key) == 64
    assert stat.S_IMODE((tmp_path / "cfg").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cfg" / "signing.key").stat().st_mode) == 0o600
    (tmp_path / "cfg" / "signing.key").chmod(0o644)  # others could read it, and forge
    with pytest.raises(SignatureError, match="must be this user's own and private"):
        signing_key()


def test_signed_json_refuses_a_change_and_another_key(tmp_path):
    state = signed({"tune_path": "/x", "parent_run_id": "abc"})
    assert check_signed(state, "s") == {"tune_path": "/x", "parent_run_id": "abc"}
    with pytest.raises(SignatureError, match="does not match"):
        check_signed({**state, "tune_path": "/elsewhere"}, "s")
    with pytest.raises(SignatureError, match="does not match"):
        check_signed(signed({"tune_path": "/x"}, key=b"an attacker's key of 32 bytes...."), "s")
    with pytest.raises(SignatureError, match="has no adl signature"):
        check_signed({"tune_path": "/x"}, "s")


def test_a_signed_tune_folder_verifies_and_every_tampering_is_named(tmp_path):
    root = _tune_folder(tmp_path / "exp")
    files = sign_folder(str(root))
    assert set(files) == {"tuner.pkl", "experiment_state-2026.json"}  # not checkpoints, logs, dot-files
    checked = verify_folder(str(root))  # each trusted file's bytes, as checked
    assert set(checked) == set(files) and checked["tuner.pkl"] == (root / "tuner.pkl").read_bytes()
    # Files Tune does not unpickle may change: results, checkpoints (read with weights_only), markers.
    (root / "sweep_trial_00000" / "result.json").write_text('{"more": 1}')
    (root / ".validate_storage_marker").write_text("x")
    assert set(verify_folder(str(root))) == set(files)

    (root / "tuner.pkl").write_bytes(b"crafted")
    with pytest.raises(SignatureError, match="tuner.pkl differs from what adl signed"):
        verify_folder(str(root))
    (root / "tuner.pkl").write_bytes(b"tuner")
    (root / "experiment_state-2099.json").write_text("{}")  # newer: Tune would load this one
    with pytest.raises(SignatureError, match="experiment_state-2099.json is not listed"):
        verify_folder(str(root))
    os.remove(root / "experiment_state-2099.json")
    (root / "sweep_trial_00000" / "error.pkl").write_bytes(b"crafted")  # unpickled for the results
    with pytest.raises(SignatureError, match="sweep_trial_00000/error.pkl is not listed"):
        verify_folder(str(root))


def test_an_unsigned_or_forged_folder_is_refused(tmp_path):
    root = _tune_folder(tmp_path / "exp")
    with pytest.raises(SignatureError, match=f"{SIGNATURE_FILE} is missing"):
        verify_folder(str(root))
    sign_folder(str(root))
    sig = json.loads((root / SIGNATURE_FILE).read_text())
    sig["files"]["tuner.pkl"] = "0" * 64
    (root / SIGNATURE_FILE).write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="signature does not match"):
        verify_folder(str(root))
