"""Training-step speed and memory of difhydro against its PyTorch peers.

Run ``python benchmarks/speed_training.py [--quick]``. It prints the processor and, for
(a) and (b), the floor: the same matmul FLOPs as the step run as a bare chain of GEMMs in
XLA and in torch, and each setting's distance to it. Sections:

(a) one train step (forward + backward + Adam update, MSE loss) of the regional LSTM at
    256 basins x 365 days x 5 inputs x 256 hidden, one output: ``difhydro.nn.LSTM`` +
    optax against neuralhydrology's ``CudaLSTM`` + ``torch.optim.Adam``;
(b) one train step of δHBV-style dPL, LSTM(256) -> HBV (16 components, dynamic BETA and
    BETAET, 365-day warm-up without gradients + 365 days, gamma routing) at 100 basins:
    ``difhydro.hybrid.DifferentiableParameterLearning`` against dmg's ``DplModel``
    (``LstmModel`` + ``hydrodl2.models.hbv.hbv.Hbv``);
(c) peak memory of a jit-compiled forward + backward of EXP-HYDRO at 512 basins x
    3650 days, with and without ``checkpoint=True``: XLA's ``memory_analysis()`` of the
    compiled program and the max RSS of a child process that runs it.

PyTorch sides run as is, with ``torch.set_flush_denormal(True)`` and with
``torch.set_num_threads(1)``; the fair ratio is against the fastest of the three. Every
torch import is optional: without torch, neuralhydrology, hydrodl2 or dmg the script says
why and times the JAX side only. Without dmg, section (b) composes the same modules as
dmg 1.5 (``Linear -> ReLU -> LSTM -> Linear`` then ``Hbv``) from torch and hydrodl2.

Times are best wall-clock seconds after a warm-up (JAX: after compilation), state threaded
through the steps as in a training loop. The machine may be shared: the load average is
printed next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_time, processor  # noqa: E402

from difhydro.hybrid import DifferentiableParameterLearning  # noqa: E402
from difhydro.nn import LSTM  # noqa: E402
from difhydro.physics import HBV, ExpHydro, day_length, simulate  # noqa: E402

LEARNING_RATE = 1e-3
N_ATTRIBUTES = 10


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------------------------------
# the floor: the step's matmuls alone, as a bare chain of GEMMs
# ---------------------------------------------------------------------------------------


def lstm_gemm_flops(batch: int, hidden: int, forward_steps: int, backward_steps: int) -> float:
    """Matmul FLOPs of an LSTM's recurrence: per forward step ``h [B, H] @ W_hh [H, 4H]``;
    per backward step the gate gradient times ``W_hh^T`` and ``h^T`` times the gate gradient
    (the weight gradient): 2·B·H·4H FLOPs each."""
    return 2.0 * batch * hidden * 4 * hidden * (forward_steps + 2 * backward_steps)


def jax_gemm_floor(batch: int, hidden: int, forward_steps: int, backward_steps: int, repeat: int) -> float:
    """Best seconds of the recurrence's GEMMs alone in XLA: a ``lax.scan`` whose steps are
    the dependent ``[B, H] x [H, 4H]`` (forward), then ``[B, 4H] x [4H, H]`` and
    ``[H, B] x [B, 4H]`` (backward) matmuls, nothing else."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(0, hidden**-0.5, (hidden, 4 * hidden)), jnp.float32)
    h0 = jnp.asarray(rng.normal(0, 1, (batch, hidden)), jnp.float32)
    # with W ~ N(0, 1/H), h @ W keeps the spread of h and g @ W^T doubles it: the 0.5 keeps
    # the chain's values O(1) (no overflow, no denormals, which eager torch does not flush)

    @jax.jit
    def chain(h, w):
        def forward(h, _):
            return (h @ w)[:, :hidden], None

        def backward(carry, _):
            h, dw = carry
            g = h @ w  # stands for the gate gradient [B, 4H]
            return ((g @ w.T) * 0.5, dw + h.T @ g), None

        h, _ = jax.lax.scan(forward, h, None, length=forward_steps)
        (h, dw), _ = jax.lax.scan(backward, (h, jnp.zeros_like(w)), None, length=backward_steps)
        return h, dw

    return best_time(chain, h0, w, repeat=repeat)


def torch_gemm_floor(torch, batch: int, hidden: int, forward_steps: int, backward_steps: int, repeat: int) -> float:
    """The same GEMM chain as :func:`jax_gemm_floor` in eager torch (no autograd)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(hidden, 4 * hidden, generator=gen) * hidden**-0.5
    h0 = torch.randn(batch, hidden, generator=gen)

    def chain():
        with torch.no_grad():
            h, dw = h0, torch.zeros_like(w)
            for _ in range(forward_steps):
                h = torch.mm(h, w)[:, :hidden]
            for _ in range(backward_steps):
                g = torch.mm(h, w)
                dw += torch.mm(h.T, g)
                h = torch.mm(g, w.T) * 0.5
            return h, dw

    return best_time(chain, repeat=repeat, sync=_eager)


def floor_section(result: dict, batch: int, hidden: int, forward_steps: int, backward_steps: int,
                  repeat: int) -> dict:
    """Time the floor in XLA and torch, print each step's distance to it, add to ``result``.

    The forward chain does one GEMM per step and the backward two more of the same size
    (the backward of a forward GEMM with a ``[B, 4H]`` result), so the chain has exactly the
    recurrence's matmul FLOPs; input projections (``F << H``) are left out.
    """
    flops = lstm_gemm_flops(batch, hidden, forward_steps, backward_steps)
    floor = {"xla": jax_gemm_floor(batch, hidden, forward_steps, backward_steps, repeat)}
    torch, _ = load_torch()
    if torch is not None:
        floor["torch"] = torch_gemm_floor(torch, batch, hidden, forward_steps, backward_steps, repeat)
    best = min(floor.values())
    print(f"  floor: the recurrence's GEMMs alone, {flops / 1e9:.0f} GFLOP "
          f"({forward_steps} forward + {backward_steps} backward steps of [{batch}, {hidden}] x [{hidden}, {4 * hidden}])")
    for name, sec in floor.items():
        print(f"    bare GEMM chain in {name:5s} {sec * 1e3:10.1f} ms  ({flops / sec / 1e9:6.0f} GFLOP/s)")
    rows = {"difhydro as is": result["jax_s"], **{f"difhydro, {k}": v for k, v in result["jax_variants_s"].items() if v}}
    rows.update({f"torch, {k}": v for k, v in result.get("torch_s", {}).items()})
    for label, sec in rows.items():
        print(f"    {label:58s} {sec / best:5.2f}x the floor")
    result["floor_s"] = floor
    result["over_floor"] = {label: sec / best for label, sec in rows.items()}
    return result


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "(version unknown)"


def jax_step_time(step: Callable, state, batch, repeat: int) -> float:
    """Best seconds of ``state = step(state, batch)`` after one compiling call."""
    state = jax.block_until_ready(step(state, batch))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        state = jax.block_until_ready(step(state, batch))
        best = min(best, time.perf_counter() - t0)
    return best


#: Child-process settings timed next to "as is": label -> (extra environment, extra shape).
JAX_VARIANTS = {
    # XLA's matmuls do not honour --xla_cpu_multi_thread_eigen=false, so one core is
    # enforced with the child's CPU affinity (set before the XLA client starts).
    "one core (sched_setaffinity)": ({}, {"one_core": True}),
    # XLA allocates its temporaries afresh each step; with 4 KiB pages that is ~2e5 page
    # faults per LSTM step, with transparent huge pages a few hundred.
    "huge pages (glibc.malloc.hugetlb=1)": ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, {}),
    # opt-in: changes XLA's generated code, so the last bits of the results change too
    "huge pages + 512-bit vectors (XLA_FLAGS)": ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
                                                  "XLA_FLAGS": "--xla_cpu_prefer_vector_width=512"}, {}),
    "bfloat16 matmuls": ({}, {"dtype": "bfloat16"}),
}


def jax_variant_seconds(section: str, label: str, **shape) -> tuple[float | None, str]:
    """Seconds of a section's JAX step in a child process with one of :data:`JAX_VARIANTS`.

    XLA and glibc read their settings once, at start-up, so each variant needs a fresh
    process. Returns ``(seconds, "")`` or ``(None, reason)``.
    """
    extra_env, extra_shape = JAX_VARIANTS[label]
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--jax-child", section,
         "--shape", json.dumps({**shape, **extra_shape})],
        env={**os.environ, **extra_env}, capture_output=True, text=True,
    )
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or ["no output"])[-1]
    return float(out.stdout.strip().splitlines()[-1]), ""


def jax_variants(section: str, labels, **shape) -> dict[str, tuple[float | None, str]]:
    return {label: jax_variant_seconds(section, label, **shape) for label in labels}


def jax_child(section: str, shape: dict) -> None:
    """Child-process body of :func:`jax_variant_seconds`: print the step seconds."""
    if shape.get("one_core"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    dtype = getattr(jnp, shape.get("dtype", "float32"))
    if section == "lstm":
        x, y = lstm_data(shape["batch"], shape["days"], shape["features"])
        print(jax_lstm_step_time(x, y, shape["hidden"], shape["repeat"], dtype))
    else:
        data = hbv_batch(shape["n_basins"], shape["warmup"] + shape["days"])
        print(jax_dpl_step_time(data, shape["hidden"], shape["n_components"], shape["warmup"], shape["repeat"]))


def adam_train_step(apply_loss: Callable, optimizer) -> Callable:
    """jit of ``(params, opt_state), batch -> (params', opt_state')`` (buffers donated)."""

    def step(state, batch):
        params, opt_state = state
        _, grads = jax.value_and_grad(apply_loss)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return jax.jit(step, donate_argnums=0)


def load_torch():
    """The ``torch`` module, or ``None`` and the reason it cannot be imported."""
    try:
        import torch
    except Exception as err:  # ImportError, or a broken binary
        return None, f"{type(err).__name__}: {err}"
    return torch, ""


def _eager(out):
    """Eager torch on the CPU has finished when the call returns."""
    return out


def torch_settings(torch, step: Callable, repeat: int) -> dict[str, float]:
    """Best seconds of ``step()`` as is, with flush-denormal, and with one thread."""
    threads = torch.get_num_threads()

    def timed():  # the warm-up call sets up the allocator and lazy initialisation
        return best_time(step, repeat=repeat, sync=_eager)

    times = {f"as is ({threads} threads)": timed()}
    torch.set_flush_denormal(True)
    times["set_flush_denormal(True)"] = timed()
    torch.set_flush_denormal(False)
    torch.set_num_threads(1)
    try:
        times["set_num_threads(1)"] = timed()
    finally:
        torch.set_num_threads(threads)
    return times


def print_jax(label: str, t_jax: float, variants: dict) -> None:
    print(f"  {label + ', as is':62s} {t_jax * 1e3:10.1f} ms")
    for setting, (sec, why) in variants.items():
        if sec is None:
            print(f"  {label}, {setting}: child process failed ({why})")
        else:
            print(f"  {label + ', ' + setting:62s} {sec * 1e3:10.1f} ms")


def print_comparison(label_torch: str, times: dict[str, float], t_jax: float, variants: dict,
                     target: str) -> dict[str, float]:
    """Print torch rows and the ratios; the headline ratio is fastest torch / difhydro as is
    (float32); float32 settings and bfloat16 matmuls are reported separately."""
    for setting, sec in times.items():
        print(f"  {label_torch + ', ' + setting:62s} {sec * 1e3:10.1f} ms   torch / JAX = {sec / t_jax:6.2f}")
    best = min(times.values())
    ratios = {"fastest_torch_over_jax": best / t_jax}
    print(f"  fastest torch / difhydro (as is, float32) = {best / t_jax:.2f}x  (target {target})")
    float32 = [sec for label, (sec, _) in variants.items() if sec is not None and "bfloat16" not in label]
    if float32:
        ratios["fastest_torch_over_fastest_jax_float32"] = best / min(t_jax, *float32)
        print(f"  fastest torch / fastest difhydro float32 setting = {best / min(t_jax, *float32):.2f}x")
    command = variants.get("huge pages (glibc.malloc.hugetlb=1)", (None, ""))[0]
    if command is not None:
        ratios["fastest_torch_over_difhydro_command"] = best / command
        print(f"  fastest torch / difhydro as the difhydro command runs it (huge pages) = {best / command:.2f}x")
    one = variants.get("one core (sched_setaffinity)", (None, ""))[0]
    if one is not None and "set_num_threads(1)" in times:
        ratios["one_thread_each"] = times["set_num_threads(1)"] / one
        print(f"  one thread each: {times['set_num_threads(1)'] / one:.2f}x")
    for label, (sec, _) in variants.items():
        if sec is not None and "bfloat16" in label:
            ratios["fastest_torch_over_jax_bfloat16"] = best / sec
            print(f"  fastest torch (float32) / difhydro with {label} = {best / sec:.2f}x")
    return ratios


def compare_with_peer(result, package, label, build, repeat, t_jax, variants, target):
    """Time the PyTorch peer ``build(torch) -> (step, description)`` in its thread and
    denormal settings and add the ratios to ``result``; skip with a reason if unavailable."""
    torch, why = load_torch()
    if torch is None:
        print(f"  torch not available ({why}), no comparison")
        return result
    try:
        step, description = build(torch)
    except Exception as err:
        print(f"  {package} not usable ({type(err).__name__}: {err}), no comparison")
        return result
    print(f"   peer: {description}, torch {torch.__version__}")
    times = torch_settings(torch, step, repeat)
    result["torch_s"] = times
    result.update(print_comparison(label, times, t_jax, variants, target))
    return result


# ---------------------------------------------------------------------------------------
# (a) regional LSTM
# ---------------------------------------------------------------------------------------


def lstm_data(batch: int, days: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (batch, days, features)).astype(np.float32)
    y = rng.normal(0.0, 1.0, (batch, days)).astype(np.float32)
    return x, y


def jax_lstm_step_time(x: np.ndarray, y: np.ndarray, hidden: int, repeat: int, dtype=jnp.float32) -> float:
    model = LSTM(hidden, output_size=1, dtype=dtype)
    params = model.init(jax.random.key(0), jnp.asarray(x[:1]))
    optimizer = optax.adam(LEARNING_RATE)

    def loss(params, batch):
        inputs, target = batch
        return jnp.mean((model.apply(params, inputs)[..., 0].astype(jnp.float32) - target) ** 2)

    step = adam_train_step(loss, optimizer)
    return jax_step_time(step, (params, optimizer.init(params)), (jnp.asarray(x), jnp.asarray(y)), repeat)


def neuralhydrology_lstm_step(torch, x: np.ndarray, y: np.ndarray, hidden: int) -> Callable:
    """One CudaLSTM train step on ``x [batch, time, features]`` (a closure)."""
    from neuralhydrology.modelzoo.cudalstm import CudaLSTM
    from neuralhydrology.utils.config import Config

    names = [f"input_{i}" for i in range(x.shape[-1])]
    cfg = Config({
        "model": "cudalstm", "head": "regression", "hidden_size": hidden,
        "initial_forget_bias": 3.0, "output_dropout": 0.0, "dynamic_inputs": names,
        "target_variables": ["streamflow"], "static_attributes": [],
        "seq_length": x.shape[1], "predict_last_n": x.shape[1], "output_activation": "linear",
    })
    torch.manual_seed(0)
    model = CudaLSTM(cfg)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    data = {"x_d": {k: torch.from_numpy(x[..., i : i + 1].copy()) for i, k in enumerate(names)}}
    target = torch.from_numpy(y)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((model(data)["y_hat"][..., 0] - target) ** 2)
        loss.backward()
        optimizer.step()

    return step


def lstm_section(batch: int, days: int, features: int, hidden: int, repeat: int) -> dict:
    print(f"\n== (a) regional LSTM train step: {batch} basins x {days} days x {features} inputs, "
          f"hidden {hidden}, 1 output, MSE + Adam")
    print(f"   {load_average()}")
    x, y = lstm_data(batch, days, features)
    t_jax = jax_lstm_step_time(x, y, hidden, repeat)
    variants = jax_variants("lstm", JAX_VARIANTS, batch=batch, days=days, features=features,
                            hidden=hidden, repeat=repeat)
    result = {"jax_s": t_jax, "jax_variants_s": {k: v[0] for k, v in variants.items()}}
    print_jax("difhydro nn.LSTM + optax.adam (jit)", t_jax, variants)
    def build(torch):
        step = neuralhydrology_lstm_step(torch, x, y, hidden)
        return step, f"neuralhydrology {package_version('neuralhydrology')} CudaLSTM"

    result = compare_with_peer(result, "neuralhydrology", "CudaLSTM", build, repeat, t_jax, variants, ">= 1.3x")
    return floor_section(result, batch, hidden, forward_steps=days, backward_steps=days, repeat=repeat)


# ---------------------------------------------------------------------------------------
# (b) dPL: LSTM -> HBV (δHBV)
# ---------------------------------------------------------------------------------------


def hbv_batch(n_basins: int, n_days: int, seed: int = 0) -> dict:
    """Seasonal forcing ``[basin, time]`` (mm d-1, deg C), standardised inputs and attributes."""
    rng = np.random.default_rng(seed)
    season = np.sin(2 * np.pi * (np.arange(n_days)[None, :] - 100) / 365.25)
    p = rng.exponential(8.0, (n_basins, n_days)) * (rng.random((n_basins, n_days)) < 0.35)
    t = 6.0 + 12.0 * season + rng.normal(0.0, 4.0, (n_basins, n_days))
    pet = np.clip(2.0 + 2.0 * season + rng.normal(0.0, 0.5, (n_basins, n_days)), 0.0, None)
    forcing = {"precipitation": p, "temperature": t, "pet": pet}
    raw = np.stack([p, t, pet], axis=-1)
    inputs = (raw - raw.mean((0, 1))) / raw.std((0, 1))
    return {
        "forcing": {k: v.astype(np.float32) for k, v in forcing.items()},
        "inputs": inputs.astype(np.float32),
        "attributes": rng.normal(0.0, 1.0, (n_basins, N_ATTRIBUTES)).astype(np.float32),
        "target": rng.gamma(1.0, 1.5, (n_basins, n_days)).astype(np.float32),
    }


def jax_dpl_step_time(data: dict, hidden: int, n_components: int, warmup: int, repeat: int) -> float:
    model = DifferentiableParameterLearning(
        HBV(n_components=n_components, use_betaet=True), network="lstm", hidden_sizes=(hidden,),
        dynamic_params=("beta", "betaet"), routing="gamma", warmup_days=warmup, warmup_gradient=False,
        lstm_input_layer=True,  # Linear -> ReLU -> LSTM -> Linear, as dmg's LstmModel
    )
    batch = jax.tree_util.tree_map(jnp.asarray, data)
    params = model.init(jax.random.key(0), {k: v for k, v in batch.items() if k != "target"})
    optimizer = optax.adam(LEARNING_RATE)

    def loss(params, batch):
        q = model.apply(params, batch)["streamflow"][:, warmup:]
        return jnp.mean((q - batch["target"][:, warmup:]) ** 2)

    step = adam_train_step(loss, optimizer)
    return jax_step_time(step, (params, optimizer.init(params)), batch, repeat)


def dmg_delta_model(torch, Hbv, nx: int, hidden: int, n_components: int, warmup: int):
    """dmg's DplModel(LstmModel -> Hbv) as configured for δHBV; (model, description)."""
    phy_config = {
        "warmup": warmup, "warmup_states": True, "dynamic_params": {"Hbv": ["parBETA", "parBETAET"]},
        "routing": True, "nmul": n_components, "nearzero": 1e-5, "dy_drop": 0.0,
    }
    phy = Hbv(config=phy_config, device=torch.device("cpu"))
    ny = phy.learnable_param_count
    torch.manual_seed(0)
    try:
        from dmg.models.delta_models import DplModel
        from dmg.models.neural_networks import LstmModel
    except Exception as err:
        return _DplLikeDmg(torch, nx, ny, hidden, phy), (
            f"dmg not importable ({type(err).__name__}: {err}); composed as dmg 1.5 does: "
            "Linear -> ReLU -> torch LSTM -> Linear, then hydrodl2 Hbv")
    nn_model = LstmModel(nx=nx, ny=ny, hidden_size=hidden, dr=0.0)
    model = DplModel(phy_model=phy, nn_model=nn_model, device="cpu")
    return model, f"dmg {package_version('dmg')} DplModel(LstmModel -> hydrodl2 Hbv)"


def _DplLikeDmg(torch, nx: int, ny: int, hidden: int, phy):
    """dmg 1.5's DplModel + LstmModel (dropout 0) built from torch modules and ``phy``."""

    class DplLikeDmg(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear_in = torch.nn.Linear(nx, hidden)
            self.lstm = torch.nn.LSTM(hidden, hidden)
            self.linear_out = torch.nn.Linear(hidden, ny)
            self.phy_model = phy

        def forward(self, data_dict):
            h, _ = self.lstm(torch.relu(self.linear_in(data_dict["xc_nn_norm"])))
            return self.phy_model(data_dict, self.linear_out(h))

    return DplLikeDmg()


def torch_dpl_step(torch, Hbv, data: dict, hidden: int, n_components: int, warmup: int):
    """One train step of the dmg/hydrodl2 δHBV (a closure) and its description."""
    forcing = np.stack([data["forcing"][k] for k in ("precipitation", "temperature", "pet")], -1)
    attrs = np.broadcast_to(data["attributes"][:, None, :], data["inputs"].shape[:2] + (N_ATTRIBUTES,))
    xc = np.concatenate([data["inputs"], attrs], axis=-1)
    data_dict = {  # dmg is time-major: [time, basin, features]
        "x_phy": torch.from_numpy(np.ascontiguousarray(forcing.transpose(1, 0, 2))),
        "xc_nn_norm": torch.from_numpy(np.ascontiguousarray(xc.transpose(1, 0, 2))),
    }
    target = torch.from_numpy(np.ascontiguousarray(data["target"][:, warmup:].T))
    model, description = dmg_delta_model(torch, Hbv, xc.shape[-1], hidden, n_components, warmup)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

    def step():
        optimizer.zero_grad(set_to_none=True)
        q = model(data_dict)["streamflow"][..., 0]
        loss = torch.mean((q - target) ** 2)
        loss.backward()
        optimizer.step()

    return step, description


def dpl_section(n_basins: int, warmup: int, days: int, hidden: int, n_components: int,
                repeat: int, torch_repeat: int) -> dict:
    print(f"\n== (b) dPL train step: LSTM({hidden}) -> HBV ({n_components} components, dynamic "
          f"BETA/BETAET, gamma routing), {n_basins} basins x ({warmup} warm-up without "
          f"gradients + {days}) days, MSE + Adam")
    print(f"   {load_average()}")
    data = hbv_batch(n_basins, warmup + days)
    t_jax = jax_dpl_step_time(data, hidden, n_components, warmup, repeat)
    labels = [label for label in JAX_VARIANTS if "bfloat16" not in label]
    variants = jax_variants("dpl", labels, n_basins=n_basins, warmup=warmup, days=days,
                            hidden=hidden, n_components=n_components, repeat=repeat)
    result = {"jax_s": t_jax, "jax_variants_s": {k: v[0] for k, v in variants.items()}}
    print_jax("difhydro DifferentiableParameterLearning (jit)", t_jax, variants)

    def build(torch):
        from hydrodl2.models.hbv.hbv import Hbv

        step, description = torch_dpl_step(torch, Hbv, data, hidden, n_components, warmup)
        return step, f"{description}, hydrodl2 {package_version('hydrodl2')}"

    result = compare_with_peer(result, "hydrodl2", "dmg/hydrodl2", build, torch_repeat, t_jax, variants, ">= 2x")
    # the warm-up runs forward only (no gradients), the scored days forward and backward
    return floor_section(result, n_basins, hidden, forward_steps=warmup + days, backward_steps=days, repeat=repeat)


# ---------------------------------------------------------------------------------------
# (c) EXP-HYDRO memory, with and without checkpointing
# ---------------------------------------------------------------------------------------


def exphydro_problem(n_basins: int, n_days: int, seed: int = 0):
    """``(model, params [basin], forcing [time, basin])`` with seasonal synthetic weather."""
    rng = np.random.default_rng(seed)
    doy = np.arange(n_days) % 365 + 1
    wet = rng.random((n_days, n_basins)) < 0.4
    p = np.where(wet, rng.gamma(0.8, 8.0, (n_days, n_basins)), 0.0)
    t = (8 - 14 * np.cos(2 * np.pi * (doy - 15) / 365))[:, None] + rng.normal(0, 3, (n_days, n_basins))
    lday = np.repeat(np.asarray(day_length(45.0, doy))[:, None], n_basins, 1)
    forcing = {k: jnp.asarray(v, jnp.float32) for k, v in
               (("precipitation", p), ("temperature", t), ("day_length", lday))}
    model = ExpHydro()
    return model, model.default_params((n_basins,)), forcing


def exphydro_grad(model, checkpoint: bool) -> Callable:
    def loss(params, forcing):
        q = simulate(model, params, forcing, check=False, checkpoint=checkpoint)[1]["streamflow"]
        return jnp.mean(q**2)

    return jax.jit(jax.value_and_grad(loss))


def rss_child(n_basins: int, n_days: int, checkpoint: bool | None) -> None:
    """Child-process body: build inputs, then (unless ``checkpoint`` is None) compile and run
    the gradient once; print the peak RSS in MB."""
    model, params, forcing = exphydro_problem(n_basins, n_days)
    if checkpoint is not None:
        jax.block_until_ready(exphydro_grad(model, checkpoint)(params, forcing))
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): ``VmHWM`` of the current address space.

    ``ru_maxrss`` would not do: Linux carries the parent's peak across fork + exec.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_rss_mb(n_basins: int, n_days: int, mode: str) -> float:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--rss-child", mode,
         "--basins", str(n_basins), "--days", str(n_days)],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def memory_section(n_basins: int, n_days: int, repeat: int) -> dict:
    mb = 1 / 2**20
    print(f"\n== (c) EXP-HYDRO forward + backward memory, {n_basins} basins x {n_days} days (float32)")
    print(f"   {load_average()}")
    model, params, forcing = exphydro_problem(n_basins, n_days)
    result = {}
    print(f"  {'simulate':22s} {'XLA temp':>10s} {'args':>8s} {'outputs':>8s} {'code':>8s} "
          f"{'child peak RSS':>15s} {'RSS - base':>11s} {'fwd+bwd':>10s}")
    base = child_rss_mb(n_basins, n_days, "base")
    for checkpoint in (False, True):
        grad = exphydro_grad(model, checkpoint)
        stats = grad.lower(params, forcing).compile().memory_analysis()
        rss = child_rss_mb(n_basins, n_days, "checkpoint" if checkpoint else "plain")
        sec = best_time(grad, params, forcing, repeat=repeat)
        label = f"checkpoint={checkpoint}"
        result[label] = {"temp_mb": stats.temp_size_in_bytes * mb, "maxrss_mb": rss,
                         "rss_minus_base_mb": rss - base, "seconds": sec}
        print(f"  {label:22s} {stats.temp_size_in_bytes * mb:8.1f}MB {stats.argument_size_in_bytes * mb:6.1f}MB "
              f"{stats.output_size_in_bytes * mb:6.1f}MB {stats.generated_code_size_in_bytes * mb:6.2f}MB "
              f"{rss:13.1f}MB {rss - base:9.1f}MB {sec * 1e3:8.1f}ms")
    print(f"  child baseline (imports + inputs, no gradient): {base:.1f} MB peak RSS")
    plain, ckpt = result["checkpoint=False"]["temp_mb"], result["checkpoint=True"]["temp_mb"]
    print(f"  XLA temp memory, plain / checkpoint = {plain / max(ckpt, 1e-9):.1f}x")
    return result


# ---------------------------------------------------------------------------------------


def run(quick: bool = False, only: tuple[str, ...] = ("lstm", "dpl", "memory")) -> dict:
    """Print the sections in ``only``; return the measured figures."""
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, float32; {processor()}")
    print(f"{load_average()}; GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}")
    if quick:
        sections = {
            "lstm": lambda: lstm_section(batch=32, days=90, features=5, hidden=64, repeat=2),
            "dpl": lambda: dpl_section(n_basins=20, warmup=60, days=60, hidden=64, n_components=16,
                                       repeat=2, torch_repeat=1),
            "memory": lambda: memory_section(n_basins=64, n_days=730, repeat=1),
        }
    else:
        sections = {
            "lstm": lambda: lstm_section(batch=256, days=365, features=5, hidden=256, repeat=3),
            "dpl": lambda: dpl_section(n_basins=100, warmup=365, days=365, hidden=256, n_components=16,
                                       repeat=3, torch_repeat=2),
            "memory": lambda: memory_section(n_basins=512, n_days=3650, repeat=2),
        }
    results = {name: sections[name]() for name in only}
    print(f"\ndone; {load_average()}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes (about a minute)")
    parser.add_argument("--only", default="lstm,dpl,memory", help="comma-separated sections (default: all)")
    parser.add_argument("--rss-child", choices=("base", "plain", "checkpoint"), help=argparse.SUPPRESS)
    parser.add_argument("--basins", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=3650, help=argparse.SUPPRESS)
    parser.add_argument("--jax-child", choices=("lstm", "dpl"), help=argparse.SUPPRESS)
    parser.add_argument("--shape", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jax_child:
        jax_child(args.jax_child, json.loads(args.shape))
    elif args.rss_child:
        rss_child(args.basins, args.days, {"base": None, "plain": False, "checkpoint": True}[args.rss_child])
    else:
        run(quick=args.quick, only=tuple(args.only.split(",")))
