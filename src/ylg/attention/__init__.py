"""YLG attention: the module, the functional op and its backends.

- :class:`YLGAttention2d`: SAGAN's non-local block with per-head 2-D local sparse masks;
- :func:`masked_attention`: ``softmax(q k^T, masked) v`` with a ``backend=`` choice;
- :class:`HeadLayout` / :func:`build_layout`: the masks of every head and their block
  structure.
"""

from ylg.attention.functional import choose_backend, masked_attention
from ylg.attention.layouts import HeadGroup, HeadLayout, build_layout, head_specs
from ylg.attention.module import YLGAttention2d

__all__ = [
    "HeadGroup",
    "HeadLayout",
    "YLGAttention2d",
    "build_layout",
    "choose_backend",
    "head_specs",
    "masked_attention",
]
