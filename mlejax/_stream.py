"""The streamer: chunks of one static configuration through one compiled program.

Each chunk is dispatched asynchronously (sharded over ``devices=``, re-packed with
``repack=``, or in blocks on CPU from a background thread), and the host blocks on a chunk's
results only once the next is in flight; the results go to an
:class:`~mlejax._results_io.Assembler` and, with ``checkpoint=``, to a
:class:`~mlejax._checkpoint.Checkpoint`. Ctrl-C stops it with what was fitted kept.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._checkpoint import Checkpoint
from mlejax._chunks import Chunk, nan_datasets
from mlejax._config import Config
from mlejax._configure import dataset_keys
from mlejax._kernels import batch_block, fit_batch_concurrently, kernel
from mlejax._repack import fit_repacked
from mlejax._results_io import Assembler
from mlejax.result import FitResult
from mlejax.status import Status

__all__ = ["Streamer"]


class Streamer:
    """Runs chunks of one static configuration through one compiled program."""

    def __init__(self, cfg: Config, key: jax.Array, *, chunk_size: int, repack: int | None,
                 devices, progress: bool, checkpoint: str | None, n_total: int,
                 first_index: int = 0, out=None):
        self.cfg, self.key, self.chunk_size, self.repack = cfg, key, chunk_size, repack
        self.first_index = first_index
        self.multiple = 1
        self.sharding = None
        if devices is not None:
            devices = list(devices)
            self.multiple = len(devices)
            mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
            self.sharding = jax.sharding.NamedSharding(mesh,
                                                       jax.sharding.PartitionSpec("batch"))
        self.checkpoint = checkpoint
        self.out_dir = out
        self.n_total = n_total
        self.progress = progress
        self.nan_seen: list[int] = []
        self.out: Assembler | None = None
        self.bar = None
        self.ckpt: Checkpoint | None = None
        self.chunk_no = 0
        self.n_done = self.n_conv = 0
        self.interrupted = False

    def _to_device(self, tree):
        if tree is None:
            return None
        return jax.device_put(tree, self.sharding) if self.sharding is not None else \
            jax.device_put(tree)

    def _args(self, ch: Chunk):
        keys = dataset_keys(self.key, self.first_index + ch.index)
        start = self._to_device(ch.start) if self.cfg.init_batched else jnp.asarray(ch.start)
        return (start, self._to_device(ch.data), self._to_device(ch.weights),
                self._to_device(keys))

    def _launch(self, ch: Chunk):
        args = self._args(ch)
        if self.sharding is not None:
            if self.repack is None:
                return kernel(self.cfg)(*args)
            return fit_repacked(self.cfg, *args, segment=self.repack,
                                 multiple=self.multiple, blocks=False)
        # On CPU a chunk of more than one block runs in blocks that each stop with their own
        # fits, in shares on all cores (mlejax._blocks): re-packing has nothing left to do
        # there (10,000 fits with 1% stragglers: 1.31x the batch without them, against
        # 2.4x re-packed), so it runs only where the chunk is one block.
        if self.repack is None or batch_block(self.cfg, args[1], args[2]) is not None:
            # From a background thread: the shares wait for their results, and the host
            # reads the next chunk and stores the last one's results meanwhile.
            return _launcher().submit(fit_batch_concurrently, self.cfg, *args)
        return fit_repacked(self.cfg, *args, segment=self.repack, multiple=self.multiple,
                             blocks=True)

    def _template(self, ch: Chunk) -> FitResult:
        """The result structure of a chunk, without compiling (``jax.eval_shape``)."""
        def spec(tree):
            return jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), tree)
        start = spec(ch.start) if self.cfg.init_batched else jnp.asarray(ch.start)
        return jax.eval_shape(kernel(self.cfg), start, spec(ch.data), spec(ch.weights),
                              dataset_keys(self.key, self.first_index + ch.index))

    def run(self, chunks: Iterator[Chunk]) -> None:
        """Fits every chunk into the shared host buffers; stops early on Ctrl-C."""
        chunks = iter(chunks)
        first = next(chunks, None)
        if first is None or self.interrupted:
            return
        if self.out is None:
            from tqdm.auto import tqdm

            self.out = Assembler(self.n_total, self._template(first), out=self.out_dir)
            self.bar = tqdm(total=self.n_total, unit="fit", disable=not self.progress,
                            dynamic_ncols=True)
            if self.checkpoint:
                self.ckpt = Checkpoint(self.checkpoint, self.cfg, self.n_total,
                                        self.chunk_size, self.key, self.first_index)
        pending = None
        chunks = itertools.chain([first], chunks)
        del first  # no reference to a chunk's host arrays outlives its dispatch
        try:
            for ch in chunks:
                i = self.chunk_no
                self.chunk_no += 1
                inputs = None
                if self.ckpt is not None:
                    inputs = self.ckpt.fingerprint(ch)
                    leaves = self.ckpt.load(i, inputs, ch.count, self.out.specs)
                    if leaves is not None:
                        self._collect(ch, leaves)
                        continue
                self.nan_seen += nan_datasets(ch)[: max(0, 20 - len(self.nan_seen))]
                res = self._launch(ch)  # dispatched asynchronously
                ch = dataclasses.replace(ch, start=None, data=None, weights=None)
                if pending is not None:
                    self._finish(*pending)  # blocks on the previous chunk while this one runs
                pending = (i, ch, res, inputs)
            if pending is not None:
                self._finish(*pending)
        except KeyboardInterrupt:
            self.interrupted = True
            if pending is not None:  # already dispatched: keep it unless interrupted again
                try:
                    self._finish(*pending)
                except KeyboardInterrupt:
                    pass

    def _collect(self, ch: Chunk, leaves: list) -> None:
        self.out.put(ch.index[: ch.count], leaves)
        status = np.asarray(jax.tree_util.tree_unflatten(self.out.treedef, leaves).status)
        self.n_conv += int(np.sum(status[: ch.count] == Status.CONVERGED))
        self.n_done += ch.count
        self.bar.update(ch.count)
        self.bar.set_postfix(converged=f"{self.n_conv / max(self.n_done, 1):.1%}")

    def _finish(self, i: int, ch: Chunk, res, inputs: dict | None) -> None:
        if isinstance(res, concurrent.futures.Future):
            res = res.result()
        leaves = [np.asarray(x)[: ch.count]
                  for x in jax.tree_util.tree_leaves(jax.device_get(res))]
        if self.ckpt is not None:
            self.ckpt.save(i, leaves, inputs)
        self._collect(ch, leaves)

    def result(self) -> FitResult:
        if self.bar is not None:
            self.bar.close()
        if self.out is None:
            raise ValueError("fit_batch received no datasets.")
        return self.out.result()


_LAUNCHER: concurrent.futures.ThreadPoolExecutor | None = None


def _launcher() -> concurrent.futures.ThreadPoolExecutor:
    """One background thread that runs a stream's chunks one after another."""
    global _LAUNCHER
    if _LAUNCHER is None:
        _LAUNCHER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlejax-stream")
    return _LAUNCHER

