"""driftline on Ray (the ``ray`` extra): drift checks on Ray Data, serving on Ray Serve.

* :mod:`driftline.on_ray.data` counts the window profiles of a dataset per block with Ray Data
  and merges them (``driftline check --reference DATA --current DATA --engine ray``);
* :mod:`driftline.on_ray.serve` runs the API app as a Ray Serve deployment
  (``driftline serve --engine ray``).

Nothing here is imported by ``import driftline``: Ray loads only when one of them is used.
"""

from __future__ import annotations

__all__: list[str] = []
