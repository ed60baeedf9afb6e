"""``smp.nn.huggingface.gpt2``: the GPT-2 state-dict translations (the identity locally; see the package
docstring), and the hooks that register SMP's distributed GPT-2 layers (not emulated)."""

from smdistributed.modelparallel.torch.nn.huggingface import not_emulated, unchanged

translate_state_dict_to_hf_gpt2 = unchanged
translate_hf_state_dict_to_smdistributed_gpt2 = unchanged
get_hf_gpt2_transformer_layer_hooks = not_emulated("get_hf_gpt2_transformer_layer_hooks")
get_hf_gpt2_transformer_lm_head_hooks = not_emulated("get_hf_gpt2_transformer_lm_head_hooks")
