"""Process models, one file each, all following the contract of :mod:`.base`."""

from .base import (
    ParamSpec,
    ProcessModel,
    default_params,
    from_physical,
    heaviside,
    safe_power,
    simulate,
    smooth_step,
    time_slice_params,
    to_physical,
    warm_up,
)
from .pet import day_length, extraterrestrial_radiation, hamon_pet, hargreaves_pet
from .exphydro import ExpHydro
from .vic import VicBucket
from .hbv import HBV, hbv_streamflow
from .routing import gamma_uh_weights, maxbas_weights, route, route_streamflow
from .richards import Richards1D, richards_residual
from .soil_hydraulics import VanGenuchten, Haverkamp, Gardner, vg_water_content, vg_conductivity, vg_capacity, vg_pressure_head
