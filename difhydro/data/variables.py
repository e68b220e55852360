"""One table of the variables difhydro knows: units, CF long name, valid range and role.

Readers attach the units and long names (:data:`VARIABLE_ATTRS`); the validation pass
(:mod:`.validation`) checks values against the ranges; :func:`~difhydro.data.load_folder`
converts users' units into these.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VariableSpec", "VARIABLES", "VARIABLE_ATTRS"]


@dataclass(frozen=True)
class VariableSpec:
    """What a variable is and must look like: units, valid range, long name, role.

    ``valid`` bounds are physical limits: a value outside is a data error handled by the
    policy. ``typical`` bounds (optional) only flag values as ``atypical`` in the report
    (never changed unless a policy clips them).
    """

    units: str
    valid: tuple[float, float]
    long_name: str = ""
    kind: str = "forcing"  # "forcing" (model input), "target" or "static"
    typical: tuple[float, float] | None = None
    kelvin_check: bool = False
    note: str = ""


#: One table of the variables the package knows: name -> units, valid range, kind.
#: The ranges are meant to catch wrong units, sentinels and corrupt values, not to
#: judge extremes; why each bound was chosen is in its ``note``.
VARIABLES: dict[str, VariableSpec] = {
    "precipitation": VariableSpec(
        "mm d-1", (0.0, 1000.0), "precipitation",
        note="basin-mean daily totals; the 24-h point record is 1825 mm (La Reunion 1966) and basin means stay "
        "far below, the shared Caravan subset peaks at 262 mm d-1; negative values are impossible",
    ),
    "temperature": VariableSpec(
        "degC", (-70.0, 60.0), "daily mean air temperature", kelvin_check=True,
        note="daily mean near-surface air temperature; outside the -89.2 / 56.7 degC station records only for "
        "wrong units; a median above 200 means Kelvin",
    ),
    "tmax": VariableSpec("degC", (-70.0, 60.0), "daily maximum air temperature", kelvin_check=True, note="daily maximum; as temperature"),
    "tmin": VariableSpec("degC", (-70.0, 60.0), "daily minimum air temperature", kelvin_check=True, note="daily minimum; as temperature"),
    "pet": VariableSpec(
        "mm d-1", (-5.0, 100.0), "potential evapotranspiration", typical=(0.0, 30.0),
        note="ERA5-Land potential_evaporation_sum (Caravan) is known to be too high for many basins "
        "(Clerc-Schwarzenbach et al. 2024, doi:10.5194/hess-28-4219-2024; 78 mm d-1 in the shared subset) and "
        "slightly negative on days with condensation (down to -4.3 mm d-1): both load and are counted as "
        "atypical (outside 0..30 mm d-1); Policy(clip=(0, None)) clips the negatives to zero (reported)",
    ),
    "day_length": VariableSpec("h", (0.0, 24.0), "day length", note="hours of daylight"),
    "srad": VariableSpec(
        "W m-2", (0.0, 1000.0), "daily mean shortwave radiation",
        note="Daymet gives the daylight-period mean (up to ~710 W m-2 in the shared subset), not the 24-h mean",
    ),
    "vp": VariableSpec("Pa", (0.0, 8000.0), "water vapour pressure", note="saturation vapour pressure is 7.4 kPa at 40 degC"),
    "swe": VariableSpec("mm", (0.0, 20000.0), "snow water equivalent", note="snow water equivalent"),
    "streamflow": VariableSpec(
        "mm d-1", (0.0, 1000.0), "observed streamflow per unit catchment area", kind="target",
        note="daily runoff depth; the shared Caravan subset peaks at 460 mm d-1; negative flows are impossible",
    ),
    # the example sites of spotpy (difhydro.data.load_example)
    "discharge": VariableSpec("m3 s-1", (0.0, 1e6), "observed discharge at the gauge", kind="target"),
    "air_pressure": VariableSpec("hPa", (300.0, 1100.0), "air pressure"),
    "relative_humidity": VariableSpec("%", (0.0, 100.0), "relative humidity"),
    "wind_speed": VariableSpec("m s-1", (0.0, 100.0), "wind speed"),
    "groundwater_head": VariableSpec("m", (-500.0, 9000.0), "groundwater head (a.s.l.)"),
    "soil_moisture": VariableSpec("m3 m-3", (0.0, 1.0), "volumetric soil moisture", kind="target"),
}

#: units and long names every reader attaches (CF attributes), from :data:`VARIABLES`
VARIABLE_ATTRS: dict[str, dict[str, str]] = {k: {"units": v.units, "long_name": v.long_name} for k, v in VARIABLES.items()}
