"""Process models, one file each, all following the contract of :mod:`.base`.

``simulate(model, params, forcing, state0)`` runs any of them with ``lax.scan``; forcing
and outputs are time-first ``[time, *batch]``. Equations, units and parameter boxes:
``docs/physics.md``. No neural code lives here.
"""

from .base import ParamSpec as ParamSpec
from .base import ProcessModel as ProcessModel
from .base import from_physical as from_physical
from .base import heaviside as heaviside
from .base import safe_power as safe_power
from .base import simulate as simulate
from .base import smooth_step as smooth_step
from .base import time_slice_params as time_slice_params
from .base import to_physical as to_physical
from .base import warm_up as warm_up
from .exphydro import ExpHydro as ExpHydro
from .hbv import HBV as HBV
from .hbv import hbv_streamflow as hbv_streamflow
from .integrate import checkpointed as checkpointed
from .integrate import substeps as substeps
from .pet import day_length as day_length
from .pet import extraterrestrial_radiation as extraterrestrial_radiation
from .pet import hamon_pet as hamon_pet
from .pet import hargreaves_pet as hargreaves_pet
from .pet import oudin_pet as oudin_pet
from .richards import Richards1D as Richards1D
from .richards import RichardsSolver as RichardsSolver
from .richards import richards_residual as richards_residual
from .routing import gamma_uh_weights as gamma_uh_weights
from .routing import maxbas_weights as maxbas_weights
from .routing import route as route
from .routing import route_streamflow as route_streamflow
from .snow import DegreeDaySnow as DegreeDaySnow
from .snow import snow_fluxes as snow_fluxes
from .soil_hydraulics import Gardner as Gardner
from .soil_hydraulics import Haverkamp as Haverkamp
from .soil_hydraulics import VanGenuchten as VanGenuchten
from .soil_hydraulics import vg_capacity as vg_capacity
from .soil_hydraulics import vg_conductivity as vg_conductivity
from .soil_hydraulics import vg_pressure_head as vg_pressure_head
from .soil_hydraulics import vg_water_content as vg_water_content
from .vic import VicBucket as VicBucket

__all__ = [
    "ParamSpec", "ProcessModel", "simulate", "warm_up", "time_slice_params", "to_physical",
    "from_physical", "heaviside", "smooth_step", "safe_power", "substeps", "checkpointed",
    "ExpHydro", "VicBucket", "DegreeDaySnow", "snow_fluxes", "HBV", "hbv_streamflow", "Richards1D", "RichardsSolver", "richards_residual",
    "VanGenuchten", "Haverkamp", "Gardner", "vg_water_content", "vg_conductivity",
    "vg_capacity", "vg_pressure_head", "gamma_uh_weights", "maxbas_weights", "route",
    "route_streamflow", "day_length", "extraterrestrial_radiation", "hamon_pet",
    "hargreaves_pet", "oudin_pet",
]
