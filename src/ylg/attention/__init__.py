"""YLG attention: the module, the functional op and its backends.

- :class:`YLGAttention2d`: SAGAN's non-local block with per-head 2-D local sparse masks;
- :func:`masked_attention`: ``softmax(q k^T, masked) v`` with a ``backend=`` choice;
- :class:`HeadLayout` / :func:`build_layout`: the masks of every head and their block
  structure; :class:`GridSpec` (a pattern and its options, checked) and :class:`AttentionPlan`
  (what the backends read, cached per spec and device: ``ylg.attention.plan.grid_plan``);
- :func:`grid_mask` / :func:`grid_attention`: YLG patterns on any token grid, with global
  tokens; :class:`YLGSelfAttention`: a ViT-style attention block on ``[B, N, C]`` built on them;
- :func:`mask_mod` / :func:`flex_block_mask`: the grid masks exported to PyTorch FlexAttention;
- :class:`YLGJointAttnProcessor`: a diffusers attention processor (SD3-style MMDiT) running the
  image tokens' attention with YLG patterns, the text tokens as global tokens (needs
  ``ylg[diffusers]`` only to be used; importing it needs nothing).
"""

from ylg.attention.diffusers_processor import YLGJointAttnProcessor
from ylg.attention.flex_export import flex_block_mask, mask_mod
from ylg.attention.functional import choose_backend, masked_attention
from ylg.attention.grid import build_layout, grid_attention, grid_mask
from ylg.attention.grid_spec import GridSpec
from ylg.attention.heads import GRID_PATTERNS, grid_head_specs, head_specs
from ylg.attention.layouts import HeadGroup, HeadLayout
from ylg.attention.module import YLGAttention2d, YLGSelfAttention
from ylg.attention.plan import AttentionPlan

__all__ = [
    "GRID_PATTERNS",
    "AttentionPlan",
    "GridSpec",
    "HeadGroup",
    "HeadLayout",
    "YLGAttention2d",
    "YLGJointAttnProcessor",
    "YLGSelfAttention",
    "build_layout",
    "choose_backend",
    "flex_block_mask",
    "grid_attention",
    "grid_head_specs",
    "grid_mask",
    "head_specs",
    "mask_mod",
    "masked_attention",
]
