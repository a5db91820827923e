"""Which instances may take a request, and why each one left out is left out: one rule.

The proxy asks it before every attempt, ``/_gateway/explain`` and the routing page ask it to
say what the proxy would do, so a new admission rule is written here once. The rule:

- only instances passing in Consul (and inside ``GATEWAY_UPSTREAM_CIDRS``) are offered;
- an instance already tried for this request is not tried again;
- an ejected instance (outlier ejection, :mod:`discovery.stats`) is skipped, unless fewer
  than ``panic_threshold`` of the passing instances would be left, or it is the only one: then
  ejection is ignored (Envoy's panic threshold), since spreading load over every instance
  beats piling it onto a few;
- when every untried instance is ejected, they are the last resort before failing.

Pure: the caller says which instances are ejected now; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from discovery.model import Instance

TRIED = "tried"
EJECTED = "ejected"
_NOTHING: Mapping[str, str] = MappingProxyType({})


class Verdict(NamedTuple):
    """The instances a balancer may pick from, and the reason for each one left out."""

    eligible: Sequence[Instance]
    excluded: Mapping[str, str]  # instance ID -> TRIED or EJECTED
    panic: bool  # ejection is ignored: too few would be left


def candidates(
    passing: Sequence[Instance],
    panic_threshold: float,
    ejected: Collection[str] = (),
    tried: Collection[str] = (),
) -> Verdict:
    """The verdict for a request that has *tried* some instances, with *ejected* out now.

    Costs nothing in the usual case (nothing tried, nothing ejected): *passing* is returned
    as it is.
    """
    if not tried and not ejected:
        return Verdict(passing, _NOTHING, False)
    out = [i.id for i in passing if i.id in ejected]
    panic = bool(out) and (
        len(passing) == 1 or len(passing) - len(out) < panic_threshold * len(passing)
    )
    excluded = dict.fromkeys((i.id for i in passing if i.id in tried), TRIED)
    if not panic:
        for instance_id in out:
            excluded.setdefault(instance_id, EJECTED)
    eligible = [i for i in passing if i.id not in excluded]
    if not eligible and not panic and out:
        # Every untried instance is ejected: they are the last resort before failing.
        eligible = [i for i in passing if i.id not in tried]
        excluded = {k: v for k, v in excluded.items() if v == TRIED}
    return Verdict(eligible, excluded, panic)
