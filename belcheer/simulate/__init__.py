"""The synthetic flight simulator: a steppe scene in Bayangol soum (Selenge aimag) with known
ground truth, flown by a simulated DJI FC6310 or MicaSense RedEdge-M, written as real-looking
camera files. It is the yardstick of the project's accuracy tests.

>>> from belcheer.simulate import simulate
>>> sim = simulate(Path("sim"), camera="rededge", seed=1, area_ha=0.5)   # doctest: +SKIP
"""

from __future__ import annotations

from belcheer.simulate.gcps import write_gcp_list
from belcheer.simulate.run import Simulation, load_parameters, load_simulation, simulate

__all__ = ["Simulation", "load_parameters", "load_simulation", "simulate", "write_gcp_list"]
