"""BitFit (Ben Zaken et al., 2022): only the bias terms of the model train, plus the classification head.

Every parameter named ``*.bias`` outside the head counts, LayerNorm biases included, as in the
paper's code. A model without biases (Llama, Mistral, ...) is an error, not a silent linear probe.
"""
from __future__ import annotations

from tuneoff.methods import MethodError, MethodOptions, register
from tuneoff.methods.layers import PartialMethod, model_type


class BitFitOptions(MethodOptions):
    """No options: what trains is fixed (bias terms + the classification head)."""


@register
class BitFit(PartialMethod):
    name = "bitfit"
    description = "BitFit: only the model's bias terms and the classification head train"
    Options = BitFitOptions
    search_space = {"train.lr": [1e-4, 1e-3, 1e-2]}

    def trainable_names(self) -> set[str]:
        head = set(self.head_names())
        biases = {n for n, _ in self.model.named_parameters() if n.rsplit(".", 1)[-1] == "bias" and n not in head}
        if not biases:
            raise MethodError(f"bitfit: model type {model_type(self.model)!r} has no bias terms outside the "
                              "classification head, so bitfit would only train the head; use method=head for "
                              "that, or a method that adds weights (lora, ia3)")
        return biases | head
