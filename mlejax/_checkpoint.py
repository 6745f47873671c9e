"""Checkpoints of a stream: one ``.npz`` file per finished chunk, resumed only by the problem
that wrote them (:class:`Checkpoint`)."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
import zipfile
import zlib

import jax
import numpy as np

from mlejax import _fingerprint
from mlejax._chunks import Chunk
from mlejax._config import Config
from mlejax._results_io import write_json

__all__ = ["Checkpoint"]


# What each entry of a checkpoint's fingerprint is, in the words of an error message.
# The recorded key "chunk_size" keeps its old name (fit_batch's datasets_per_chunk), so that
# checkpoints written before the rename still resume.
_WHAT = {"n_total": "the number of datasets", "chunk_size": "datasets_per_chunk",
         "param_names": "the parameters (init's structure)", "method": "method",
         "restarts": "restarts", "loglik_fn": "the log-likelihood function (loglik_fn)",
         "key": "the PRNG key", "first_index": "first_index",
         "datasets": "the datasets it holds", "data": "the data", "weights": "the weights",
         "init": "the starting values (init)"}


class Checkpoint:
    """One ``.npz`` file per finished chunk, and a ``meta.json`` naming the problem.

    A checkpoint is resumed only by the problem that wrote it. ``meta.json`` records the
    run's shape (K, chunk size, parameter names, method, restarts) and fingerprints
    (:mod:`mlejax._fingerprint`: content digests, the same in every process) of the
    log-likelihood function (its module, name, bytecode and the values it closes over), of
    every other static setting (constraints, tolerances, step limit, optimiser, penalty,
    ...), and of the PRNG key; each chunk file records the fingerprints of its own inputs
    (which datasets, their data, weights and starting values), computed from the chunk as it
    streams past. A checkpoint of another problem is refused with a ``ValueError`` naming
    what differs; a chunk file that cannot be read (truncated, corrupt) is fitted again,
    with a warning naming it. Files are replaced atomically, so an interrupted write leaves
    the old file or none.
    """

    def __init__(self, path: str, cfg: Config, n_total: int | None, chunk_size: int,
                 key, first_index: int = 0):
        os.makedirs(path, exist_ok=True)
        self.path = path
        fn = cfg.loglik_fn
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
        settings = {}
        for f in dataclasses.fields(cfg):
            # The platform is where the fits run, not what they fit: a run begun on CPU may
            # resume on a GPU (and checkpoints written before it was recorded still resume).
            if f.name in ("loglik_fn", "platform"):
                continue
            value = getattr(cfg, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                for g in dataclasses.fields(value):   # the Problem: name its parts apart
                    settings[f"{f.name}.{g.name}"] = _fingerprint.digest(getattr(value, g.name))
            else:
                settings[f.name] = _fingerprint.digest(value)
        key_data = (jax.random.key_data(key)
                    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
        meta = {"format": "mlejax fit_batch checkpoint", "version": 2, "n_total": n_total,
                "chunk_size": chunk_size, "param_names": list(cfg.problem.param_names),
                "method": cfg.method, "restarts": cfg.restarts,
                "loglik_fn": {"name": name, "digest": _fingerprint.digest(fn)},
                "settings": settings, "key": _fingerprint.digest(key_data),
                "first_index": int(first_index)}
        meta_path = os.path.join(path, "meta.json")
        if os.path.exists(meta_path):
            try:
                with open(meta_path) as fh:
                    old = json.load(fh)
            except (OSError, ValueError) as err:
                raise ValueError(f"checkpoint={path!r}: {meta_path} cannot be read ({err}); "
                                 "its chunks cannot be checked against this problem. Delete "
                                 "the directory to fit afresh, or use another.") from None
            self._compare(old, meta)
        else:
            if any(f.startswith("chunk_") for f in os.listdir(path)):
                raise ValueError(f"checkpoint={path!r} holds chunk files but no meta.json "
                                 "saying which problem they belong to; delete the directory "
                                 "to fit afresh, or use another.")
            write_json(meta_path, meta)

    def _refuse(self, where: str, what: list[str]) -> ValueError:
        return ValueError(
            f"checkpoint={self.path!r} holds the fits of another problem: {where} differs from "
            f"this call's in {', '.join(what)}. Its results would be returned as this "
            "problem's, so they are not used: pass another checkpoint directory, or delete "
            f"{self.path!r} to fit this problem afresh.")

    def _compare(self, old: dict, meta: dict) -> None:
        if not isinstance(old, dict) or old.get("version") != meta["version"]:
            raise ValueError(
                f"checkpoint={self.path!r} was written by another version of mlejax, which "
                "did not record the fingerprint of its problem (data, init, log-likelihood, "
                "weights, settings), so its results cannot be checked against this call. "
                "Delete the directory to fit afresh, or use another.")
        what = []
        for entry in meta:
            if entry == "settings":
                new, prev = meta[entry], old.get(entry) or {}
                what += [f"the setting {name}" for name in sorted(set(new) | set(prev))
                         if new.get(name) != prev.get(name)]
            elif entry == "loglik_fn":
                if old.get(entry) != meta[entry]:
                    prev = (old.get(entry) or {}).get("name")
                    what.append(_WHAT[entry] + (f" ({prev} then, {meta[entry]['name']} now)"
                                                if prev != meta[entry]["name"] else
                                                f" ({prev}: its code or the values it uses)"))
            elif old.get(entry) != meta[entry]:
                what.append(_WHAT.get(entry, entry) + (
                    f" ({old.get(entry)!r} then, {meta[entry]!r} now)"
                    if entry in ("n_total", "chunk_size", "method", "restarts", "param_names",
                                 "first_index") else ""))
        if what:
            raise self._refuse("meta.json", what)

    def fingerprint(self, ch: Chunk) -> dict:
        """The fingerprints of a chunk's inputs."""
        return {"datasets": _fingerprint.digest((ch.index, ch.count)),
                "data": _fingerprint.digest(ch.data),
                "weights": _fingerprint.digest(ch.weights),
                "init": _fingerprint.digest(ch.start)}

    def _file(self, i: int) -> str:
        return os.path.join(self.path, f"chunk_{i:07d}.npz")

    def save(self, i: int, leaves: list, inputs: dict) -> None:
        tmp = self._file(i) + ".tmp.npz"
        np.savez(tmp, *leaves, fingerprint=np.array(json.dumps(inputs)))
        os.replace(tmp, self._file(i))

    def load(self, i: int, inputs: dict, count: int, specs: list) -> list | None:
        """The saved results of chunk ``i``, or None when it is to be fitted: not saved, or
        unreadable (with a warning). Saved for other inputs: ``ValueError``."""
        path = self._file(i)
        if not os.path.exists(path):
            return None
        try:
            # allow_pickle=False (NumPy's default, said here on purpose): an object array
            # in a crafted file is refused, never unpickled.
            with np.load(path, allow_pickle=False) as z:
                stored = json.loads(str(z["fingerprint"])) if "fingerprint" in z.files \
                    else None
                n = sum(1 for f in z.files if f.startswith("arr_"))
                leaves = [z[f"arr_{j}"] for j in range(n)]
            if stored is not None and not isinstance(stored, dict):
                raise ValueError("its fingerprint is not a JSON object")
            if stored is not None and stored == inputs:
                good = len(leaves) == len(specs) and all(
                    x.shape == (count,) + shape and x.dtype == dt
                    for x, (shape, dt) in zip(leaves, specs))
                if not good:
                    raise ValueError("its arrays are not the shapes and dtypes of this fit's "
                                     "results")
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
                zlib.error) as err:
            warnings.warn(f"checkpoint file {path} cannot be read ({type(err).__name__}: "
                          f"{err}); its chunk is fitted again and the file rewritten. (To "
                          "recompute it by hand, delete that file.)", stacklevel=6)
            return None
        if stored is None:
            raise ValueError(f"checkpoint file {path} records no fingerprint of its inputs "
                             "(another version of mlejax wrote it), so it cannot be checked "
                             f"against this problem: delete it to fit its chunk afresh, or "
                             f"use another checkpoint directory.")
        what = [_WHAT.get(k, k) for k in sorted(set(inputs) | set(stored))
                if inputs.get(k) != stored.get(k)]
        if what:
            raise self._refuse(f"chunk {i} ({path})", what)
        return leaves

