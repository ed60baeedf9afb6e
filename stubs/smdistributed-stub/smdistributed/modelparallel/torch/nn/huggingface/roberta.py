"""``smp.nn.huggingface.roberta``: the roberta state-dict translations (the identity locally; see the package docstring)."""

from smdistributed.modelparallel.torch.nn.huggingface import unchanged

translate_state_dict_to_hf_roberta = unchanged
translate_hf_state_dict_to_smdistributed_roberta = unchanged
