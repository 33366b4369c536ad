"""Attention backends: one file each, all with the same ``attention(q, k, v, plan, ...)``.

Each only reads the :class:`~ylg.attention.plan.AttentionPlan` it is given (built once per
pattern and device); none builds masks, orders or indices of its own.

- ``reference``: dense masked softmax, the oracle (always available);
- ``blocks``: exact block-sparse attention, O(N sqrt N) for the YLG / strided layouts;
- ``flex``: PyTorch FlexAttention with a block mask (CUDA; forward only on CPU).
"""

BACKENDS = ("auto", "reference", "blocks", "flex")
