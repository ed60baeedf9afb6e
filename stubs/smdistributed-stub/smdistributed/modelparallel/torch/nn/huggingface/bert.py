"""``smp.nn.huggingface.bert``: the bert state-dict translations (the identity locally; see the package docstring)."""

from smdistributed.modelparallel.torch.nn.huggingface import unchanged

translate_state_dict_to_hf_bert = unchanged
translate_hf_state_dict_to_smdistributed_bert = unchanged
