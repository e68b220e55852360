"""One package per paper, each importing only the core (the shape of ``optax.contrib``).

- :mod:`.phy_lstm`: PHY-LSTM / PHYs-LSTM (Geng et al. 2024), monotonic water-balance loss;
- :mod:`.pgdl`: the PGDL CNN-LSTM (Zhang et al. 2025) and its Richards twin;
- :mod:`.paraformer`: ParaFormer (Li & Lu 2023), range-boundary loss, surrogate route;
- :mod:`.dhbv`: δHBV (Feng et al. 2022) loss and model preset.

Nothing outside ``difhydro/contrib`` imports from here.
"""
