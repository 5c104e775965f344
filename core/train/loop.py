"""The training loop: AdamW + warm-up/cosine, clipping, validation-only selection, exact resume, DDP.

Determinism and resume.  The data order of epoch ``e`` is a function of ``(train.seed, e)`` only
(``DistributedSampler(seed=seed)`` with ``set_epoch(e)``, which with one process is a plain seeded
permutation), and the learning rate is a pure function of the global step (:func:`lr_at`), so a run is
described at any step boundary by: the current weights, the optimizer tensors, the RNG states (dropout,
narrative dropout) and ``(epoch, step_in_epoch)``.  That is what ``state.safetensors`` holds; it is
written every ``train.checkpoint_every`` steps, at every epoch end, and on SIGTERM/SIGINT (the current
step is finished first).  ``--resume`` reloads it and skips the batches of the epoch already seen, so a
run killed with SIGKILL and resumed ends with the same weights as an uninterrupted one (on CPU).  The
data loader uses its own ``torch.Generator``, so creating a loader never draws from the global RNG.

Selection.  After every epoch the model is scored on the **validation** split (mean squared error of the
forecast, normalised units, averaged over all elements); the best epoch's weights are ``model.safetensors``
and training stops after ``train.patience`` epochs without improvement.  The test split is never used.

Distributed.  Under ``torchrun`` (``WORLD_SIZE > 1``) each process takes ``batch_size / world`` windows
per step from its ``DistributedSampler`` shard; gradients are averaged by DistributedDataParallel, so
with per-sample-mean losses a step equals the single-process step on the union of the shards.  Only rank
0 writes files; validation is sharded and summed with ``all_reduce``.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from core import checkpoint as ckpt
from core.errors import ConfigError, DataError, UserError

STOP_STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr_ratio: float) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up then cosine to ``min_lr_ratio·lr``.

    ``lr(s) = lr · (s + 1) / warmup`` for ``s < warmup``; afterwards
    ``lr · (r + (1 − r) · ½ (1 + cos(π · p)))`` with ``p = (s − warmup) / max(1, total − warmup)``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))


@dataclass
class ModelSpec:
    """What the trainer needs about a model: its registry name, its JSON config and how to build it.

    ``forward(model, batch, features)`` runs the model on a batch (dict with ``x`` and, for a text
    teacher, ``text_tokens``/``text_mask``/``text_pooled``) and returns the dict of named outputs.
    """

    name: str
    config: dict[str, Any]
    build: Callable[[], Any]
    uses_text: bool = False
    forward: Callable[..., dict] | None = None


def call_model(model, batch: Mapping[str, Any], features: bool = False, uses_text: bool = False) -> dict:
    """The one place that calls a model: ``model(x, [text_tokens, text_mask, text_pooled,] return_features)``."""
    kwargs: dict[str, Any] = {}
    if uses_text:
        for key in ("text_tokens", "text_mask", "text_pooled"):
            if key in batch:
                kwargs[key] = batch[key]
    if features:
        kwargs["return_features"] = True
    out = model(batch["x"], **kwargs)
    if not isinstance(out, Mapping) or "forecast" not in out:
        raise TypeError(f"model forward must return a dict with 'forecast', got {type(out).__name__}")
    return out


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # "finished", "early-stopped", "interrupted"
    epochs_done: int
    global_step: int
    best_val: float | None
    best_epoch: int | None
    exit_code: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop finishes its step, checkpoints and returns."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:  # second Ctrl-C: give up now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _mse_sums(forecast, target):
    diff = (forecast.float() - target.float())
    return (diff * diff).sum(), diff.numel()


class Trainer:
    """One training run (see the module docstring).  Use :func:`train`."""

    def __init__(self, cfg, run_dir: str | Path, data, spec: ModelSpec, *, resume: bool = False,
                 teacher=None, dist=None, log: Callable[[str], None] | None = None, state=None):
        import torch

        from core.device import Runtime
        from core.train import ddp

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.data = data
        self.spec = spec
        self.resume = resume
        self.state = state  # a checkpoint.ResumeState already read (or None)
        self.teacher = teacher  # a TeacherTargets (core.train.teacher_cache) or None
        self.dist = dist or ddp.DistInfo.from_env()
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.rt = Runtime.from_section(cfg.runtime, device=self.dist.device_name(cfg.runtime.device))
        self.torch = torch

        world = self.dist.world_size
        if cfg.train.batch_size % world:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} must be divisible by the number of "
                              f"processes ({world})")
        self.local_batch = cfg.train.batch_size // world
        if len(data.train) == 0 or len(data.val) == 0:
            raise DataError("the training and validation splits need at least one window each")
        self.dcfg = None
        from core.config import distill_config

        self.dcfg = distill_config(cfg.distill)
        self.method = cfg.distill.method
        if self.method != "none" and teacher is None:
            raise ConfigError(f"distill.method={self.method!r} needs a teacher run: set distill.teacher=RUN_DIR "
                              f"(or distill.method=none to train without distillation)")

    # ------------------------------------------------------------------ pieces
    def _steps_per_epoch(self) -> int:
        from torch.utils.data import DistributedSampler

        n_local = len(DistributedSampler(self.data.train, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                         shuffle=False))
        steps = math.ceil(n_local / self.local_batch)
        if self.cfg.train.max_steps_per_epoch:
            steps = min(steps, self.cfg.train.max_steps_per_epoch)
        return steps

    def _epoch_indices(self, epoch: int) -> list[int]:
        """This process's window order for ``epoch``: a function of (seed, epoch, rank, world) only."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(self.data.train, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                     shuffle=True, seed=self.cfg.train.seed, drop_last=False)
        sampler.set_epoch(epoch)
        return list(sampler)

    def _loader(self, dataset, indices, batch_size):
        import torch
        from torch.utils.data import DataLoader

        g = torch.Generator()
        g.manual_seed(self.cfg.train.seed)
        return DataLoader(dataset, batch_size=batch_size, sampler=list(indices), shuffle=False,
                          generator=g, drop_last=False, **self.rt.loader_kwargs())

    def _loss(self, out, batch):
        """``core.losses.distill_loss`` (method ``none`` = the task loss alone, no teacher needed)."""
        from core.losses import distill_loss

        teacher_out = batch.get("teacher") if self.method != "none" else None
        try:
            return distill_loss(out, teacher_out, batch["y"], self.dcfg)
        except ValueError as exc:  # e.g. a KD term whose inputs this model/teacher does not produce
            raise ConfigError(f"distill.method={self.method!r} with model {self.spec.name!r}: {exc}") from None

    def _batch(self, batch):
        batch = dict(batch)
        if self.teacher is not None and self.method != "none":
            batch["teacher"] = self.teacher.lookup(batch["index"])
        if self.spec.uses_text and self.data_text is not None:
            batch.update(self.data_text.lookup("train", batch["index"]))
        return self.rt.to({k: v for k, v in batch.items() if k != "t0"})

    def _features_needed(self) -> bool:
        return self.method != "none"

    def validate(self, model) -> float:
        import torch

        from core.train import ddp

        model.eval()
        bs = self.cfg.train.eval_batch_size or self.cfg.train.batch_size
        n = len(self.data.val)
        indices = list(range(self.dist.rank, n, self.dist.world_size))
        sq = torch.zeros((), dtype=torch.float64, device=self.rt.device)
        count = torch.zeros((), dtype=torch.float64, device=self.rt.device)
        with torch.no_grad():
            for batch in self._loader(self.data.val, indices, bs):
                if self.spec.uses_text and self.data_text is not None:
                    batch = {**batch, **self.data_text.lookup("val", batch["index"])}
                b = self.rt.to({k: v for k, v in batch.items() if k != "t0"})
                with self.rt.autocast():
                    out = call_model(model, b, uses_text=self.spec.uses_text)
                s, c = _mse_sums(out["forecast"], b["y"])
                sq += s.double()
                count += c
        model.train()
        sq, count = ddp.all_reduce_sum([sq, count], self.dist)
        return float(sq / count)

    # ------------------------------------------------------------------ run
    def run(self) -> TrainResult:
        import torch
        from tqdm.auto import tqdm

        from core.config import save_config
        from core.device import unwrap
        from core.train import ddp

        cfg, tc = self.cfg, self.cfg.train
        main = self.dist.rank == 0
        self.data_text = getattr(self.data, "text", None)
        state = self.state
        if state is None and self.resume and (self.run_dir / ckpt.STATE_WEIGHTS).is_file():
            state = ckpt.load_state(self.run_dir)
        elif self.resume and main and state is None:
            self.log(f"s2kd: nothing to resume in {self.run_dir}; starting a new run")
        if state is not None and (self.run_dir / ckpt.MODEL_JSON).is_file():
            from core.train.data import check_compatible

            saved = ckpt.load_model_meta(self.run_dir).get("data") or {}
            if saved.get("dims"):
                check_compatible(saved, self.data.description, what="data")

        torch.manual_seed(tc.seed)
        module = self.spec.build()
        if state is not None:
            ckpt.load_into(module, state.model, state.path)
        module = self.rt.prepare(module)
        model = ddp.wrap(module, self.dist, self.rt,
                         find_unused_parameters=self._features_needed() or self.spec.uses_text)
        params = [p for p in unwrap(model).parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)

        steps_per_epoch = self._steps_per_epoch()
        total_steps = steps_per_epoch * tc.epochs
        warmup = int(round(tc.warmup_fraction * total_steps))
        p = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_val": None, "best_epoch": None,
             "bad_epochs": 0, "history": [], "sums": {}, "samples": 0, "seconds": 0.0, "status": "running",
             "steps_per_epoch": steps_per_epoch}
        if state is not None:
            state.restore_optimizer(optimizer)
            p.update(state.progress)
            if p.get("steps_per_epoch") != steps_per_epoch:
                raise DataError(f"the run has {p.get('steps_per_epoch')} steps per epoch but this config/data gives "
                                f"{steps_per_epoch}; resume with the same data, batch size and processes",
                                path=state.path)
            state.restore_rng()
            if p["status"] == "interrupted":
                p["status"] = "running"
            if main:
                ckpt.write_metrics(self.run_dir, p["history"])
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / ckpt.CONFIG_TOML,
                        self.spec.config if self.spec.name == cfg.model.name else None)
        if p["status"] in ("finished", "early-stopped"):
            if main:
                self.log(f"s2kd: the run in {self.run_dir} is already {p['status']}")
            return self._result(p, 0)

        def save_state():
            if main:
                ckpt.save_state(self.run_dir, unwrap(model).state_dict(), optimizer, p)
            ddp.barrier(self.dist)

        model.train()
        features = self._features_needed()
        bar = tqdm(total=total_steps, initial=p["global_step"], disable=None if (main and cfg.runtime.progress) else True,
                   desc=f"train {self.spec.name}", unit="step", dynamic_ncols=True, file=sys.stderr)
        exit_code = 0
        seen_here, t_here = 0, time.perf_counter()
        with _StopFlag() as stop:
            while p["epoch"] < tc.epochs:
                epoch = p["epoch"]
                indices = self._epoch_indices(epoch)
                start = p["step_in_epoch"]
                indices = indices[start * self.local_batch: steps_per_epoch * self.local_batch]
                t_epoch = time.perf_counter()
                step = start
                for batch in self._loader(self.data.train, indices, self.local_batch):
                    b = self._batch(batch)
                    lr = lr_at(p["global_step"], total_steps, warmup, tc.lr, tc.min_lr_ratio)
                    for g in optimizer.param_groups:
                        g["lr"] = lr
                    with self.rt.autocast():
                        out = call_model(model, b, features=features, uses_text=self.spec.uses_text)
                        loss, terms = self._loss(out, b)
                    if not torch.isfinite(loss.detach()):
                        raise DataError(f"the loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}; "
                                        f"lower train.lr or check the data")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if tc.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
                    optimizer.step()
                    n_b = int(b["x"].shape[0])
                    sums = p["sums"]
                    sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n_b
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * n_b
                    sums["n"] = sums.get("n", 0) + n_b
                    step += 1
                    p["step_in_epoch"] = step
                    p["global_step"] += 1
                    elapsed = p["seconds"] + time.perf_counter() - t_epoch
                    seen_here += n_b
                    rate = seen_here * self.dist.world_size / max(time.perf_counter() - t_here, 1e-9)
                    p["lr"] = lr
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.4g}", lr=f"{lr:.2g}",
                                    samples_s=f"{rate:.1f}", epoch=epoch + 1, refresh=False)
                    halt = ddp.any_flag(stop.signum is not None, self.dist)
                    if halt:
                        p["status"] = "interrupted"
                    if halt or (tc.checkpoint_every and p["global_step"] % tc.checkpoint_every == 0
                                and step < steps_per_epoch):
                        p["seconds"] = elapsed
                        t_epoch = time.perf_counter()
                        save_state()
                    if halt:
                        signum = stop.signum if stop.signum is not None else signal.SIGTERM
                        exit_code = STOP_STATUS.get(signum, 143)
                        bar.close()
                        if main:
                            self.log(f"s2kd: stopped by signal at epoch {epoch + 1}, step {step}/{steps_per_epoch}; "
                                     f"state saved, continue with: s2kd train --out {self.run_dir} --resume")
                        return self._result(p, exit_code)

                # ---- epoch end: validate, select, log, checkpoint
                seconds = p["seconds"] + time.perf_counter() - t_epoch
                val = self.validate(model)
                sums = ddp.all_reduce_dict(p["sums"], self.dist)
                n = max(sums.pop("n", 0), 1)
                record = {"epoch": epoch + 1, "global_step": p["global_step"], "lr": p.get("lr"),
                    "train_loss": sums.pop("loss", 0.0) / n,
                    "train_terms": {k: v / n for k, v in sorted(sums.items())},
                    "val_mse": val, "samples": int(n), "seconds": round(seconds, 3),
                    "samples_per_s": round(n / max(seconds, 1e-9), 2), "world_size": self.dist.world_size}
                best = p["best_val"] is None or val < p["best_val"]
                record["best"] = best
                p["history"].append(record)
                if best:
                    p["best_val"], p["best_epoch"], p["bad_epochs"] = val, epoch + 1, 0
                    if main:
                        self._save_model(unwrap(model), p)
                else:
                    p["bad_epochs"] += 1
                p.update(epoch=epoch + 1, step_in_epoch=0, sums={}, seconds=0.0)
                stopping = tc.patience and p["bad_epochs"] >= tc.patience and p["epoch"] < tc.epochs
                if stopping:
                    p["status"] = "early-stopped"
                elif p["epoch"] >= tc.epochs:
                    p["status"] = "finished"
                if main:
                    ckpt.write_metrics(self.run_dir, p["history"])
                    bar.write(f"epoch {epoch + 1}/{tc.epochs}: train {record['train_loss']:.4g}  val_mse {val:.4g}"
                              f"{'  (best)' if best else ''}  {record['samples_per_s']:.1f} samples/s", file=sys.stderr)
                save_state()
                if main and (best or p["status"] != "running"):
                    self._save_model_meta(p)
                if stopping:
                    break
                if ddp.any_flag(stop.signum is not None, self.dist):
                    signum = stop.signum if stop.signum is not None else signal.SIGTERM
                    bar.close()
                    if p["status"] == "running":
                        p["status"] = "interrupted"
                        if main:
                            self.log(f"s2kd: stopped by signal after epoch {epoch + 1}; state saved, continue "
                                     f"with --resume")
                        return self._result(p, STOP_STATUS.get(signum, 143))
        bar.close()
        return self._result(p, exit_code)

    def _meta(self, p) -> dict[str, Any]:
        return {
            "model": {"name": self.spec.name, "config": self.spec.config},
            "normalizer": self.data.normalizer.to_json() if self.data.normalizer is not None else None,
            "data": self.data.description,
            "metrics": {"best_val_mse": p["best_val"], "best_epoch": p["best_epoch"],
                        "epochs_done": p["epoch"], "status": p["status"],
                        "global_step": p["global_step"]},
            "training": {"method": self.method, "loss_weights": self.dcfg.resolved_weights(),
                         "teacher": self.cfg.distill.teacher or None,
                         "seed": self.cfg.train.seed, "world_size": self.dist.world_size,
                         "teacher_cache": getattr(self.teacher, "stats", None),
                         "runtime": self.rt.describe()},
        }

    def _save_model(self, module, p) -> None:
        ckpt.save_model(self.run_dir, module.state_dict(), self._meta(p))

    def _save_model_meta(self, p) -> None:
        """Refresh model.json's metrics (weights unchanged)."""
        meta = ckpt.load_model_meta(self.run_dir)
        meta.update({k: v for k, v in self._meta(p).items()})
        meta["weights_sha256"] = ckpt.file_sha256(self.run_dir / ckpt.MODEL_WEIGHTS)
        from core.io import atomic_write_json

        atomic_write_json(self.run_dir / ckpt.MODEL_JSON, meta)

    def _result(self, p, exit_code) -> TrainResult:
        return TrainResult(self.run_dir, p["status"], p["epoch"], p["global_step"], p["best_val"], p["best_epoch"],
                           exit_code, list(p["history"]))


def train(cfg, run_dir: str | Path, *, resume: bool = False, data=None, spec: ModelSpec | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Train the model of ``cfg`` into ``run_dir`` (see the module docstring).

    ``data`` (a :class:`core.train.data.DataBundle`) and ``spec`` (a :class:`ModelSpec`) default to the
    dataset folder and the registry model named by ``cfg``; tests pass small stand-ins.
    """
    from core.train import ddp
    from core.train.data import build_data

    run_dir = Path(run_dir)
    state = None
    if resume and (run_dir / ckpt.STATE_WEIGHTS).exists():
        state = ckpt.load_state(run_dir)  # a corrupt state is reported before any work is done
    elif not resume and (run_dir / ckpt.STATE_WEIGHTS).exists():
        raise UserError("already holds a training run (use --resume to continue it, or another --out)",
                        path=run_dir)
    dist = ddp.setup()
    try:
        if data is None:
            data = build_data(cfg.data)
        from core.baselines import BASELINES

        if spec is None and cfg.model.name in BASELINES:
            return fit_baseline_run(cfg, run_dir, data, dist, log)
        teacher = None
        if cfg.distill.method != "none":
            from core.train.teacher_cache import prepare_teacher

            teacher = prepare_teacher(cfg, data, dist=dist, log=log)
        if spec is None:
            from core.train.build import model_spec

            spec = model_spec(cfg, data, teacher_meta=None if teacher is None else teacher.meta)
        if spec.uses_text and getattr(data, "text", None) is None:
            from core.train.text import attach_text

            attach_text(cfg, data, log=log)
        trainer = Trainer(cfg, run_dir, data, spec, resume=resume, teacher=teacher, dist=dist, log=log, state=state)
        return trainer.run()
    finally:
        ddp.teardown(dist)


def fit_baseline_run(cfg, run_dir: Path, data, dist, log=None) -> TrainResult:
    """``s2kd train model.name=climatology|historical-average|persistence``: fit on the training split,
    score on validation, save the run directory like a trained model."""
    import numpy as np

    from core.baselines import fit_baseline
    from core.config import save_config

    train_fields = data.fields.get("train")
    if train_fields is None:
        raise DataError("a baseline is fitted on the training fields, which this data bundle lacks")
    model = fit_baseline(cfg.model.name, train_fields, data.description["t_in"], data.description["t_out"],
                         data.description)
    sq, count = 0.0, 0
    val = data.val
    parent = getattr(val, "parent", val)
    positions = getattr(val, "indices", range(len(val)))
    for i in positions:
        i = int(i)
        in_times, out_times = parent.window_times(i)
        item = parent[i]
        if model.name == "persistence":
            pred = model.predict(item["x"].numpy())
        else:
            pred = data.normalizer.apply(model.forecast_times(out_times))
        diff = np.asarray(pred, dtype=np.float64) - item["y"].numpy().astype(np.float64)
        sq += float((diff * diff).sum())
        count += diff.size
    val_mse = sq / max(count, 1)
    if dist.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / ckpt.CONFIG_TOML)
        model.save(run_dir, data.normalizer)
        meta = ckpt.load_model_meta(run_dir)
        meta["metrics"] = {"best_val_mse": val_mse, "status": "finished"}
        from core.io import atomic_write_json

        atomic_write_json(run_dir / ckpt.MODEL_JSON, meta)
        ckpt.write_metrics(run_dir, [{"epoch": 0, "val_mse": val_mse, "fit": True}])
    return TrainResult(run_dir, "finished", 0, 0, val_mse, 0, 0, [{"val_mse": val_mse}])
