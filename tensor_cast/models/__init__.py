"""Models: from a HuggingFace config to the representative model tensor_cast traces.

Owns:
- `spec.py`: `ModelSpec` / `LayerSpec` (typed, per-layer attention and MLP kinds, MoE, MLA, MTP);
- `registry.py` and `registry/*.json`: the offline registry of public configs (no downloads);
- `loader.py` / `overrides.py`: resolve a model argument to a spec, apply layer-count and
  per-layer overrides;
- `adapters/`: one table row or small class per model family, mapping config fields to the spec
  and back (MoE families are `MoEFamily` rows);
- `build.py`: `build_representative(spec)` — the real transformers model on the meta device with
  one decoder layer per distinct layer kind (`RepresentativeModel`: the model, its layer kinds,
  which real layers each stands for, its decoder layer modules);
- `module_swaps.py` and the swap mixins (gated DeltaNet, DSA attention), `mtp.py` (MTP blocks).
Must not: capture graphs, rewrite them or cost anything (that is `capture/`, `passes/`,
`costing.py`).
"""
