"""PHY-LSTM / PHYs-LSTM (Geng et al. 2024, doi:10.3389/ffgc.2024.1353011): surface soil
moisture forecast by an LSTM with a monotonic water-balance loss.

The site data in :mod:`.site`, the loss in :mod:`.losses`, the model, its Trainer loss and
the scores in :mod:`.model`. Full experiment: ``examples/phy_lstm.py``; results in
``docs/soil_moisture_results.md``.
"""

from .losses import monotonic_direction as monotonic_direction
from .losses import monotonic_loss as monotonic_loss
from .losses import snow_water_change as snow_water_change
from .losses import water_balance as water_balance
from .losses import water_balance_loss as water_balance_loss
from .model import SequenceLSTM as SequenceLSTM
from .model import phy_lstm_loss as phy_lstm_loss
from .model import score as score
from .site import SITE_DEPTHS_CM as SITE_DEPTHS_CM
from .site import SITE_ELEVATION_M as SITE_ELEVATION_M
from .site import SITE_LATITUDE as SITE_LATITUDE
from .site import fao56_reference_et as fao56_reference_et
from .site import site_dataset as site_dataset

__all__ = [
    "water_balance", "snow_water_change", "monotonic_direction", "monotonic_loss", "water_balance_loss",
    "SequenceLSTM", "phy_lstm_loss", "score", "SITE_LATITUDE", "SITE_ELEVATION_M", "SITE_DEPTHS_CM",
    "fao56_reference_et", "site_dataset",
]
