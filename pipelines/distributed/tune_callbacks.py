"""The Tune callbacks every adl sweep runs with: its state signature kept current, and Ctrl-C / SIGTERM
turned into Tune's own graceful stop.

Both live in the driver, inside the Tuner (``tuner.pkl`` holds them, so a restored sweep has them
too) and hold nothing secret: the key is read from the user's config folder when needed.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray.train.constants import _get_ray_train_session_dir
from ray.tune import Callback

from pipelines.signing import SignatureError
from pipelines.sweep.signature import digest, open_folder, read_signature, trusted_files, write_signature

STOP_REQUESTED = threading.Event()  # set by the sweep's SIGINT/SIGTERM handler (StopSignals)
# name -> (trial id, status, config) at the end of Tune's last step: what a stop left unfinished (after
# fit returns, Tune's clean-up has marked the trials it stopped TERMINATED in memory, not in its state)
TRIAL_STATUSES: dict[str, tuple[str, str, dict[str, Any]]] = {}
_SIGNED_FOLDER: dict[str, str] = {}  # "tune_path": the Tune experiment this driver runs


def sign_tune_state_of(tune_path: str) -> None:
    """Tell :class:`SignTuneState` (restored from ``tuner.pkl`` as it was pickled) which experiment
    this process runs: the callback holds no path of its own, so a moved folder still signs right."""
    _SIGNED_FOLDER["tune_path"] = tune_path


def _staging_folder(name: str) -> str | None:
    """The driver's staging folder of experiment ``name`` (Ray 2.60 keeps it under the session's
    ``artifacts/<timestamp>/<name>/driver_artifacts``; a restored run reuses the old timestamp)."""
    found = list(Path(_get_ray_train_session_dir()).glob(f"*/{name}/driver_artifacts"))
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


class SignTuneState(Callback):
    """Signs Tune's state each time Tune saves it.

    Tune (2.60) saves its experiment state into the driver's staging folder and then uploads that
    folder to the storage in a background thread; it asks every callback for its state (``get_state``)
    right after writing its own files and before the upload. That is where this callback digests
    the trusted files of the staging folder (``pipelines/sweep/signature.py``) and writes the
    signature beside them, so that the upload carries files and signature together: a driver killed
    at any moment but during an upload leaves a folder that verifies. Digests of files that are only
    in the storage (``tuner.pkl``, an earlier session's state) come from the signature already there.
    """

    def __init__(self) -> None:
        self._staging: str | None = None
        self._known: dict[str, str] | None = None
        self._cache: dict[str, tuple[int, int, str]] = {}  # rel -> (size, mtime_ns, sha256)

    def _learn(self, trials: list[Any]) -> None:
        if self._staging is None and trials:
            self._staging = trials[0].storage.experiment_driver_staging_path

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._learn(trials)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._learn(trials)

    def get_state(self) -> dict[str, Any] | None:
        tune_path = _SIGNED_FOLDER.get("tune_path")
        if tune_path is not None:
            # Before any step (a resumed sweep whose trials had all ended takes none) the trials
            # have not told us the staging folder yet: look for it.
            staging = self._staging or _staging_folder(tune_path.rstrip("/").rsplit("/", 1)[-1])
            if staging is not None:
                self._sign_staging(staging, tune_path)
        return None  # nothing of ours to save: Tune writes no callback file for us

    def _sign_staging(self, root: str, tune_path: str) -> None:
        if self._known is None:
            try:
                self._known = read_signature(*open_folder(tune_path))
            except (SignatureError, OSError):
                self._known = {}
        local = pafs.LocalFileSystem()
        files = dict(self._known)
        for rel in trusted_files(local, root):
            info = local.get_file_info(f"{root}/{rel}")
            key = (int(info.size or 0), int(info.mtime_ns or 0))
            cached = self._cache.get(rel)
            if cached is None or cached[:2] != key:
                cached = (*key, digest(local, f"{root}/{rel}"))
                self._cache[rel] = cached
            files[rel] = cached[2]
        write_signature(local, root, files)


class StopOnSignal(Callback):
    """Hands a stop request (``STOP_REQUESTED``) to Tune's graceful stop, from Tune's own loop.

    Tune 2.60 stops gracefully on SIGUSR1 (and on SIGINT, unless ``TUNE_DISABLE_SIGINT_HANDLER``):
    it ends its loop, saves its state with the unfinished trials still pending, and ``fit`` returns;
    a resume then runs those trials again. adl owns SIGINT and SIGTERM during a sweep (so that it can
    tell them apart and exit 130/143) and calls Tune's SIGUSR1 handler at the next step of Tune's
    loop, once that handler is installed.
    """

    def __init__(self) -> None:
        self._sent = False

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        TRIAL_STATUSES.update({str(t): (t.trial_id, t.status, dict(t.config)) for t in trials})

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if STOP_REQUESTED.is_set() and not self._sent:
            handler = signal.getsignal(signal.SIGUSR1)
            if callable(handler):
                self._sent = True
                handler(signal.SIGUSR1, None)
