"""``smp.nn.huggingface.gptj``: the gptj state-dict translations (the identity locally; see the package docstring)."""

from smdistributed.modelparallel.torch.nn.huggingface import unchanged

translate_state_dict_to_hf_gptj = unchanged
translate_hf_state_dict_to_smdistributed_gptj = unchanged
# the developer guide names the second one so; AWS's scripts call it as above
translate_hf_gptj_state_dict_to_smdistributed_gptj = unchanged
