"""A GRPO loss forward that runs each prompt once for its completions (config `training.shared_prefix`).

TRL's GRPOTrainer scores a step's B rows as B sequences `[prompt | completion]`, each padded to the
step's longest prompt and longest completion: a prompt with G completions runs through the model G
times. An ILR member's prompt is the Fusion prompt (the question, its own idea, the peers' ideas, its
analysis), several times a solo prompt, and with `train_stages: [sharing, fusion]` its solo rows are
padded to the Fusion prompts' width too (benchmarks/ilr_step.py counts both).

Here consecutive rows with the same prompt become one sequence

    [prompt | completion 1 | completion 2 | ... | completion G]      (no padding inside)

under an attention mask by which each completion sees the prompt and its own earlier tokens, never a
sibling's, and position ids that restart after the prompt for every completion. Each completion token's
log-probability (and entropy) is then the one TRL's forward computes: the same maths, other rounding.
The positions after a completion's last unmasked token (padding, or a truncated completion TRL masks)
are not run and score 0, as TRL's loss multiplies them by 0. Where long completions would make such a
row (and so every row, padded to it) cost more than TRL's rows, a prompt's completions are split over
several rows (`pack`): never more positions, nor more attention scores, than TRL's forward runs.

The mask is passed to the model as a ready 4D mask, which transformers hands to the attention as it
is: a boolean mask for `sdpa` (what transformers itself builds for a padded batch), an additive one for
`eager`. Other attention implementations (flash-attention, flex) take no such mask: there the trainer
runs TRL's forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASK_FORMATS = ("sdpa", "eager")


@dataclass
class Packed:
    input_ids: torch.Tensor      # [R, L]: a prompt and some of its completions per row, padded at the end
    position_ids: torch.Tensor   # [R, L]
    allowed: torch.Tensor        # [R, 1, L, L] bool: query position may attend key position
    labels: torch.Tensor         # [R, L]: the completion token each position predicts, -100 where none
    source: torch.Tensor         # [R * L] flat index into the [B, C] completion grid, for scored positions
    scored: torch.Tensor         # [R * L] bool: the positions that predict a completion token


def padded_as_trl_pads(attention_mask: torch.Tensor, completion_width: int) -> bool:
    """Whether every row is [zeros | ones] in the prompt and [ones | zeros] in the completion, as TRL pads: what
    `pack` reads (a mask with holes, as of tool calls masked inside a completion, is left to TRL's forward)."""
    prompt, completion = attention_mask[:, :-completion_width], attention_mask[:, -completion_width:]
    return (torch.equal(completion, completion.cumprod(dim=1))
            and torch.equal(prompt.flip(1), prompt.flip(1).cumprod(dim=1)))


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_width: int) -> Packed:
    """Rows `[prompt | completion]` as TRL builds them (prompt left-padded, completion right-padded; the last
    `completion_width` columns are the completion) -> packed rows, each a prompt and some of its completions
    (consecutive rows with that prompt). Of the packings whose rows are at most k x TRL's row width (k = 1, 2,
    ...; k = 1: a row per completion at worst), the one with the fewest positions among those that run no more
    positions and no more attention scores (rows x width^2: every row is padded to the longest) than TRL's
    forward: so never more work than TRL's, and all of a prompt's completions in one row where that is less."""
    B, width = input_ids.shape
    P = width - completion_width
    ids, mask = input_ids.tolist(), attention_mask.tolist()
    prompts = [tuple(t for t, m in zip(ids[i][:P], mask[i][:P]) if m) for i in range(B)]
    # a completion runs to its last unmasked token (TRL's mask is ones up to the first EOS, then zeros)
    lengths = [max((k + 1 for k, m in enumerate(mask[i][P:]) if m), default=0) for i in range(B)]
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"row {i}: an empty prompt (every prompt holds at least the chat template)")

    # Completion token t is predicted at the position before it, the prompt's last for t = 0: every completion
    # needs that position, so each completion's segment starts with its own copy of the prompt's last token
    # (same position id) and runs to its token before last; the shared part is the prompt but its last token.
    def greedy(cap: int) -> tuple[list[list[int]], list[int]]:
        packs: list[list[int]] = []     # per packed row, the rows of the batch it scores (one prompt)
        used: list[int] = []            # its length so far
        for i in range(B):
            if packs and prompts[packs[-1][0]] == prompts[i] and used[-1] + lengths[i] <= cap:
                packs[-1].append(i)
                used[-1] += lengths[i]
            else:
                packs.append([i])
                used.append(len(prompts[i]) - 1 + lengths[i])
        return packs, used

    candidates = [greedy(k * width) for k in range(1, B + 1)]
    fits = [(len(p) * max(u), p, u) for p, u in candidates
            if len(p) * max(u) <= B * width and len(p) * max(u) ** 2 <= B * width ** 2]
    _, packs, used = min(fits, key=lambda c: c[0])   # k = 1 always fits; ties: the smallest k
    R, L = len(packs), max(used)

    tokens = torch.zeros((R, L), dtype=torch.long)
    positions = torch.zeros((R, L), dtype=torch.long)
    segment = torch.full((R, L), -1, dtype=torch.long)   # 0: the prompt, k: the k-th completion, -1: padding
    labels = torch.full((R, L), -100, dtype=torch.long)
    source = torch.zeros(R * L, dtype=torch.long)
    for r, rows in enumerate(packs):
        prompt = prompts[rows[0]]
        p = len(prompt) - 1
        tokens[r, :p] = torch.tensor(prompt[:p], dtype=torch.long)
        positions[r, :p] = torch.arange(p)
        segment[r, :p] = 0
        start = p
        for k, i in enumerate(rows, start=1):
            n = lengths[i]
            completion = ids[i][P:P + n]
            span = slice(start, start + n)
            tokens[r, span] = torch.tensor([prompt[-1]] + completion[:-1], dtype=torch.long)[:n]
            positions[r, span] = torch.arange(p, p + n)
            segment[r, span] = k
            labels[r, span] = torch.tensor(completion, dtype=torch.long)
            source[r * L + start:r * L + start + n] = i * completion_width + torch.arange(n)
            start += n
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    q, kv = segment[:, :, None], segment[:, None, :]
    allowed = causal & (kv >= 0) & ((kv == 0) | (kv == q))
    allowed |= torch.eye(L, dtype=torch.bool)   # a padding position attends to itself: no row without a key
    return Packed(tokens, positions, allowed[:, None], labels, source, (labels != -100).reshape(-1))


def logps_and_entropies(model, attn_implementation: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        completion_width: int, compute_entropy: bool,
                        autocast) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per completion token of the [B, completion_width] grid: log-probability (and entropy), 0 where
    the completion has no unmasked token. `model`: TRL's training model (or reference model) with its
    fused LM head (trl.trainer.utils.add_fused_lm_head); `autocast`: the accelerator's."""
    device = input_ids.device
    packed = pack(input_ids, attention_mask, completion_width)
    dtype = next(p for p in model.parameters()).dtype if attn_implementation == "eager" else None
    mask = packed.allowed.to(device)
    if attn_implementation == "eager":   # eager adds the mask to the scores
        mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)
    with autocast():
        out = model(input_ids=packed.input_ids.to(device), attention_mask=mask,
                    position_ids=packed.position_ids.to(device), shift_labels=packed.labels.to(device),
                    fused_lm_head=True)
    B = input_ids.size(0)
    scored, source = packed.scored.to(device), packed.source.to(device)

    def scatter(per_position: torch.Tensor) -> torch.Tensor:
        flat = per_position.reshape(-1)[scored]
        grid = flat.new_zeros(B * completion_width).index_put((source[scored],), flat)
        return grid.view(B, completion_width)

    return scatter(out.log_probs), scatter(out.entropy) if compute_entropy else None


def trainer_class(base):
    """`base` (TRL's GRPOTrainer or a subclass) scoring each prompt once for its completions; TRL's own forward
    where the model's attention takes no ready mask, for inputs a text-only run never has (images, the MoE
    load-balancing loss) and for a mask with holes."""

    class SharedPrefix(base):
        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **multimodal):
            attn = self.accelerator.unwrap_model(model).config._attn_implementation
            if attn not in MASK_FORMATS or compute_aux_loss or any(v is not None for v in multimodal.values()) \
                    or not padded_as_trl_pads(attention_mask, logits_to_keep):
                return super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                    compute_aux_loss, **multimodal)
            batch_size = batch_size or input_ids.size(0)   # TRL's chunks, to bound the memory peak
            chunks = [logps_and_entropies(model, attn, input_ids[s:s + batch_size], attention_mask[s:s + batch_size],
                                          logits_to_keep, compute_entropy, self.accelerator.autocast)
                      for s in range(0, input_ids.size(0), batch_size)]
            return (torch.cat([c[0] for c in chunks]),
                    torch.cat([c[1] for c in chunks]) if compute_entropy else None, None)

    SharedPrefix.__name__ = SharedPrefix.__qualname__ = base.__name__
    return SharedPrefix
