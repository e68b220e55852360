"""HBV speed: difhydro (JAX) against the PyTorch HBV 1.0 of ``hydrodl2`` (the dHBV peers).

Run ``python benchmarks/speed_hbv.py``. It prints

1. forward + backward ns per basin-day of the JAX HBV at 1, 64, 512 basins x 3650 days;
2. if ``torch`` and ``hydrodl2`` import: the max absolute difference of unrouted and routed
   flows between ``hydrodl2.models.hbv.hbv.Hbv`` and difhydro on identical inputs and
   parameters (100 basins x 730 days), the speed ratio (torch as is, with
   ``torch.set_flush_denormal(True)`` and with one intra-op thread), and forward + backward
   time against sequence length (183, 365, 730, 1460 days) for both.

The peer is installed with ``pip install torch==2.13.0`` (CPU build) then
``pip install hydrodl2``. Its time grows faster than linearly with the sequence length: it
writes each day into preallocated ``[time, basin, nmul]`` tensors in place, and the backward
of every such write zero-fills a gradient of the whole tensor (``aten::fill_`` leads the
torch profile).

Both sides do the same work: unconstrained parameters -> sigmoid -> box, the HBV step from
a 0.001 mm cold start, gamma UH routing (L = 15) of the streamflow, a mean-square loss, and
the gradient with respect to the unconstrained parameters. torch is optional: difhydro
never imports it, and without it this script says so and runs the JAX part only.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from difhydro.physics import HBV, simulate
from difhydro.physics.routing import GAMMA_UH_SPEC, gamma_uh_weights, route

PARAM_NAMES = tuple(HBV().param_spec)  # the order of hydrodl2's parameter_bounds
ROUTING_LENGTH = 15


def synthetic_forcing(n_days: int, n_basins: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seasonal daily P (mm d-1), T (deg C), PET (mm d-1), ``[time, basin]`` float32."""
    rng = np.random.default_rng(seed)
    season = np.sin(2 * np.pi * (np.arange(n_days)[:, None] - 100) / 365.25)
    p = rng.exponential(8.0, (n_days, n_basins)) * (rng.random((n_days, n_basins)) < 0.35)
    t = 6.0 + 12.0 * season + rng.normal(0.0, 4.0, (n_days, n_basins))
    pet = np.clip(2.0 + 2.0 * season + rng.normal(0.0, 0.5, (n_days, n_basins)), 0.0, None)
    return {k: v.astype(np.float32) for k, v in
            (("precipitation", p), ("temperature", t), ("pet", pet))}


def jax_loss_and_grad(model: HBV, routing: bool = True):
    """jit(value_and_grad) of mean(Q_routed^2) w.r.t. raw ``[basin, 12]`` and ``[basin, 2]``."""
    spec = model.param_spec

    def loss(raw, raw_route, forcing):
        params = {k: spec[k].to_physical(raw[:, i]) for i, k in enumerate(spec)}
        _, out = simulate(model, params, forcing, check=False)
        a = GAMMA_UH_SPEC["uh_shape"].to_physical(raw_route[:, 0])
        b = GAMMA_UH_SPEC["uh_scale"].to_physical(raw_route[:, 1])
        q = out["streamflow"]
        n_time = q.shape[0]
        if routing:
            q = route(q, gamma_uh_weights(a, b, min(ROUTING_LENGTH, n_time)))
        return jnp.mean(q**2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def time_call(fn, *args, repeats: int = 5) -> float:
    """Best wall time (s) of ``fn(*args)`` after one warm-up call (compilation)."""
    jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def jax_time(n_basins: int, n_days: int, repeats: int = 5, seed: int = 0) -> float:
    model = HBV()
    forcing = {k: jnp.asarray(v) for k, v in synthetic_forcing(n_days, n_basins, seed).items()}
    rng = np.random.default_rng(seed + 1)
    raw = jnp.asarray(rng.normal(0, 1, (n_basins, len(PARAM_NAMES))), jnp.float32)
    raw_route = jnp.asarray(rng.normal(0, 1, (n_basins, 2)), jnp.float32)
    return time_call(jax_loss_and_grad(model), raw, raw_route, forcing, repeats=repeats)


# ---------------------------------------------------------------------------------------
# The PyTorch peer (hydrodl2)
# ---------------------------------------------------------------------------------------


def load_peer():
    """``(torch, Hbv class)`` or ``(None, reason)`` when the peer cannot be imported."""
    try:
        import torch
        from hydrodl2.models.hbv.hbv import Hbv
    except Exception as err:  # ImportError, or a broken binary
        return None, f"{type(err).__name__}: {err}"
    return torch, Hbv


def make_peer(torch, Hbv):
    config = {"warmup": 0, "warmup_states": True, "dynamic_params": {"Hbv": []},
              "routing": True, "nmul": 1, "nearzero": 1e-5}
    model = Hbv(config=config, device=torch.device("cpu"))
    model.routing_len = ROUTING_LENGTH
    return model


def peer_inputs(torch, forcing: dict[str, np.ndarray], seed: int = 0):
    n_days, n_basins = forcing["precipitation"].shape
    x = np.stack([forcing["precipitation"], forcing["temperature"], forcing["pet"]], axis=-1)
    rng = np.random.default_rng(seed + 1)
    raw = rng.normal(0, 1, (n_days, n_basins, len(PARAM_NAMES) + 2)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(raw)


def peer_physical_params(torch, peer, raw_t) -> tuple[dict, dict]:
    """The exact float32 parameters hydrodl2 uses (static: last time step), as numpy."""
    with torch.no_grad():
        phy, rout = peer._unpack_parameters(raw_t)
        pdict = peer._descale_phy_parameters(phy, dy_list=[])
        rdict = peer._descale_route_parameters(rout)
    params = {k: pdict["par" + k.upper()][-1, :, 0].numpy() for k in PARAM_NAMES}
    routing = {"uh_shape": rdict["route_a"].numpy(), "uh_scale": rdict["route_b"].numpy()}
    return params, routing


def compare_flows(torch, Hbv, n_basins: int = 100, n_days: int = 730) -> float:
    """Print and return the max |difference| of flows, hydrodl2 vs difhydro (float32)."""
    peer = make_peer(torch, Hbv)
    forcing = synthetic_forcing(n_days, n_basins)
    x, raw = peer_inputs(torch, forcing)
    with torch.no_grad():
        out = peer({"x_phy": x}, raw)
    params, routing = peer_physical_params(torch, peer, raw)
    _, ours = simulate(HBV(), params, forcing)
    w = gamma_uh_weights(routing["uh_shape"], routing["uh_scale"], min(ROUTING_LENGTH, n_days))
    routed = route(ours["streamflow"], w)
    pairs = {
        "streamflow (unrouted)": ("streamflow_no_rout", ours["streamflow"]),
        "routed streamflow": ("streamflow", routed),
        "quickflow / srflow_no_rout": ("srflow_no_rout", ours["quickflow"]),
        "interflow / ssflow_no_rout": ("ssflow_no_rout", ours["interflow"]),
        "baseflow / gwflow_no_rout": ("gwflow_no_rout", ours["baseflow"]),
        "evapotranspiration / AET_hydro": ("AET_hydro", ours["evapotranspiration"]),
        "percolation": ("percolation", ours["percolation"]),
        "recharge": ("recharge", ours["recharge"]),
    }
    worst = 0.0
    print(f"\nhydrodl2 Hbv vs difhydro HBV, {n_basins} basins x {n_days} days, float32:")
    for label, (key, mine) in pairs.items():
        theirs = out[key][..., 0].numpy()
        diff = float(np.max(np.abs(theirs - np.asarray(mine))))
        scale = float(np.max(np.abs(theirs)))
        print(f"  {label:34s} max |diff| = {diff:.3g} mm/d  (max value {scale:.3g})")
        if key in ("streamflow_no_rout", "streamflow"):
            worst = max(worst, diff)
    return worst


def torch_time(torch, Hbv, n_basins: int, n_days: int, repeats: int = 2, warm: bool = False):
    """Best wall time (s) of hydrodl2 forward + backward (autograd to the raw parameters)."""
    peer = make_peer(torch, Hbv)
    x, raw = peer_inputs(torch, synthetic_forcing(n_days, n_basins))
    raw.requires_grad_(True)

    def fwd_bwd():
        raw.grad = None
        out = peer({"x_phy": x}, raw)
        loss = out["streamflow"].pow(2).mean()
        loss.backward()
        return loss

    if warm:  # no compilation to amortise: an untimed first call only warms the allocator
        fwd_bwd()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fwd_bwd()
        best = min(best, time.perf_counter() - t0)
    return best


def run() -> dict:
    """Print the benchmark; return the measured figures."""
    results: dict = {"jax_ns_per_basin_day": {}}
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, float32, HBV() (dHBV 1.0, "
          f"hard thresholds, 1 component) + gamma UH routing")
    print("\nforward + backward, 3650 days:")
    for n_basins in (1, 64, 512):
        sec = jax_time(n_basins, 3650, repeats=3 if n_basins == 512 else 5)
        ns = sec / (n_basins * 3650) * 1e9
        results["jax_ns_per_basin_day"][n_basins] = ns
        print(f"  {n_basins:4d} basins: {sec * 1e3:9.2f} ms  = {ns:8.1f} ns per basin-day")

    torch, Hbv = load_peer()
    if torch is None:
        print(f"\nPyTorch peer not available ({Hbv}); install torch (CPU) and hydrodl2 to "
              "compare. JAX figures above only.")
        return results
    import hydrodl2

    print(f"\nPeer: hydrodl2 {hydrodl2.__version__} (hydrodl2.models.hbv.hbv.Hbv, 'HBV 1.0'), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results["max_abs_diff"] = compare_flows(torch, Hbv)

    n_basins, n_days = 100, 730
    t_jax = jax_time(n_basins, n_days)
    default_threads = torch.get_num_threads()
    t_torch = torch_time(torch, Hbv, n_basins, n_days)
    torch.set_flush_denormal(True)
    t_torch_fd = torch_time(torch, Hbv, n_basins, n_days)
    torch.set_flush_denormal(False)
    # hydrodl2 launches ~100 tiny ops per day: on a loaded machine intra-op threads
    # mostly wait for each other, so one thread is torch's best case here
    torch.set_num_threads(1)
    t_torch_1 = torch_time(torch, Hbv, n_basins, n_days)
    t_best = min(t_torch, t_torch_fd, t_torch_1)
    results.update(jax_s=t_jax, torch_s=t_torch, torch_flush_denormal_s=t_torch_fd,
                   torch_one_thread_s=t_torch_1, speedup_vs_best_torch=t_best / t_jax)
    print(f"\nforward + backward, {n_basins} basins x {n_days} days:")
    rows = [
        ("difhydro (JAX)", t_jax),
        (f"hydrodl2, as is ({default_threads} threads)", t_torch),
        ("hydrodl2, set_flush_denormal(True)", t_torch_fd),
        ("hydrodl2, set_num_threads(1)", t_torch_1),
    ]
    for label, sec in rows:
        ratio = "" if sec is t_jax else f"   -> JAX {sec / t_jax:7.1f}x faster"
        print(f"  {label:38s} {sec * 1e3:10.2f} ms{ratio}")
    print(f"  JAX vs the fastest torch setting: {t_best / t_jax:.1f}x (target >= 30x)")

    print(f"\nforward + backward against sequence length, {n_basins} basins "
          "(torch: 1 thread):")
    print(f"  {'days':>6s} {'JAX ms':>10s} {'torch ms':>10s} {'ratio':>7s}")
    results["by_length"] = {}
    for days in (183, 365, 730, 1460):
        tj = jax_time(n_basins, days)
        tt = torch_time(torch, Hbv, n_basins, days, repeats=1, warm=False)
        results["by_length"][days] = (tj, tt)
        print(f"  {days:6d} {tj * 1e3:10.2f} {tt * 1e3:10.2f} {tt / tj:7.1f}")
    torch.set_num_threads(default_threads)
    return results


if __name__ == "__main__":
    run()
